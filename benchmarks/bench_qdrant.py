"""The embedded Qdrant engine (qdrant-edge, the default) against qdrant-client's local mode, in one run.

For each size, each store gets the same generated points (384-d clustered unit vectors, BM25-like
sparse vectors with Qdrant's IDF, the payload indexes of `{base}.content_files`), through the
project's own VectorStore interface, each step in a fresh process:
  write: upserts in batches of 1,000 (points/s), then `finish_writes` (index build and flush), peak RSS;
  read:  open the store and load the collection, then dense, filtered (resource_type and platform)
         and hybrid (dense + sparse, RRF) top-10 queries: p50 / p95, peak RSS.
Payloads: `small` has 4 fields (type, platform, record key, hash); `pipeline` is what the pipeline
writes for a content-file chunk (21 fields, ~1.5 kB of text), measured for the embedded engine.
`--segment-caps` measures instead the embedded engine alone, pipeline payloads, once per cap on the
size its optimizer merges segments up to (KB of dense vectors; 0: the engine's default), with the
write's resident memory every 100,000 points: does memory stay flat as a collection grows, and what
do the queries pay for more, smaller segments?

    .venv/bin/python benchmarks/bench_qdrant.py [--sizes 20000,100000] [--queries 300] [--local-queries 60]
    .venv/bin/python benchmarks/bench_qdrant.py --sizes 1000000 --segment-caps 0,100000,50000,30000
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from bench_embed import own_status_kb  # benchmarks/ is the script's own folder, first on its path

DIM = 384
BATCH = 1000
GOALS = "at 100k, embedded: open ≤ 0.5 s, hybrid p95 ≤ 20 ms, upsert ≥ 5,000 points/s, peak RSS < 1 GB"


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike ru_maxrss)."""
    return own_status_kb("VmHWM") / 1024


def open_store(kind: str, path: str, segment_cap_kb: int | None = None):
    """`segment_cap_kb`: None keeps the store's own cap, 0 takes the engine's default."""
    if kind == "embedded":
        from embedding_pipeline.vector_store import edge

        if segment_cap_kb is not None:
            edge.MAX_SEGMENT_KB = segment_cap_kb or None
        return edge.EdgeStore(path)
    from qdrant_client import QdrantClient

    from embedding_pipeline.vector_store.server import ServerStore

    return ServerStore(QdrantClient(path=path))


def generator(seed: int):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(1).standard_normal((300, DIM)).astype(np.float32)
    return rng, centers


