"""How often the embedded store indexes and reopens a shard while writing (`REINDEX_EVERY_BYTES`, here as
the number of points it comes to): write time against memory, for one collection of content-file chunks with mit-learn's payloads and payload indexes.

For each value, in a fresh process: N points written through the project's EdgeStore in batches of 1,000
(384-d clustered unit vectors, BM25-like sparse vectors, every index of `{base}.content_files`), then
`finish_writes`; the write's seconds, peak RSS (VmHWM) and peak anonymous memory (RssAnon, sampled every
20 ms); then hybrid query latency and the recall of filtered dense queries against exact search.

    .venv/bin/python benchmarks/bench_reindex.py [--points 100000] [--every 5000,10000,20000]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from bench_embed import own_status_kb  # benchmarks/ is the script's own folder, first on its path
from bench_qdrant import dense_vectors, generator, sparse_vector

PLATFORMS = ["ocw", "mitxonline", "xpro", "youtube", "podcast"]
FILTERS = {"platform.code": "ocw", "file_type": "page", "offered_by.code": "see", "content_type": "file"}


def payload(i: int) -> dict:
    """A chunk's payload as the pipeline writes it: mit-learn's content-file document and our bookkeeping."""
    file, resource = i // 3, i // 30
    return {
        "key": f"f{file}", "title": f"File {file}", "platform": {"code": PLATFORMS[i % 5]},
        "offered_by": {"code": ["ocw", "mitx", "xpro", "see"][i % 4]},
        "file_extension": [".md", ".html", ".pdf", ".txt"][(i // 7) % 4], "run_readable_id": f"run{resource}",
        "resource_readable_id": f"r{resource}", "edx_module_id": None, "url": f"https://example.edu/{file}",
        "course_number": [f"{resource % 900}.{i % 7}"], "content_feature_type": [["Lecture Notes"], ["Problem Sets"], []][i % 3],
        "content_type": "file", "file_type": ["page", "video_transcript", "course_metadata"][(i // 11) % 3],
        "run_title": f"Run {resource}", "checksum": f"{i:032x}", "chunk_content": "Lorem ipsum dolor sit amet. " * 18,
        "chunk_number": i % 3,
        "embedding_pipeline": {"resource_type": "course", "record_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"rec{file}")),
                               "role": "head" if i % 3 == 0 else "chunk", "text_hash": f"{i:016x}"},
    }  # fmt: skip


def write_and_query(path: str, n: int, every: int) -> dict:
    import qdrant_edge as edge

    from embedding_pipeline.vector_store import Point, collection_spec
    from embedding_pipeline.vector_store import edge as edge_store

    peak_anon = [0]

    def sample() -> None:
        while True:
            peak_anon[0] = max(peak_anon[0], own_status_kb("RssAnon"))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    rng, centers = generator(seed=7)
    store = edge_store.EdgeStore(path)
    store.create_collection("c", collection_spec("content_files", "dense", 384, "bm25", False))
    started = time.perf_counter()
    for start in range(0, n, 1000):
        size = min(1000, n - start)
        vectors = dense_vectors(rng, centers, size).tolist()
        batch = [
            Point(str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{start + j}")), {"dense": vectors[j], "bm25": sparse_vector(rng)},
                  payload(start + j))
            for j in range(size)
        ]  # fmt: skip
        if start == 0:  # a reindex every `every` points like these
            edge_store.REINDEX_EVERY_BYTES = every * sum(map(edge_store.held_bytes, batch)) // len(batch)
        store.upsert("c", batch)
    store.finish_writes("c")
    result = {"every": every, "points": n, "write_seconds": time.perf_counter() - started,
              "peak_rss_mb": own_status_kb("VmHWM") / 1024, "peak_anon_mb": peak_anon[0] / 1024}  # fmt: skip
    queries, shard, recall, hybrid = dense_vectors(np.random.default_rng(99), centers, 100), store._shard("c"), [], []
    for key, value in FILTERS.items():
        where = edge.Filter(must=[edge.FieldCondition(key=key, match=edge.MatchValue(value))])
        for query in queries:
            request = {"limit": 10, "query": edge.Query.Nearest(query.tolist(), using="dense"), "filter": where}
            found = {p.id for p in shard.query(edge.QueryRequest(**request))}
            exact = {p.id for p in shard.query(edge.QueryRequest(**request, params=edge.SearchParams(exact=True)))}
            recall.append(len(found & exact) / 10)
    for query in queries[:50]:
        begun = time.perf_counter()
        store.query_hybrid("c", query.tolist(), "dense", sparse_vector(rng, terms=6), "bm25", 10)
        hybrid.append(time.perf_counter() - begun)
    store.close()
    return {**result, "filtered_recall": float(np.mean(recall)), "hybrid_p50_ms": float(np.median(hybrid) * 1000),
            "hybrid_p95_ms": float(np.percentile(hybrid, 95) * 1000)}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--step":
        print(json.dumps(write_and_query(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--every", default="5000,10000,20000")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-reindex-") as workdir:
        for every in (int(e) for e in args.every.split(",")):
            path = str(Path(workdir) / str(every))
            done = subprocess.run(
                [sys.executable, __file__, "--step", path, str(args.points), str(every)],
                stdout=subprocess.PIPE, text=True, check=True,
            )  # fmt: skip
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  every {every:,}: {rows[-1]['write_seconds']:.1f} s", flush=True)
    print("\n| reindex every | write s | ÷ first | peak RSS / anon MB | filtered recall@10 | hybrid p50 / p95 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['every']:,} | {r['write_seconds']:.1f} | {r['write_seconds'] / rows[0]['write_seconds']:.2f} "
            f"| {r['peak_rss_mb']:,.0f} / {r['peak_anon_mb']:,.0f} | {r['filtered_recall']:.3f} "
            f"| {r['hybrid_p50_ms']:.1f} / {r['hybrid_p95_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
