"""What a run costs, as a user runs it: `embedding-pipeline embed` over every partition, one process per step.

Generates a corpus of learning resources and content files (default 3,000 and 480, about 5,200
points) and the same corpus ten times under new ids (the texts repeat, so the encoder's work is
the same), and for each, on a fresh Dagster home and embedded Qdrant:
  baseline   the raw encoder alone on the distinct texts the pipeline embeds, at its best
             (sorted by length; the fastest of the batch sizes tried, each in its own process);
  floor      Dagster's own cost of nine runs (a partition each) of an empty step with the same five assets and four
             checks, on the same kind of instance: what no pipeline code can go below;
  full       `embedding-pipeline embed` (all partitions, one process, as the CLI runs them);
  no change  the same again;
  1% edited  after editing the description of 1% of the resources;
  sensor     after editing another 1%: one process that ticks the sensor and runs what it requests;
  daemon     `dagster-daemon` with the sensor on, after editing another 1%: the runs it requests, each its own
             process, from the first one's creation to the last one's end (and from the edit).
"seconds" is the time of the runs inside the process (the goals' measure: "runs in one process");
"process seconds" and the peak RSS are those of the whole process (interpreter start, imports and
model load included; the peak is the process's own VmHWM, not the parent's RSS that `ru_maxrss`
carries across exec). After every step the benchmark reads, from the Dagster instance, the texts
embedded, and executes `points_match_source` alone (every point listed) on every partition.

    .venv/bin/python benchmarks/bench_embed.py [--resources 3000] [--files 390] [--scales 1,10] [--batch-sizes 8,32] [--workdir DIR]
        [--full-only]
"""

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BOILERPLATE = (
    "This material is shared under a Creative Commons licence. You may reuse it for non-commercial "
    "purposes with attribution. Contact the library for questions about accessibility or permissions."
)
GOALS = {
    "no change ≤ 5% of full": lambda r: r["no change"]["seconds"] <= 0.05 * r["full"]["seconds"],
    "1% edited ≤ 8% of full": lambda r: r["1% edited"]["seconds"] <= 0.08 * r["full"]["seconds"],
    "sensor-driven ≤ 3% of full": lambda r: r["sensor"]["seconds"] <= 0.03 * r["full"]["seconds"],
    # Whole processes, as deployed: the CLI's process, and the daemon's runs (creation of the first to the end
    # of the last) against the full `embed` process.
    "no change process ≤ 8% of full process": lambda r: (
        r["no change"]["process_seconds"] <= 0.08 * r["full"]["process_seconds"]
    ),
    "daemon 1% edit ≤ 10% of full process": lambda r: r["daemon"]["seconds"] <= 0.10 * r["full"]["process_seconds"],
}


