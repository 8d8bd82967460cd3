"""What a process's RSS holds once it opens an embedded store: the peak RSS the pipeline benchmark reports
(VmHWM) counts the pages of the engine's memory-mapped files the process touched, which belong to the page
cache, beside its own (anonymous) memory. This splits them, on a store a benchmark left (`bench_embed.py
--workdir DIR` keeps DIR/1x/qdrant and DIR/10x/qdrant), at four moments of runs that changes nothing:

  opened    every collection opened (the shards load);
  counted       each partition's points counted in its collections (a run's state check);
  heads listed  every partition's heads read from Qdrant (a run without the heads file its last run saved);
  probed        each partition's verification probe (`embedding_pipeline.partition.plan.probe`: ten heads read
                back with their vectors and searched for by their own vector).

    .venv/bin/python benchmarks/bench_rss.py DIR/1x/qdrant DIR/10x/qdrant

Each store is copied to a temporary folder first (opening a shard writes to it) and measured in a fresh process.
"""

import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

KINDS = [  # (what, a pattern of the mapped file's path), first match wins
    ("payload indexes of appendable segments", r"-map/(page_\d+|tracker)\.dat$"),
    ("other payload indexes", r"/payload_index/"),
    ("payloads", r"/payload_storage/"),
    ("dense vectors", r"/vector_storage-[^/]*/"),
    ("HNSW and sparse indexes", r"/vector_index-"),
    ("WAL", r"/wal/"),
]


def resident_mb() -> dict[str, float]:
    """This process's RSS by what is mapped: the store's files by kind, libraries, anonymous memory."""
    sizes: Counter = Counter()
    name = ""
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            mapping = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
            if mapping:
                name = mapping.group(1)
            elif line.startswith("Rss:"):
                kind = next((k for k, pattern in KINDS if "/collections/" in name and re.search(pattern, name)), None)
                if kind is None:
                    kind = (
                        "libraries" if ".so" in name else "anonymous" if not name or name.startswith("[") else "other"
                    )
                sizes[kind] += int(line.split()[1])
    return {kind: kb / 1024 for kind, kb in sizes.items()}


def measure(path: str) -> dict:
    from embedding_pipeline.partition.heads import of_type, stored_heads
    from embedding_pipeline.partition.plan import probe
    from embedding_pipeline.partitions import PARTITIONS, RESOURCE_TYPES
    from embedding_pipeline.vector_store.edge import EdgeStore

    store = EdgeStore(path, purpose="bench_rss")
    by_kind = {name.split(".")[-2]: name for name in store.collections()}  # {base}.{kind}.{version}
    collections = {  # partition → kind → collection, as a run of that partition has them
        p: {k: by_kind[k] for k in (("resources", "content_files") if p in RESOURCE_TYPES else ("topics",))}
        for p in PARTITIONS
    }
    moments = {}
    for name in by_kind.values():
        store._shard(name)
    moments["opened"] = resident_mb()
    points = sum(store.count(name, of_type(p)) for p, names in collections.items() for name in names.values())
    moments["counted"] = resident_mb()
    heads = {p: stored_heads(store, names, p) for p, names in collections.items()}
    moments["heads listed"] = resident_mb()
    random.seed(7)
    for p, names in collections.items():
        probe(store, names, list(heads[p].values()))
    moments["probed"] = resident_mb()
    store.close()
    return {"points": points, "moments": moments}


def main() -> None:
    if sys.argv[1:2] == ["--step"]:
        print(json.dumps(measure(sys.argv[2])))
        return
    results = {}
    for store in sys.argv[1:]:
        with tempfile.TemporaryDirectory(prefix="bench-rss-") as workdir:
            copy = Path(workdir) / "qdrant"
            shutil.copytree(store, copy)
            done = subprocess.run(
                [sys.executable, __file__, "--step", str(copy)], stdout=subprocess.PIPE, text=True, check=True
            )
            results[store] = json.loads(done.stdout.strip().splitlines()[-1])
    kinds = [k for k, _ in KINDS] + ["libraries", "anonymous", "other"]
    print("| store | points | moment | RSS MB | " + " | ".join(kinds) + " |")
    print("|---" * (len(kinds) + 4) + "|")
    for store, result in results.items():
        for moment, sizes in result["moments"].items():
            cells = " | ".join(f"{sizes.get(k, 0):,.0f}" for k in kinds)
            print(f"| {store} | {result['points']:,} | {moment} | {sum(sizes.values()):,.0f} | {cells} |")


if __name__ == "__main__":
    main()
