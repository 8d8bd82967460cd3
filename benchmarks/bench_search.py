"""Repeated searches in one process (`embedding_pipeline.search.search` used as a library), on the sample.

Embeds the sample into a fresh data folder, then, in this process, times `--queries` searches of each kind:
  kept        the embedded store kept open between queries (what `search` does);
  reopened    the store opened and closed for every query (what it did before; the baseline);
  embedding   the query's embedding alone (the model's share of a search).
Each time includes the query's embedding. Then, with searches running in a thread, another process opens the
store as a run does: how long it waited for it.

    .venv/bin/python benchmarks/bench_search.py [--queries 200] [--workdir DIR]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
QUERIES = ["keeping honey bees in the city", "how do plants turn sunlight into sugar", "linear algebra matrices",
           "open data portals", "writing a clear paragraph", "lab safety goggles", "jazz improvisation",
           "startup fundraising", "climate leadership", "gene editing with crispr"]  # fmt: skip
GOAL = "kept: median ≤ 20 ms per query, the embedding included; a run waits < 1 s"
OPEN_AND_TIME = """
import json, sys, time
from embedding_pipeline.vector_store.edge import EdgeStore
started = time.monotonic()
store = EdgeStore(sys.argv[1], purpose="a run", wait_seconds=30)
print(json.dumps({"waited": time.monotonic() - started}), flush=True)
store.close()
"""


def timings(ask, n: int, between=None) -> list[float]:
    spent = []
    for i in range(n):
        started = time.perf_counter()
        ask(QUERIES[i % len(QUERIES)])
        spent.append(time.perf_counter() - started)
        if between:
            between()
    return spent


def summary(spent: list[float]) -> str:
    ms = sorted(s * 1000 for s in spent)
    return f"median {statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9)]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None, help="Kept afterwards if given.")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="search-bench-"))
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", workdir / "dagster_home" / "dagster.yaml")
    model = os.environ.get("QDRANT_DENSE_MODEL_PATH", str(REPO / "data" / "models" / "all-MiniLM-L6-v2"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CONTENT_", "DAGSTER_POSTGRES"))},
        "EMBEDDING_PIPELINE_DATA_DIR": str(workdir), "DAGSTER_HOME": str(workdir / "dagster_home"),
        "QDRANT_DENSE_MODEL_PATH": model,
    }  # fmt: skip
    for command in (["setup"], ["embed"]):
        subprocess.run([str(BIN / "embedding-pipeline"), *command], env=env, cwd=REPO, check=True, capture_output=True)
    os.environ.clear()
    os.environ.update(env)

    from embedding_pipeline.resources import build_resources
    from embedding_pipeline.resources.qdrant import close_query_stores
    from embedding_pipeline.search import search
    from embedding_pipeline.settings import Settings

    resources = build_resources(Settings.from_env())
    qdrant, dense, sparse = resources["qdrant"], resources["dense_encoder"], resources["sparse_encoder"]
    ask = lambda query: search(qdrant, dense, sparse, query, limit=5)
    ask("warm up")  # the model loads, the store opens
    kept = timings(ask, args.queries)
    reopened = timings(ask, args.queries, between=lambda: close_query_stores(qdrant.path))
    embedding = timings(dense.embed_query, args.queries)
    hybrid = timings(lambda query: search(qdrant, dense, sparse, query, hybrid=True, limit=5), args.queries)

    stop = threading.Event()
    searching = threading.Thread(target=lambda: [ask("bees") for _ in iter(stop.is_set, True)], daemon=True)
    searching.start()
    time.sleep(0.5)
    opened = subprocess.run(
        [sys.executable, "-c", OPEN_AND_TIME, str(qdrant.path)], env=env, capture_output=True, text=True, check=True
    )
    stop.set()
    searching.join()
    waited = json.loads(opened.stdout)["waited"]

    median = statistics.median
    print(f"{args.queries} queries each, on the sample, in one process (the query's embedding included):")
    print(f"  kept open: {summary(kept)}")
    print(f"  hybrid, kept open: {summary(hybrid)}")
    print(f"  reopened each query (before): {summary(reopened)}")
    print(f"  the query's embedding alone: {summary(embedding)}")
    print(f"  reopened ÷ kept (medians): {median(reopened) / median(kept):.1f}")
    print(f"  a run opening the store during searches waited {waited:.2f} s")
    met = median(kept) <= 0.020 and waited < 1
    print(f"Goal ({GOAL}): {'met' if met else 'NOT met'}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