def generate_corpus(database_url: str, n_resources: int, n_files: int, copies: int = 1, seed: int = 7) -> None:
    """Resources and content files in mit-learn's tables, recombined from the sample's own paragraphs,
    descriptions and topics, with the rows they join: platforms, offerors, topics, departments, runs, and
    three courses for each program (its course information lists them).

    With `copies` > 1 every record appears that many times under new ids, with the same texts.
    """

    from embedding_pipeline.content import tables
    from embedding_pipeline.partitions import RESOURCE_TYPES
    from embedding_pipeline.sample_data import RUN_TYPES, sample_rows

    rng = random.Random(seed)
    sample = sample_rows()
    sample_resources = sample[tables.learning_resource.name]
    topics_of = {}
    for link in sample[tables.resource_topics.name]:
        topics_of.setdefault(link["learningresource_id"], []).append(link["learningresourcetopic_id"])
    texts = [f["content"] for f in sample[tables.content_file.name]]
    paragraphs = [p.strip() for text in texts for p in text.split("\n\n") if len(p.strip()) > 80]
    headers = [p.lstrip("# ").strip() for text in texts for p in text.splitlines() if p.startswith("#")]
    when = datetime(2024, 6, 1, tzinfo=UTC)
    rows: dict[str, list[dict]] = {}
    for i in range(n_resources):
        base, other = rng.choice(sample_resources), rng.choice(sample_resources)
        resource_type = RESOURCE_TYPES[i % len(RESOURCE_TYPES)]
        rows.setdefault(tables.learning_resource.name, []).append({
            "id": i + 1, "readable_id": f"gen-{i}", "platform_id": base["platform_id"],
            "offered_by_id": base.get("offered_by_id"), "resource_type": resource_type,
            "title": f"{base['title']}: {other['title']}", "description": f"{base['description']} {other['description']}",
            "full_description": base.get("full_description", ""), "url": f"https://example.edu/generated/{i}",
            "created_on": when, "updated_on": when,
        })  # fmt: skip
        for topic in dict.fromkeys(topics_of.get(base["id"], []) + topics_of.get(other["id"], [])):
            links = rows.setdefault(tables.resource_topics.name, [])  # ids given: PostgreSQL takes no NULL id
            links.append({"id": len(links) + 1, "learningresource_id": i + 1, "learningresourcetopic_id": topic})
        if resource_type in RUN_TYPES:
            rows.setdefault(tables.run.name, []).append(
                {"id": i + 1, "learning_resource_id": i + 1, "run_id": "generated", "title": base["title"],
                 "created_on": when, "updated_on": when}
            )  # fmt: skip
    resources = rows[tables.learning_resource.name]
    courses = [r["id"] for r in resources if r["resource_type"] == "course"]
    for program in (r for r in resources if r["resource_type"] == "program"):  # listed in its course information
        for position, child in enumerate(rng.sample(courses, min(3, len(courses)))):
            links = rows.setdefault(tables.relationship.name, [])
            links.append({"id": len(links) + 1, "parent_id": program["id"], "child_id": child, "position": position,
                          "relation_type": "PROGRAM_COURSES", "created_on": when, "updated_on": when})  # fmt: skip
    runs = {run["learning_resource_id"] for run in rows.get(tables.run.name, [])}
    for i in range(n_files):
        markdown = i % 2 == 0
        parts = []
        for _ in range(rng.randint(10, 30)):
            if markdown and rng.random() < 0.2:
                parts.append("#" * rng.randint(1, 3) + " " + rng.choice(headers))
            parts.append(rng.choice(paragraphs))
        parts.append(BOILERPLATE)  # real corpora repeat themselves
        content = "\n\n".join(parts)
        resource_id = i % n_resources + 1
        rows.setdefault(tables.content_file.name, []).append({
            "id": i + 1, "run_id": resource_id if resource_id in runs else None,
            "learning_resource_id": None if resource_id in runs else resource_id,
            "key": f"file-{i}.{'md' if markdown else 'txt'}", "title": f"Generated file {i}", "content": content,
            "file_type": "document", "file_extension": ".md" if markdown else ".txt",
            "url": f"https://example.edu/generated/files/{i}", "checksum": hashlib.md5(content.encode()).hexdigest(),
            "created_on": when, "updated_on": when,
        })  # fmt: skip
    _insert_copies(database_url, tables, sample, rows, copies, n_resources, n_files)


def _insert_copies(database_url, tables, sample, rows, copies, n_resources, n_files) -> None:
    """The sample's catalogue rows once, then `copies` copies of the generated rows under new ids."""
    import sqlalchemy as sa

    from embedding_pipeline.content.database import analyze_sqlite
    from embedding_pipeline.sample_data import complete

    shifts = {  # per table: column → how far the copy moves it
        tables.learning_resource.name: {"id": n_resources},
        tables.resource_topics.name: {
            "id": len(rows.get(tables.resource_topics.name, [])),
            "learningresource_id": n_resources,
        },
        tables.run.name: {"id": n_resources, "learning_resource_id": n_resources},
        tables.content_file.name: {"id": n_files, "run_id": n_resources, "learning_resource_id": n_resources},
        tables.relationship.name: {
            "id": len(rows.get(tables.relationship.name, [])),
            "parent_id": n_resources,
            "child_id": n_resources,
        },
    }
    catalogue = [tables.platform, tables.offeror, tables.topic, tables.school, tables.department]
    engine = sa.create_engine(database_url)
    tables.metadata.create_all(engine)
    with engine.begin() as conn:
        for table in catalogue:
            conn.execute(table.insert(), [complete(table, row) for row in sample[table.name]])
        for copy in range(copies):
            for table in tables.metadata.sorted_tables:
                if table.name not in rows:
                    continue
                moved = [
                    {**row, **{c: row[c] + copy * d for c, d in shifts[table.name].items() if row.get(c) is not None}}
                    for row in rows[table.name]
                ]
                if table is tables.learning_resource and copy:
                    moved = [{**row, "readable_id": f"{row['readable_id']}-copy{copy}"} for row in moved]
                conn.execute(table.insert(), [complete(table, row) for row in moved])
    analyze_sqlite(engine)
    engine.dispose()


