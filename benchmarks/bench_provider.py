"""A full `embedding-pipeline embed` through LiteLLM against a provider on 127.0.0.1 that speaks OpenAI's
embeddings API (`embedding_pipeline_tests/support/embedding_server.py`: vectors from hashed words, so the
provider spends no CPU of this machine), as production runs it against OpenAI. On the corpus of
`bench_embed.py` (default 3,000 resources and 480 files; `--scales 1,10`), each run on a fresh store:

  instant      a provider that answers at once, LITELLM_MAX_CONCURRENT_REQUESTS=C: A, the run's own cost;
  one at a time  the same with C=1: the same points (ids, payloads, hashes) and texts embedded;
  slow         a provider taking `--latency` seconds a request plus `--per-thousand` a 1,000 tokens: the run
               against R (the requests' latencies summed) ÷ C and A (goal: at most 1.25 × max(A, R ÷ C));
  limited      the slow provider with a tokens-per-minute limit of a quarter of the corpus's tokens, or half what
               the instant run sent a minute if lower (a budget refilled evenly, 429 with Retry-After and
               x-ratelimit-* headers beyond it, as OpenAI answers):
               tokens per minute achieved against the limit, from the first request to the last, and once
               the first minute's budget is spent (goal: at least 85%), and 429s.

Printed per run: seconds (in the process), requests, requests in flight (most, mean), 429s, texts embedded.

    .venv/bin/python benchmarks/bench_provider.py [--scales 1,10] [--concurrency 8] [--latency 2] [--per-thousand 0.02]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_embed import generate_corpus, texts_embedded, timed  # noqa: E402

from embedding_pipeline_tests.support.embedding_server import EmbeddingServer  # noqa: E402

EMBED = [sys.executable, str(REPO / "benchmarks" / "bench_embed.py"), "--step", "embed"]


def run(name: str, workdir: Path, database: str, server: EmbeddingServer, concurrency: int) -> dict:
    """One full `embed` on a fresh store and Dagster home, against `server`."""
    data = workdir / name
    shutil.rmtree(data, ignore_errors=True)
    (data / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", data / "dagster_home" / "dagster.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CONTENT_", "LITELLM_", "DAGSTER_"))},
        "EMBEDDING_PIPELINE_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home"),
        "CONTENT_DATABASE_URL": database,
        "QDRANT_ENCODER": "embedding_pipeline.resources.encoders.litellm.LiteLLMEncoder",
        "QDRANT_DENSE_MODEL": "bench-hashed", "LITELLM_API_BASE": server.url, "LITELLM_CUSTOM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-bench", "LITELLM_MAX_CONCURRENT_REQUESTS": str(concurrency),
    }  # fmt: skip
    server.requests.clear()
    started = time.time()
    result = timed(EMBED, env)
    answered = [r for r in server.requests if r.get("answered") == 200]
    most, mean = server.in_flight()
    result.update(
        texts_embedded=texts_embedded(data / "dagster_home", started),
        requests=len(server.requests),
        rate_limited=sum(1 for r in server.requests if r.get("answered") == 429),
        in_flight_most=most,
        in_flight_mean=mean,
        latency_sum=sum(r["done_at"] - r["at"] for r in answered),
        tokens=sum(sum(r["tokens"]) for r in answered),
        points=points(env),
    )
    if server.budget:
        result.update(_limit_use(answered, server.budget.limit))
    print(
        f"  {name}: {result['seconds']:.1f} s, {result['requests']} requests (in flight: most {most}, mean {mean:.1f}), "
        f"{result['rate_limited']} answered 429, {result['texts_embedded']:,} texts embedded, {result['tokens']:,} tokens",
        flush=True,
    )
    return result


def _limit_use(answered: list[dict], limit: int) -> dict:
    """Tokens per minute from the first request to the last answer, and from the moment the first minute's budget
    was spent (the tokens answered since then), as shares of the limit."""
    first, last = min(r["at"] for r in answered), max(r["done_at"] for r in answered)
    spent, steady_from = 0, None
    for r in sorted(answered, key=lambda r: r["at"]):
        spent += sum(r["tokens"])
        if steady_from is None and spent >= limit:
            steady_from = r["done_at"]
    tokens = sum(sum(r["tokens"]) for r in answered)
    steady = sum(sum(r["tokens"]) for r in answered if steady_from is not None and r["at"] >= steady_from)
    return {
        "limit_share": tokens / ((last - first) / 60) / limit,
        "steady_limit_share": steady / ((last - steady_from) / 60) / limit
        if steady_from and last > steady_from
        else None,
    }


def points(env: dict) -> dict:
    """Every point's id and payload (our hashes in it), to compare two runs."""
    os.environ.update(env)
    from embedding_pipeline.resources import build_resources
    from embedding_pipeline.settings import Settings

    qdrant = build_resources(Settings.from_env())["qdrant"]
    with qdrant.get_store(purpose="benchmark") as store:
        return {kind: dict(store.scroll(qdrant.alias(kind))) for kind in ("resources", "content_files")}


