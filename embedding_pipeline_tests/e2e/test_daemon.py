"""The sensor under a real `dagster-daemon`, each requested run its own process, as deployed: a small database's
first tick, and a small edit across several types, is one run that materializes each changed partition; a large
change is one run per partition."""

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from embedding_pipeline.assets.embed import PARTITIONS_TAG
from embedding_pipeline.content import tables
from embedding_pipeline.partitions import PARTITIONS
from embedding_pipeline.sample_data import complete, load_sample_data
from embedding_pipeline.sensors import ONE_RUN_MAX_RECORDS
from embedding_pipeline_tests.support.encoders import HASHING_ENCODER
from embedding_pipeline_tests.support.helpers import QUICK_SENSOR, dagster_daemon, encoder_env, pipeline_env

T = tables.PREFIX


def _finished_runs(instance: dg.DagsterInstance, count: int, timeout: float, log: Path) -> list[dg.DagsterRun]:
    """The first `count` runs, once they have all finished (oldest first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = sorted(instance.get_runs(), key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)
        if len(runs) >= count and all(r.is_finished for r in runs):
            return runs
        time.sleep(1)
    raise AssertionError(f"{count} runs not finished in {timeout}s: {instance.get_runs()}; {log.read_text()[-3000:]}")


def _materialized(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict[str, set[str]]:
    """Partition → the assets the run materialized in it."""
    found: dict[str, set[str]] = {}
    for record in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records:
        materialization = record.event_log_entry.dagster_event.event_specific_data.materialization
        found.setdefault(materialization.partition, set()).add(materialization.asset_key.path[-1])
    return found


def test_a_small_edit_is_one_run_and_a_large_change_one_run_per_partition(tmp_path, model_dir, monkeypatch):
    env = {**os.environ, **pipeline_env(tmp_path, model_dir, **encoder_env(HASHING_ENCODER)), **QUICK_SENSOR}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    database = f"sqlite:///{tmp_path / 'content.db'}"
    load_sample_data(database)
    engine = sa.create_engine(database)
    with dagster_daemon(env, tmp_path / "daemon.log"), dg.DagsterInstance.get() as instance:
        (first,) = _finished_runs(instance, 1, 600, tmp_path / "daemon.log")  # the first tick: every partition
        assert first.status == dg.DagsterRunStatus.SUCCESS and first.tags[PARTITIONS_TAG] == ",".join(PARTITIONS)

        edit = f"UPDATE {T}learningresource SET description = description || ' Revised.', updated_on = :u "
        with engine.begin() as conn:  # a video, a course and a document edited
            for readable_id in ("yt-crispr", "ocw-18.06", "doc-open-data"):
                conn.execute(sa.text(edit + "WHERE readable_id = :r"), {"u": datetime.now(UTC), "r": readable_id})
        *_, small = _finished_runs(instance, 2, 300, tmp_path / "daemon.log")
        assert small.status == dg.DagsterRunStatus.SUCCESS and small.tags[PARTITIONS_TAG] == "course,video,document"
        assets = {"source_content", "text_chunks", "dense_vectors", "sparse_vectors", "qdrant_points"}
        assert _materialized(instance, small) == {p: assets for p in ("course", "video", "document")}

        many = ONE_RUN_MAX_RECORDS // 2 + 1
        with engine.begin() as conn:
            conn.execute(
                tables.learning_resource.insert(),
                [
                    complete(tables.learning_resource, {
                        "readable_id": f"bulk-{kind}-{i}", "platform_id": "youtube", "resource_type": kind,
                        "title": f"Bulk {kind} {i}",
                    })
                    for kind in ("video", "document")
                    for i in range(many)
                ],
            )  # fmt: skip
        *_, one, other = _finished_runs(instance, 4, 600, tmp_path / "daemon.log")
        assert {one.tags.get("dagster/partition"), other.tags.get("dagster/partition")} == {"video", "document"}
        assert one.status == other.status == dg.DagsterRunStatus.SUCCESS
    engine.dispose()