def edit_resources(database_url: str, share: float, seed: int) -> int:
    """Rewrite the description of `share` of the resources, as editors would; returns how many."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        ids = [
            row[0] for row in conn.execute(sa.text("SELECT id FROM learning_resources_learningresource ORDER BY id"))
        ]
        chosen = random.Random(seed).sample(ids, max(1, round(len(ids) * share)))
        conn.execute(
            sa.text("UPDATE learning_resources_learningresource SET description = description || ' Updated this term.', "
                    "updated_on = :now WHERE id = :id"),
            [{"id": resource_id, "now": datetime.now(UTC).isoformat()} for resource_id in chosen],
        )  # fmt: skip
    engine.dispose()
    return len(chosen)


def baseline_step(batch_size: int) -> dict:
    """The raw encoder on exactly the distinct texts the pipeline embeds (made by the pipeline's own code)."""
    from collections import Counter

    from embedding_pipeline.partition.points import record_points
    from embedding_pipeline.partition.records import RecordError, list_records
    from embedding_pipeline.partitions import PARTITIONS
    from embedding_pipeline.resources import build_resources
    from embedding_pipeline.settings import Settings

    resources = build_resources(Settings.from_env())
    source, encoder = resources["content_source"].database(), resources["dense_encoder"]
    chunker = resources["chunker"].get_chunker()
    texts = set()
    for partition in PARTITIONS:
        with source.reader(partition) as reader:
            records = list(list_records(reader).records.values())
            resources = reader.resources([r.source_id for r in records if r.kind == "resource"])
            rows = {
                "resource": resources,
                "course_information": resources,
                "content_file": reader.content_files([r.source_id for r in records if r.kind == "content_file"]),
                "topic": reader.topics([r.source_id for r in records if r.kind == "topic"]),
            }
            for record in records:
                try:
                    row = rows[record.kind][record.source_id]
                    points = record_points(record, row, resources.get(record.resource_id), chunker)
                except RecordError:
                    continue
                texts.update(p.text for p in points)
    encoder = encoder.model_copy(update={"batch_size": batch_size})
    encoder.embed_batch(["warm up"], Counter())  # the model loads outside the timing
    distinct = sorted(texts, key=len)
    started = time.perf_counter()
    for start in range(0, len(distinct), batch_size):
        encoder.embed_batch(distinct[start : start + batch_size], Counter())
    return {"encode_seconds": time.perf_counter() - started, "texts": len(distinct)}


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def embed_step() -> dict:
    """`embedding-pipeline embed` over every partition; the runs are timed inside the process."""
    import dagster as dg

    from embedding_pipeline.cli import main
    from embedding_pipeline.definitions import defs  # noqa: F401 (loaded before the clock starts, as by any process)

    with dg.DagsterInstance.get():  # its storage's modules too, as the floor and the sensor step have them
        pass
    started = time.perf_counter()
    main(["embed"])
    return {"seconds": time.perf_counter() - started}


def sensor_step(cursor_file: Path) -> dict:
    """What the deployment does on a change: one sensor tick, then the runs it requests (one process)."""
    import dagster as dg

    from embedding_pipeline.definitions import defs
    from embedding_pipeline.resources.qdrant import keep_store_open

    job, new_content_sensor = defs.resolve_job_def("embed"), defs.resolve_sensor_def("new_content_sensor")
    with dg.DagsterInstance.get() as instance, keep_store_open():  # the runs share the store, as the CLI's do
        started = time.perf_counter()
        cursor = cursor_file.read_text() if cursor_file.exists() else None
        resources = {"content_source": defs.resources["content_source"]}
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources)
        tick = new_content_sensor.evaluate_tick(context)
        cursor_file.write_text(tick.cursor)
        requests = tick.run_requests if cursor else []  # the first tick only learns the cursor
        for request in requests:
            result = job.execute_in_process(
                partition_key=request.partition_key, instance=instance, run_config=QUIET, tags=request.tags
            )
            assert result.success, request.partition_key
        return {"seconds": time.perf_counter() - started, "partitions_run": len(requests)}