def measure(scale: int, args) -> dict:
    workdir = args.workdir / f"{scale}x"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    database = f"sqlite:///{workdir / 'content.db'}"
    generate_corpus(database, args.resources, args.files, copies=scale)
    c = args.concurrency
    with EmbeddingServer(None, "openai", hashed=True) as server:
        instant = run("instant", workdir, database, server, c)
        alone = run("one at a time", workdir, database, server, 1)
    same = instant.pop("points") == alone.pop("points")
    print(f"  {scale}x: C={c} and C=1 wrote the same points: {same}; texts embedded {instant['texts_embedded']:,} "
          f"and {alone['texts_embedded']:,}", flush=True)  # fmt: skip
    with EmbeddingServer(None, "openai", hashed=True, latency=(args.latency, args.per_thousand)) as server:
        slow = run("slow", workdir, database, server, c)
    slow.pop("points")
    bound = max(instant["seconds"], slow["latency_sum"] / c)
    print(f"  {scale}x slow: {slow['seconds']:.1f} s against A = {instant['seconds']:.1f} s, R = {slow['latency_sum']:.1f} s, "
          f"R ÷ C = {slow['latency_sum'] / c:.1f} s: {slow['seconds'] / bound:.2f} × max(A, R ÷ C) (goal ≤ 1.25)", flush=True)  # fmt: skip
    # Well below what the run could send: a quarter of the corpus's tokens a minute, and at most half of what the
    # instant run sent a minute (at 10x the pipeline's own work, not the provider, bounds a quarter's run).
    limit = max(1000, int(min(instant["tokens"] / 4, instant["tokens"] / (2 * instant["seconds"] / 60))))
    with EmbeddingServer(
        None, "openai", hashed=True, latency=(args.latency, args.per_thousand), tokens_per_minute=limit
    ) as server:
        limited = run("limited", workdir, database, server, c)
    same_texts = limited.pop("points") is not None and limited["texts_embedded"] == alone["texts_embedded"]
    steady = limited["steady_limit_share"]
    print(f"  {scale}x limited to {limit:,} tokens/min: {limited['limit_share']:.0%} of the limit from the first request "
          f"to the last, {'n/a' if steady is None else f'{steady:.0%}'} once the first minute's budget was spent "
          f"(goal ≥ 85%); {limited['rate_limited']} answered 429; texts embedded as one at a time: {same_texts}", flush=True)  # fmt: skip
    return {"instant": instant, "one at a time": alone, "slow": slow, "limited": limited, "limit": limit,
            "same_points": same, "same_texts_limited": same_texts}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=3000)
    parser.add_argument("--files", type=int, default=480)
    parser.add_argument("--scales", default="1", help="Copies of the corpus under new ids, comma-separated.")
    parser.add_argument("--concurrency", type=int, default=8, help="LITELLM_MAX_CONCURRENT_REQUESTS")
    parser.add_argument("--latency", type=float, default=2.0, help="The slow provider's seconds per request.")
    parser.add_argument("--per-thousand", type=float, default=0.02, help="... and per 1,000 tokens.")
    parser.add_argument("--workdir", type=Path, default=None, help="Kept afterwards if given.")
    args = parser.parse_args()
    keep = args.workdir is not None
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="provider-bench-"))
    results = {scale: measure(scale, args) for scale in (int(s) for s in args.scales.split(","))}
    print(json.dumps(results))
    if not keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