def dense_vectors(rng, centers, n: int) -> np.ndarray:
    v = centers[rng.integers(0, len(centers), n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sparse_vector(rng, terms: int = 40):
    from embedding_pipeline.vector_store import SparseVector

    indices = np.unique((rng.zipf(1.3, terms) * 7919) % 30_000)
    return SparseVector(indices.tolist(), rng.uniform(0.5, 3.0, len(indices)).round(4).tolist())


TYPES = ["course", "program", "learning_path", "podcast", "podcast_episode", "video", "video_playlist", "document"]


def payload(i: int, shape: str) -> dict:
    resource_type, platform = TYPES[i % 8], ["ocw", "mitx", "xpro", "youtube", "podcast"][i % 5]
    record_key = f"{platform}.res-{i // 10}.run-1.file-{i // 3}.md"
    if shape == "small":
        return {
            "resource_type": resource_type,
            "platform": {"code": platform, "name": platform.upper()},
            "record_key": record_key,
            "point_hash": f"{i:016x}",
        }
    return {
        "content_file_id": i // 3, "resource_id": i // 10, "resource_readable_id": f"res-{i // 10}",
        "resource_title": f"Resource {i // 10}: an introduction", "platform": {"code": platform, "name": platform.upper()},
        "resource_type": resource_type,
        "run_readable_id": "run-1", "key": f"file-{i // 3}.md", "title": f"File {i // 3}",
        "url": f"https://example.edu/res-{i // 10}/file-{i // 3}.md", "file_type": "markdown", "file_extension": ".md",
        "checksum": f"{i:064x}", "published": True, "updated_on": "2024-06-01T00:00:00+00:00", "chunk_count": 3,
        "chunk_number": i % 3, "headers": ["Guide", "Part"], "chunk_content": "Lorem ipsum dolor sit amet. " * 55,
        "record_key": record_key, "point_hash": f"{i:016x}",
    }  # fmt: skip


def write(kind: str, path: str, n: int, shape: str, segment_cap_kb: int | None = None) -> dict:
    from embedding_pipeline.vector_store import Point, collection_spec

    rng, centers = generator(seed=7)
    spec = collection_spec("content_files", "dense", DIM, "bm25", True)
    store = open_store(kind, path, segment_cap_kb)
    begun = time.perf_counter()
    store.create_collection("bench", spec)
    upsert_seconds = 0.0
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        vectors = dense_vectors(rng, centers, size).tolist()
        sparse = [sparse_vector(rng) for _ in range(size)]
        ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{start + j}")) for j in range(size)]
        started = time.perf_counter()  # from our rows to acknowledged points: what a run pays
        store.upsert(
            "bench",
            [Point(ids[j], {"dense": vectors[j], "bm25": sparse[j]}, payload(start + j, shape)) for j in range(size)],
        )
        upsert_seconds += time.perf_counter() - started
        if (start + size) % 100_000 == 0:
            print(
                f"    {start + size:>9,} points in {time.perf_counter() - begun:,.0f}s: RSS {own_status_kb('VmRSS') / 1024:,.0f} MB, "
                f"peak so far {peak_rss_mb():,.0f} MB",
                file=sys.stderr,
                flush=True,
            )
    started = time.perf_counter()
    store.finish_writes("bench")
    finish_seconds = time.perf_counter() - started
    store.close()
    return {
        "upsert_per_second": n / upsert_seconds,
        "upsert_seconds": upsert_seconds,
        "finish_seconds": finish_seconds,
        "write_peak_rss_mb": peak_rss_mb(),
    }


def read(kind: str, path: str, queries: int, segment_cap_kb: int | None = None) -> dict:
    started = time.perf_counter()
    store = open_store(kind, path, segment_cap_kb)
    points = store.count("bench")  # the collection loaded
    open_seconds = time.perf_counter() - started
    rng, centers = generator(seed=11)
    latencies: dict[str, list[float]] = {"dense": [], "filtered": [], "hybrid": []}
    for i in range(queries):
        dense = dense_vectors(rng, centers, 1)[0].tolist()
        sparse = sparse_vector(rng, terms=6)
        filters = {"resource_type": TYPES[i % 8], "platform.code": "ocw"}
        for name, method, arguments in (
            ("dense", store.query_nearest, (dense, "dense", 10)),
            ("filtered", store.query_nearest, (dense, "dense", 10, filters)),
            ("hybrid", store.query_hybrid, (dense, "dense", sparse, "bm25", 10)),
        ):
            started = time.perf_counter()
            hits = method("bench", *arguments)
            latencies[name].append(time.perf_counter() - started)
            assert hits, name
    store.close()
    segments = len(list(Path(path).glob("collections/bench/segments/*/"))) if kind == "embedded" else None
    result = {"points": points, "segments": segments, "open_seconds": open_seconds, "read_peak_rss_mb": peak_rss_mb()}
    for name, values in latencies.items():
        result[f"{name}_p50_ms"] = float(np.percentile(values, 50) * 1000)
        result[f"{name}_p95_ms"] = float(np.percentile(values, 95) * 1000)
    return result


def in_fresh_process(*args: str) -> dict:
    """One step in its own process (its peak RSS its own); its progress lines pass through."""
    done = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{args[1]} step failed (exit {done.returncode}): see its output above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(kind: str, n: int, shape: str, queries: int, workdir: Path, segment_cap_kb: int | None = None) -> dict:
    path = workdir / f"{kind}-{shape}-{n}-{segment_cap_kb}"
    shutil.rmtree(path, ignore_errors=True)
    cap = ""
    if segment_cap_kb is not None:
        cap = f", segments up to {segment_cap_kb:,} KB" if segment_cap_kb else ", the engine's default segment size"
    print(f"  {kind:9} {shape:8} {n:>7,} points{cap}: writing ...", flush=True)
    result = in_fresh_process("--step", "write", kind, str(path), str(n), shape, str(segment_cap_kb))
    print(f"  {kind:9} {shape:8} {n:>7,} points{cap}: {queries} queries of each kind ...", flush=True)
    result.update(in_fresh_process("--step", "read", kind, str(path), str(queries), str(segment_cap_kb)))
    shutil.rmtree(path, ignore_errors=True)
    return {"store": kind, "payload": shape, "n": n, "segment_cap_kb": segment_cap_kb, "queries": queries, **result}


def table(rows: list[dict]) -> str:
    header = (
        "| store | payload | points | segment cap KB | segments | upsert points/s | index build + flush s | open s "
        "| dense p50/p95 ms | filtered p50/p95 ms | hybrid p50/p95 ms | peak RSS write / read MB |"
    )
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for r in rows:
        cap = r.get("segment_cap_kb")
        cap = "the store's" if cap is None else f"{cap:,}" if cap else "engine default"
        cap = cap if r["store"] == "embedded" else "-"
        segments = r["segments"] if r.get("segments") is not None else "-"
        lines.append(
            f"| {r['store']} | {r['payload']} | {r['n']:,} | {cap} | {segments} | {r['upsert_per_second']:,.0f} | {r['finish_seconds']:.1f} "
            f"| {r['open_seconds']:.2f} | {r['dense_p50_ms']:.1f} / {r['dense_p95_ms']:.1f} "
            f"| {r['filtered_p50_ms']:.1f} / {r['filtered_p95_ms']:.1f} | {r['hybrid_p50_ms']:.1f} / {r['hybrid_p95_ms']:.1f} "
            f"| {r['write_peak_rss_mb']:,.0f} / {r['read_peak_rss_mb']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--step":
        step, kind, path, *rest = sys.argv[2:]
        cap = None if rest[-1] == "None" else int(rest[-1])
        result = (
            write(kind, path, int(rest[0]), rest[1], cap) if step == "write" else read(kind, path, int(rest[0]), cap)
        )
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--queries", type=int, default=300, help="Queries of each kind on the embedded engine.")
    parser.add_argument("--local-queries", type=int, default=60, help="On the local mode (about 1 s each at 100k).")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--segment-caps", default=None, help="KB, comma-separated (0: the engine's default).")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-qdrant-"))
    if args.segment_caps:
        rows = [
            measure("embedded", int(n), "pipeline", args.queries, workdir, int(cap))
            for n in args.sizes.split(",")
            for cap in args.segment_caps.split(",")
        ]
        print(f"\n{table(rows)}\n\n{json.dumps(rows)}")
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows.append(measure("embedded", n, "small", args.queries, workdir))
        rows.append(measure("local", n, "small", args.local_queries, workdir))
        rows.append(measure("embedded", n, "pipeline", args.queries, workdir))
    print()
    print(table(rows))
    print()
    for n in sorted({r["n"] for r in rows}):
        edge, local = (
            next(r for r in rows if r["n"] == n and r["store"] == s and r["payload"] == "small")
            for s in ("embedded", "local")
        )
        print(
            f"{n:,} points, local mode ÷ embedded engine: upsert time {edge['upsert_per_second'] / local['upsert_per_second']:.1f}×, "
            f"open {local['open_seconds'] / edge['open_seconds']:.1f}×, hybrid p95 {local['hybrid_p95_ms'] / edge['hybrid_p95_ms']:.0f}×, "
            f"read RSS {local['read_peak_rss_mb'] / edge['read_peak_rss_mb']:.1f}×"
        )  # fmt: skip
    big = max(rows, key=lambda r: (r["n"], r["store"] == "embedded" and r["payload"] == "small"))
    checks = {
        "open ≤ 0.5 s": big["open_seconds"] <= 0.5,
        "hybrid p95 ≤ 20 ms": big["hybrid_p95_ms"] <= 20,
        "upsert ≥ 5,000 points/s": big["upsert_per_second"] >= 5000,
        "peak RSS < 1 GB": max(big["write_peak_rss_mb"], big["read_peak_rss_mb"]) < 1024,
    }
    print(f"Goals ({GOALS}): " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in checks.items()))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