def daemon_step(env: dict, database: str, share: float, seed: int, log: Path) -> dict:
    """As deployed: `dagster-daemon` with the sensor on, each requested run its own process (the default run
    launcher). The daemon's own first tick (its sensor has no cursor yet) requests every partition; once those runs
    are done, `share` of the resources are edited, and the runs the next tick requests are timed from the first
    one's creation to the last one's end, with the CPU seconds of their processes."""
    import dagster as dg

    os.environ.update(env)
    started = time.time()
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")], env=env, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=open(log, "w"),  # noqa: SIM115
    )  # fmt: skip
    try:
        with dg.DagsterInstance.get() as instance:
            _runs_done(instance, since=started, timeout=3600, log=log)  # the first tick's runs: the sensor settled
            edited_at = time.time()
            edit_resources(database, share, seed)
            cpu: dict[int, float] = {}
            runs = _runs_done(instance, since=edited_at, timeout=3600, log=log, cpu=(daemon.pid, cpu))
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
    created = min(r.create_timestamp for r in runs)
    ended = max(r.end_time for r in runs)
    return {
        "seconds": ended - created, "edit_to_end_seconds": ended - edited_at, "runs": len(runs),
        "partitions": sorted({p for r in runs for p in _partitions(r.dagster_run.tags)}),
        "run_cpu_seconds": sum(cpu.values()),
        "run_process_seconds": sum(r.end_time - r.start_time for r in runs),
        "texts_embedded": texts_embedded(Path(env["DAGSTER_HOME"]), edited_at),
    }  # fmt: skip


def _partitions(tags: dict) -> list[str]:
    from embedding_pipeline.assets.embed import PARTITIONS_TAG

    return tags[PARTITIONS_TAG].split(",") if PARTITIONS_TAG in tags else [tags.get("dagster/partition", "?")]


