"""A model changed in place, at scale, as an operator meets it: the provider (the tests' OpenAI-protocol server on
127.0.0.1, vectors from hashed words plus a provider's numeric noise, so it spends no CPU of this machine) starts
serving other weights under the same name. On the corpus of `bench_embed.py` (`--scales 10`: 30,000 resources
and 4,800 files), one store and Dagster home, `embedding-pipeline embed` with LITELLM_MAX_CONCURRENT_REQUESTS=8:

  first      a full `embed`: A, the yardstick of the re-embed
  no change  `embed` again: what the model check adds to a run (one probe request, a count per collection)
  refused    the new weights: `embed` must exit non-zero in one line, having sent nothing but the probe and
             written nothing (points and collections as they were)
  re-embed   `embed --reembed`: new collections that searches move to, the old ones gone; its time against A,
             its texts embedded against A's
  edit       1% of the resources' titles edited: `embed` goes on in the new collections

    .venv/bin/python benchmarks/bench_model_change.py [--scales 10]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_embed import generate_corpus, texts_embedded  # noqa: E402

from embedding_pipeline_tests.support.embedding_server import EmbeddingServer  # noqa: E402

COMMAND = str(Path(sys.executable).with_name("embedding-pipeline"))


def embed(env: dict, *flags: str) -> dict:
    """One `embed`: its exit status, seconds, what it said last, and the texts its runs embedded."""
    started, since = time.perf_counter(), time.time()
    done = subprocess.run([COMMAND, "embed", *flags], env=env, cwd=REPO, capture_output=True, text=True, check=False)
    said = done.stderr.strip().splitlines()
    return {
        "status": done.returncode, "seconds": time.perf_counter() - started, "last_line": said[-1] if said else "",
        "lines": len(said), "texts_embedded": texts_embedded(Path(env["DAGSTER_HOME"]), since),
    }  # fmt: skip


def store_state(env: dict) -> dict:
    """Aliases and every collection's points."""
    os.environ.update(env)
    from embedding_pipeline.resources import build_resources
    from embedding_pipeline.settings import Settings

    qdrant = build_resources(Settings.from_env())["qdrant"]
    with qdrant.get_store(purpose="benchmark") as store:
        return {"aliases": store.aliases(), "points": {name: store.count(name) for name in store.collections()}}


def edit_one_percent(database: str) -> None:
    import sqlalchemy as sa

    from embedding_pipeline.content.tables import PREFIX

    engine = sa.create_engine(database)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {PREFIX}learningresource SET title = title || ' (revised)' WHERE id % 100 = 0"))
    engine.dispose()


def measure(scale: int, args) -> dict:
    workdir = args.workdir / f"{scale}x"
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", workdir / "dagster_home" / "dagster.yaml")
    database = f"sqlite:///{workdir / 'content.db'}"
    generate_corpus(database, args.resources, args.files, copies=scale)
    results: dict = {}
    with EmbeddingServer(None, "openai", hashed=True) as server:
        server.noise = 5e-4  # a provider's answers for one text differ a little every time
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CONTENT_", "LITELLM_", "DAGSTER_"))},
            "EMBEDDING_PIPELINE_DATA_DIR": str(workdir), "DAGSTER_HOME": str(workdir / "dagster_home"),
            "CONTENT_DATABASE_URL": database,
            "QDRANT_ENCODER": "embedding_pipeline.resources.encoders.litellm.LiteLLMEncoder",
            "QDRANT_DENSE_MODEL": "bench-hashed", "LITELLM_API_BASE": server.url, "LITELLM_CUSTOM_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-bench", "LITELLM_MAX_CONCURRENT_REQUESTS": "8",
        }  # fmt: skip
        results["first"] = embed(env)
        results["no change"] = embed(env)
        before = store_state(env)
        server.weights, sent = 1, len(server.requests)
        results["refused"] = embed(env)
        results["refused"]["requests"] = [r["inputs"] for r in server.requests[sent:]]
        results["refused"]["store unchanged"] = store_state(env) == before
        results["re-embed"] = embed(env, "--reembed")
        after = store_state(env)
        results["re-embed"]["searches moved"] = all(
            after["aliases"][a] != before["aliases"][a] for a in before["aliases"]
        )
        results["re-embed"]["old collections gone"] = not set(after["points"]) & set(before["points"])
        results["re-embed"]["points"] = sum(after["points"].values())
        edit_one_percent(database)
        results["edit"] = embed(env)
    report(scale, results, before)
    return results


def report(scale: int, results: dict, before: dict) -> None:
    first, same, refused, reembed, edit = (results[k] for k in ("first", "no change", "refused", "re-embed", "edit"))
    print(f"  {scale}x: first full run {first['seconds']:.1f} s, {first['texts_embedded']:,} texts, "
          f"{sum(before['points'].values()):,} points; no change {same['seconds']:.1f} s (status {same['status']})")  # fmt: skip
    print(f"  refused: status {refused['status']} in {refused['seconds']:.1f} s, {refused['lines']} line(s), requests "
          f"{len(refused['requests'])} (probes only: {all(len(r) == 1 for r in refused['requests'])}), store unchanged: "
          f"{refused['store unchanged']}\n    {refused['last_line'][:300]}")  # fmt: skip
    print(f"  re-embed: status {reembed['status']} in {reembed['seconds']:.1f} s = {reembed['seconds'] / first['seconds']:.2f} x "
          f"the first run; {reembed['texts_embedded']:,} texts (first: {first['texts_embedded']:,}), {reembed['points']:,} "
          f"points; searches moved: {reembed['searches moved']}, old collections gone: {reembed['old collections gone']}")  # fmt: skip
    print(
        f"  edit 1%: status {edit['status']} in {edit['seconds']:.1f} s, {edit['texts_embedded']:,} texts embedded",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=3000)
    parser.add_argument("--files", type=int, default=480)
    parser.add_argument("--scales", default="10", help="Copies of the corpus under new ids, comma-separated.")
    parser.add_argument("--workdir", type=Path, default=None, help="Kept afterwards if given.")
    args = parser.parse_args()
    keep = args.workdir is not None
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="model-change-bench-"))
    try:
        results = {scale: measure(int(scale), args) for scale in args.scales.split(",")}
        print(json.dumps(results, default=str)[:20000])
    finally:
        if not keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
