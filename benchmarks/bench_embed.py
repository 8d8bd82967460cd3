"""How much the embed pipeline adds over the dense encoder itself.

Generates a corpus of learning resources and content files (default: over 2,000 content chunks)
in a SQLite database, then, in one process:
  1. the baseline: the raw encoder on exactly the texts the pipeline embeds, at its best
     (distinct texts, sorted by length, batches of 32: DESIGN.md, performance facts);
  2. the full `embed` job over every partition, on a fresh embedded Qdrant and Dagster instance;
  3. the same job again with nothing changed, and after editing 1% of the resources;
and prints the times, the pipeline/encoder ratio, and the incremental runs as fractions of the full run.

    .venv/bin/python benchmarks/bench_embed.py [--files 460] [--resources 400] [--workdir DIR]
"""

import argparse
import hashlib
import os
import random
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from embedding_pipeline.partitions import RESOURCE_TYPES

REPO = Path(__file__).resolve().parent.parent
BOILERPLATE = (
    "This material is shared under a Creative Commons licence. You may reuse it for non-commercial "
    "purposes with attribution. Contact the library for questions about accessibility or permissions."
)


def generate_corpus(database_url: str, n_resources: int, n_files: int, seed: int = 7) -> None:
    """Resources and content files recombined from the sample's own paragraphs and descriptions."""
    import sqlalchemy as sa

    from embedding_pipeline.resources.content_source import content_files, learning_resources, metadata
    from embedding_pipeline.sample_data import sample_rows

    rng = random.Random(seed)
    sample_resources, sample_files = sample_rows()
    paragraphs = [p.strip() for f in sample_files for p in f["content"].split("\n\n") if len(p.strip()) > 80]
    headers = [p.lstrip("# ").strip() for f in sample_files for p in f["content"].splitlines() if p.startswith("#")]
    when = datetime(2024, 6, 1, tzinfo=timezone.utc)
    resources, files = [], []
    for i in range(n_resources):
        base = rng.choice(sample_resources)
        other = rng.choice(sample_resources)
        resources.append(
            {
                "id": i + 1,
                "readable_id": f"gen-{i}",
                "platform": base["platform"],
                "resource_type": RESOURCE_TYPES[i % len(RESOURCE_TYPES)],
                "title": f"{base['title']}: {other['title']}",
                "description": f"{base['description']} {other['description']}",
                "full_description": base.get("full_description", ""),
                "url": f"https://example.edu/generated/{i}",
                "topics": base["topics"] + other["topics"],
                "published": True,
                "created_on": when,
                "updated_on": when,
            }
        )
    for i in range(n_files):
        markdown = i % 2 == 0
        parts = []
        for _ in range(rng.randint(10, 30)):
            if markdown and rng.random() < 0.2:
                parts.append("#" * rng.randint(1, 3) + " " + rng.choice(headers))
            parts.append(rng.choice(paragraphs))
        parts.append(BOILERPLATE)  # real corpora repeat themselves
        content = "\n\n".join(parts)
        files.append(
            {
                "id": i + 1,
                "resource_id": i % n_resources + 1,
                "run_readable_id": "generated",
                "key": f"file-{i}.{'md' if markdown else 'txt'}",
                "title": f"Generated file {i}",
                "content": content,
                "file_type": "document",
                "file_extension": ".md" if markdown else ".txt",
                "url": f"https://example.edu/generated/files/{i}",
                "checksum": hashlib.sha256(content.encode()).hexdigest(),
                "published": True,
                "updated_on": when,
            }
        )
    engine = sa.create_engine(database_url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(learning_resources.insert(), resources)
        conn.execute(content_files.insert(), files)
    engine.dispose()


def edit_resources(database_url: str, share: float, seed: int = 11) -> int:
    """Rewrite the description of `share` of the resources, as editors would; returns how many."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        ids = [row[0] for row in conn.execute(sa.text("SELECT id FROM learning_resources ORDER BY id"))]
        chosen = random.Random(seed).sample(ids, max(1, round(len(ids) * share)))
        for resource_id in chosen:
            conn.execute(
                sa.text("UPDATE learning_resources SET description = description || ' Updated this term.', "
                        "updated_on = CURRENT_TIMESTAMP WHERE id = :id"),
                {"id": resource_id},
            )  # fmt: skip
    engine.dispose()
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=400)
    parser.add_argument("--files", type=int, default=460)
    parser.add_argument("--batch-size", type=int, default=32, help="Baseline batch size.")
    parser.add_argument("--workdir", help="Kept afterwards if given; a temporary folder otherwise.")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="embed-bench-"))
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "dagster_home").mkdir(parents=True)
    os.environ.update(
        EMBEDDING_PIPELINE_DATA_DIR=str(workdir),
        DAGSTER_HOME=str(workdir / "dagster_home"),
        QDRANT_DENSE_MODEL_PATH=os.environ.get(
            "QDRANT_DENSE_MODEL_PATH", str(REPO / "data" / "models" / "all-MiniLM-L6-v2")
        ),
    )
    os.environ.pop("QDRANT_HOST", None)

    import dagster as dg
    import pandas as pd

    from embedding_pipeline.definitions import defs
    from embedding_pipeline.sensors import new_content_sensor
    from embedding_pipeline.settings import Settings

    settings = Settings.from_env()
    generate_corpus(settings.content_database_url, args.resources, args.files)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    job = defs.resolve_job_def("embed")

    # The texts the pipeline embeds, from a throw-away instance (chunking only).
    with tempfile.TemporaryDirectory() as scratch, dg.instance_for_test(temp_dir=scratch) as instance:
        chunk_job = dg.define_asset_job("chunks", selection=["source_content", "text_chunks"])
        chunk_defs = dg.Definitions(assets=defs.assets, jobs=[chunk_job], resources=defs.resources)
        frames = []
        for partition in RESOURCE_TYPES:
            result = chunk_defs.resolve_job_def("chunks").execute_in_process(
                partition_key=partition, instance=instance, run_config=quiet
            )
            frames.append(result.output_for_node("text_chunks"))
    chunks = pd.concat(frames)
    chunks = chunks[chunks["error"].isna()]
    texts = chunks["text"].tolist()
    content_chunks = int((chunks["collection"] == "content_files").sum())
    print(f"corpus: {args.resources} resources, {args.files} content files -> {content_chunks} content chunks, "
          f"{len(texts)} texts ({len(set(texts))} distinct), {int(chunks['tokens'].sum())} tokens")  # fmt: skip

    with dg.build_resources({"dense_encoder": defs.resources["dense_encoder"]}) as built:
        encoder = built.dense_encoder.model_copy(update={"batch_size": args.batch_size})
        encoder.embed_batch(["warm up"])  # load the model outside the timing
        distinct = sorted(set(texts), key=len)
        started = time.perf_counter()
        for start in range(0, len(distinct), args.batch_size):
            encoder.embed_batch(distinct[start : start + args.batch_size])
        baseline = time.perf_counter() - started
        del encoder  # frees its ONNX session before the pipeline's own sessions start
    print(f"baseline  raw encoder, {len(distinct)} distinct texts sorted, batch {args.batch_size}: "
          f"{baseline:8.1f} s  ({len(distinct) / baseline:.1f} texts/s)")  # fmt: skip

    with dg.DagsterInstance.get() as instance:

        def run_all(label: str) -> float:
            """The embed job over every partition, timed, with the time per step."""
            step_seconds: dict[str, float] = {}
            started = time.perf_counter()
            for partition in RESOURCE_TYPES:
                result = job.execute_in_process(partition_key=partition, instance=instance, run_config=quiet)
                assert result.success, partition
                for event in result.all_events:
                    if event.event_type_value == "STEP_SUCCESS":
                        seconds = event.event_specific_data.duration_ms / 1000
                        step_seconds[event.step_key] = step_seconds.get(event.step_key, 0) + seconds
            elapsed = time.perf_counter() - started
            print(f"{label:<62}{elapsed:8.1f} s")
            print("          by step: " + ", ".join(f"{step} {sec:.1f} s" for step, sec in step_seconds.items()))
            return elapsed

        def sensor_tick(cursor: str | None):
            resources = {"content_source": defs.resources["content_source"]}
            context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources)
            return new_content_sensor.evaluate_tick(context)

        def sensor_driven(label: str, cursor: str) -> tuple[float, str]:
            """What the deployment does: a sensor tick, then the runs it requests."""
            started = time.perf_counter()
            tick = sensor_tick(cursor)
            for request in tick.run_requests:
                result = job.execute_in_process(
                    partition_key=request.partition_key, instance=instance, run_config=quiet
                )
                assert result.success, request.partition_key
            elapsed = time.perf_counter() - started
            partitions = ", ".join(r.partition_key for r in tick.run_requests) or "none"
            print(f"{label:<62}{elapsed:8.1f} s  (runs: {partitions})")
            return elapsed, tick.cursor

        cursor = sensor_tick(None).cursor
        full = run_all(f"pipeline  embed job, all {len(RESOURCE_TYPES)} partitions, fresh Qdrant:")
        print(f"ratio     pipeline / baseline: {full / baseline:.2f}")
        again = run_all("again     no change, all partitions:")
        quiet_tick, cursor = sensor_driven("sensor    no change: one tick", cursor)
        edited = edit_resources(settings.content_database_url, share=0.01, seed=11)
        after_edit = run_all(f"edit      {edited} resources (1%) edited, all partitions:")
        cursor = sensor_tick(cursor).cursor  # that edit is embedded already: move the cursor past it
        edited = edit_resources(settings.content_database_url, share=0.01, seed=12)
        edit_sensor, _ = sensor_driven(f"sensor    another {edited} edited: tick + requested runs", cursor)
    print(
        f"fractions of the full run, every partition run: no change {again / full:.1%}, after a 1% edit {after_edit / full:.1%}"
    )
    print(
        f"fractions of the full run, sensor-driven:        no change {quiet_tick / full:.1%}, after a 1% edit {edit_sensor / full:.1%}"
    )
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