def _runs_done(instance, since: float, timeout: float, log: Path, cpu=None) -> list:
    """The runs created after `since`, once there are some and all have finished (a change's runs are all
    requested by one tick); with `cpu`, (the daemon's pid, a dict) collects the CPU seconds of each run process
    (sampled every 0.2 s: the last moments of each are missed)."""
    import dagster as dg
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cpu is not None:
            for child in psutil.Process(cpu[0]).children(recursive=True):
                try:
                    # a run's process (spawned by the code server) and its compute-log helpers
                    if any(word in " ".join(child.cmdline()) for word in ("spawn_main", "watch_orphans", "tail -F")):
                        times = child.cpu_times()
                        cpu[1][child.pid] = times.user + times.system
                except psutil.NoSuchProcess:
                    pass
        records = instance.get_run_records(dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC)))
        if (
            records
            and all(r.dagster_run.is_finished for r in records)
            and time.time() - max(r.create_timestamp.timestamp() for r in records) > 2
        ):
            failed = [r.dagster_run.run_id for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
            if failed:
                raise RuntimeError(f"runs failed under the daemon: {failed}; {log.read_text()[-2000:]}")
            return [_Run(r) for r in records]
        time.sleep(0.2)
    raise RuntimeError(f"the daemon's runs did not finish in {timeout}s: {log.read_text()[-2000:]}")


class _Run:
    """A run record's times as epoch seconds."""

    def __init__(self, record):
        self.dagster_run = record.dagster_run
        self.create_timestamp = record.create_timestamp.timestamp()
        self.start_time, self.end_time = record.start_time, record.end_time


def floor_step() -> dict:
    """One in-process run per partition of an empty step shaped like the pipeline's (five assets, four checks)."""
    import dagster as dg

    from embedding_pipeline.partitions import resource_type_partitions

    keys = [("source_content", []), ("text_chunks", ["source_content"]), ("dense_vectors", ["text_chunks"]),
            ("sparse_vectors", ["text_chunks"]), ("qdrant_points", ["text_chunks", "dense_vectors", "sparse_vectors"])]  # fmt: skip
    specs = [dg.AssetSpec(key, deps=deps, partitions_def=resource_type_partitions) for key, deps in keys]
    checks = [
        dg.AssetCheckSpec(name, asset=asset, partitions_def=resource_type_partitions)
        for name, asset in [("c1", "text_chunks"), ("c2", "text_chunks"), ("c3", "qdrant_points"), ("c4", "qdrant_points")]
    ]  # fmt: skip

    @dg.multi_asset(specs=specs, check_specs=checks, partitions_def=resource_type_partitions)
    def nothing():
        for spec in specs:
            yield dg.MaterializeResult(asset_key=spec.key, metadata={"records": 0})
        for check in checks:
            yield dg.AssetCheckResult(asset_key=check.asset_key, check_name=check.name, passed=True)

    job = dg.Definitions(
        assets=[nothing], jobs=[dg.define_asset_job("floor", selection="*")], executor=dg.in_process_executor
    ).resolve_job_def("floor")
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        for partition in resource_type_partitions.get_partition_keys():
            job.execute_in_process(partition_key=partition, instance=instance, run_config=QUIET)
        return {"seconds": time.perf_counter() - started}


def check_step() -> dict:
    """`points_match_source` alone, every point listed, on every partition (as the UI's "Execute checks")."""
    import dagster as dg

    from embedding_pipeline.assets.embed import embed_partition
    from embedding_pipeline.definitions import defs
    from embedding_pipeline.partitions import PARTITIONS

    key = dg.AssetCheckKey(dg.AssetKey("qdrant_points"), "points_match_source")
    checks = dg.Definitions(
        assets=[embed_partition],
        jobs=[dg.define_asset_job("checks", selection=dg.AssetSelection.checks(key))],
        resources=defs.resources,
    ).resolve_job_def("checks")
    passed = 0
    with dg.DagsterInstance.get() as instance:
        for partition in PARTITIONS:
            result = checks.execute_in_process(
                instance=instance, tags={"dagster/partition": partition}, run_config=QUIET
            )
            (evaluation,) = result.get_asset_check_evaluations()
            passed += evaluation.passed
    return {"points_match_source": f"{passed}/{len(PARTITIONS)} passed"}


class AnonymousPeak:
    """The peak of this process's anonymous memory (RssAnon), sampled every 20 ms: what it needs of its
    own. RSS also counts the pages of the embedded engine's memory-mapped files it touched, which are
    the page cache's (clean, given back under memory pressure) and grow with the collection."""

    def __init__(self):
        self.peak_kb = 0
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            self.peak_kb = max(self.peak_kb, own_status_kb("RssAnon"))
            time.sleep(0.02)


def own_status_kb(field: str) -> int:
    """A field of /proc/self/status, in kB: VmHWM is this process's peak RSS since it started its program.
    Not `ru_maxrss`: exec keeps that from before, so a child would report at least its parent's RSS at the
    fork (a 300 MB parent at 10×)."""
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith(f"{field}:")).split()[1])


def timed(command: list[str], env: dict) -> dict:
    """Wall time and peak RSS of one whole process (and the JSON it printed last, if any: its own peak RSS)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if process.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read()[-3000:]}")
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
    return {
        "process_seconds": seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        **(json.loads(lines[-1]) if lines else {}),
    }


def texts_embedded(dagster_home: Path, since: float) -> int:
    """From the Dagster instance: the texts embedded by the runs started after `since`."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    embedded = 0
    with dg.DagsterInstance.get() as instance:
        for record in instance.get_run_records(dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC))):
            for event in instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ):
                materialization = event.asset_materialization
                if materialization.asset_key.path == ["dense_vectors"]:
                    embedded += materialization.metadata["texts_embedded"].value
    return embedded


def measure(scale: int, args, model_dir: str) -> dict:
    workdir = args.workdir / f"{scale}x"
    shutil.rmtree(workdir, ignore_errors=True)
    home = workdir / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("QDRANT_", "CONTENT_", "DAGSTER_POSTGRES", "EMBEDDING_PIPELINE_SENSOR"))},
        "EMBEDDING_PIPELINE_DATA_DIR": str(workdir), "DAGSTER_HOME": str(home), "QDRANT_DENSE_MODEL_PATH": model_dir,
    }  # fmt: skip
    database = f"sqlite:///{workdir / 'content.db'}"
    generate_corpus(database, args.resources, args.files, copies=scale)
    me = [sys.executable, __file__, "--step"]
    tried = {size: timed([*me, "baseline", str(size)], env) for size in args.batch_sizes}
    size, baseline = min(tried.items(), key=lambda item: item[1]["encode_seconds"])  # the encoder at its best
    steps = {"baseline": {**baseline, "seconds": baseline["encode_seconds"], "texts_embedded": baseline["texts"]}}
    print(f"  {scale}x baseline: {baseline['encode_seconds']:.1f} s for {baseline['texts']} distinct texts in "
          f"batches of {size} (" + ", ".join(f"{s}: {r['encode_seconds']:.1f} s" for s, r in tried.items()) + ")", flush=True)  # fmt: skip

    def step(name: str, *command: str) -> None:
        since = time.time()
        steps[name] = {**timed([*me, *command], env), "texts_embedded": texts_embedded(home, since)}
        steps[name]["points_match_source"] = timed([*me, "check"], env)["points_match_source"]
        print(f"  {scale}x {name}: {steps[name]['seconds']:.1f} s in the process ({steps[name]['process_seconds']:.1f} s "
              f"with its start), {steps[name]['texts_embedded']} texts embedded, "
              f"points_match_source {steps[name]['points_match_source']}", flush=True)  # fmt: skip

    if args.full_only:
        step("full", "embed")
        full = steps["full"]
        print(f"  {scale}x full ÷ baseline {full['seconds'] / steps['baseline']['seconds']:.2f}; peak RSS "
              f"{full['peak_rss_mb']:,.0f} MB, peak anon {full['peak_anon_mb']:,.0f} MB", flush=True)  # fmt: skip
        return steps
    floor_env = {**env, "DAGSTER_HOME": str(workdir / "floor_home")}
    (workdir / "floor_home").mkdir()
    shutil.copy(REPO / "dagster.yaml", workdir / "floor_home" / "dagster.yaml")
    steps["floor"] = {**timed([*me, "floor"], floor_env), "texts_embedded": 0}
    step("full", "embed")
    step("no change", "embed")
    timed([*me, "sensor", str(workdir / "cursor")], env)  # the sensor learns the current state
    edits = edit_resources(database, 0.01, seed=11)
    step("1% edited", "embed")
    timed([*me, "sensor", str(workdir / "cursor")], env)  # the sensor moves past that edit
    edit_resources(database, 0.01, seed=12)
    step("sensor", "sensor", str(workdir / "cursor"))
    steps["daemon"] = daemon_step(env, database, 0.01, seed=13, log=workdir / "daemon.log")
    steps["daemon"]["points_match_source"] = timed([*me, "check"], env)["points_match_source"]
    print(f"  {scale}x daemon: {steps['daemon']['runs']} run(s) for {', '.join(steps['daemon']['partitions'])}: "
          f"{steps['daemon']['seconds']:.1f} s from the first one's creation to the last one's end "
          f"({steps['daemon']['edit_to_end_seconds']:.1f} s from the edit, the sensor ticking every 30 s), "
          f"{steps['daemon']['run_cpu_seconds']:.1f} CPU seconds in the run processes, "
          f"{steps['daemon']['texts_embedded']} texts embedded, "
          f"points_match_source {steps['daemon']['points_match_source']}", flush=True)  # fmt: skip
    steps["edits"] = edits
    steps["points"] = points_in_store(env)
    return steps


def points_in_store(env: dict) -> int:
    os.environ.update(env)
    from embedding_pipeline.resources import build_resources
    from embedding_pipeline.settings import Settings

    qdrant = build_resources(Settings.from_env())["qdrant"]
    with qdrant.get_store(purpose="benchmark") as store:
        return sum(store.count(qdrant.alias(kind)) for kind in ("resources", "content_files"))


STEPS = ["baseline", "floor", "full", "no change", "1% edited", "sensor"]


def report(results: dict[int, dict]) -> None:
    scales = sorted(results)
    header = "| step | " + " | ".join(
        f"{s}× seconds | {s}× of full | {s}× process seconds | {s}× peak RSS MB | {s}× peak anon MB | {s}× texts embedded"
        for s in scales
    ) + " |"  # fmt: skip
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name in STEPS:
        cells = []
        for s in scales:
            r, full = results[s][name], results[s]["full"]["seconds"]
            share = "" if name in ("baseline", "full") else f"{r['seconds'] / full:.1%}"
            cells.append(
                f"{r['seconds']:.1f} | {share} | {r['process_seconds']:.1f} | {r['peak_rss_mb']:,.0f} | "
                f"{r.get('peak_anon_mb', 0):,.0f} | {r['texts_embedded']:,}"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")
    for s in scales:
        d, full = results[s]["daemon"], results[s]["full"]["process_seconds"]
        print(f"{s}× under the daemon: {d['runs']} run(s) ({', '.join(d['partitions'])}) {d['seconds']:.1f} s, "
              f"{d['seconds'] / full:.1%} of the full process ({full:.1f} s); {d['edit_to_end_seconds']:.1f} s from the "
              f"edit; {d['run_cpu_seconds']:.1f} CPU s and {d['run_process_seconds']:.1f} s of run processes; "
              f"{d['texts_embedded']:,} texts embedded; points_match_source {d['points_match_source']}")  # fmt: skip
    for s in scales:
        r = results[s]
        print(f"{s}×: {r['points']:,} points; {r['edits']} resources per 1% edit; full ÷ baseline "
              f"{r['full']['seconds'] / r['baseline']['seconds']:.2f} (goal ≤ 1.15 at 1×); points_match_source after "
              f"each step: {', '.join(r[n]['points_match_source'] for n in STEPS[2:])}")  # fmt: skip
        print(
            f"{s}× goals: " + ", ".join(f"{goal}: {'met' if check(r) else 'NOT met'}" for goal, check in GOALS.items())
        )
    for scale in scales[1:]:
        small, big = results[scales[0]], results[scale]
        print(f"{scale}× ÷ {scales[0]}×: full run {big['full']['seconds'] / small['full']['seconds']:.2f} (goal ≤ 1.5), "
              "peak RSS " + ", ".join(f"{n} {big[n]['peak_rss_mb'] / small[n]['peak_rss_mb']:.2f}" for n in STEPS[2:])
              + " (goal ≤ 1.3); peak anonymous memory "
              + ", ".join(f"{n} {big[n]['peak_anon_mb'] / small[n]['peak_anon_mb']:.2f}" for n in STEPS[2:]))  # fmt: skip
    print(json.dumps(results))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--step":
        logging.disable(logging.INFO)
        step, arguments = sys.argv[2], sys.argv[3:]
        steps = {"baseline": lambda: baseline_step(int(arguments[0])), "sensor": lambda: sensor_step(Path(arguments[0])),
                 "embed": embed_step, "floor": floor_step, "check": check_step}  # fmt: skip
        anonymous = AnonymousPeak()
        result = steps[step]()
        peaks = {"peak_rss_mb": own_status_kb("VmHWM") / 1024, "peak_anon_mb": anonymous.peak_kb / 1024}
        print(json.dumps({**result, **peaks}))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=3000)
    parser.add_argument("--files", type=int, default=480)
    parser.add_argument("--scales", default="1,10", help="Copies of the corpus under new ids, comma-separated.")
    parser.add_argument(
        "--batch-sizes", type=lambda text: [int(s) for s in text.split(",")], default=[8, 32],
        help="Batch sizes the baseline tries, comma-separated; the fastest is the baseline.",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None, help="Kept afterwards if given.")
    parser.add_argument("--full-only", action="store_true", help="The baseline and the full run only (no report).")
    args = parser.parse_args()
    keep = args.workdir is not None
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="embed-bench-"))
    model_dir = os.environ.get("QDRANT_DENSE_MODEL_PATH", str(REPO / "data" / "models" / "all-MiniLM-L6-v2"))
    results = {}
    for scale in (int(s) for s in args.scales.split(",")):
        results[scale] = measure(scale, args, model_dir)
    if args.full_only:
        print(json.dumps(results))
    else:
        report(results)
    if not keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
