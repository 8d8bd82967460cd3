"""What a partition's runs leave in Dagster's instance for later runs, the checks and the sensor, kept
where every machine of a deployment sees it: the manifest of its records (source_content's stored
data, Parquet beside Dagster's storage), the heads file (`partition.heads.HeadsFile`, beside it), a
request to verify every point (Dagster's key-value store: set by a failed `points_match_source`,
honoured and cleared by the next run), and which process runs a run (so a later one can tell it died)."""

import os
import socket
from pathlib import Path

import dagster as dg
import psutil

from embedding_pipeline.files import atomic_write
from embedding_pipeline.partition.heads import HeadsFile
from embedding_pipeline.partition.plan import Plan
from embedding_pipeline.partition.report import Report

MANIFEST_COLUMNS = ["record_key", "record_id", "kind", "source_id", "status"]
WORKER_TAG = "embedding_pipeline/worker"  # a run's worker process, as a tag on the run
NEVER_EMBEDDED_TAG = "embedding_pipeline/never_embedded"  # what no partition embeds, as the run's requester saw it
RECENT_RUNS = 20  # materializations looked through for a partition's last whole run


def _storage(instance: dg.DagsterInstance) -> Path:
    return Path(instance.storage_directory())


def manifest_path(instance: dg.DagsterInstance, partition: str) -> Path:
    return _storage(instance) / "source_content" / f"{partition}.parquet"


def heads_file(instance: dg.DagsterInstance, partition: str) -> HeadsFile:
    return HeadsFile(_storage(instance) / "qdrant_heads" / f"{partition}.parquet")


def manifest_rows(plan: Plan, report: Report) -> list[dict]:
    """One row per record: listed ones with their status (new, changed, unchanged, failed), deleted ones."""
    status = {r.record_id: "new" for r in plan.new} | {r.record_id: "changed" for r in plan.changed}
    status |= {r.record_id: "failed" for r in plan.new + plan.changed if r.record_id in report.failed_record_ids}
    rows = [
        {"record_key": r.record_key, "record_id": r.record_id, "kind": r.kind, "source_id": r.source_id,
         "status": status.get(r.record_id, "unchanged")}
        for r in plan.listing.records.values()
    ]  # fmt: skip
    deleted = [
        {"record_key": h.record_key, "record_id": h.record_id, "kind": h.kind, "source_id": None, "status": "deleted"}
        for h in plan.deleted
    ]
    return rows + deleted


def write_manifest(instance: dg.DagsterInstance, partition: str, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"source_id": pa.int64()}
    schema = pa.schema([(name, types.get(name, pa.string())) for name in MANIFEST_COLUMNS])
    with atomic_write(manifest_path(instance, partition), "wb") as file:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), file)


def failed_records(instance: dg.DagsterInstance, partition: str) -> set[str]:
    """Record ids the partition's last whole run could not read or embed."""
    import pyarrow.parquet as pq

    path = manifest_path(instance, partition)
    if not path.exists():
        return set()
    manifest = pq.read_table(path, columns=["record_id", "status"]).to_pydict()
    return {rid for rid, status in zip(manifest["record_id"], manifest["status"]) if status == "failed"}


def _verify_key(partition: str) -> str:
    return f"embedding_pipeline/verify_points/{partition}"


def request_full_verification(instance: dg.DagsterInstance, partition: str, requested: bool = True) -> None:
    instance.run_storage.set_cursor_values({_verify_key(partition): "1" if requested else "0"})


def full_verification_requested(instance: dg.DagsterInstance, partition: str) -> bool:
    return instance.run_storage.get_cursor_values({_verify_key(partition)}).get(_verify_key(partition)) == "1"


def every_partition_done(instance: dg.DagsterInstance, partition: str, version: str, partitions: list[str]) -> bool:
    """True when every other partition's latest whole run wrote this version's collections.

    Runs limited to some records (`scope` in their metadata) do not count: they leave the rest out.
    """
    for other in partitions:
        if other == partition:
            continue
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("qdrant_points"), asset_partitions=[other]),
            limit=RECENT_RUNS,
        ).records
        whole = [r.asset_materialization.metadata for r in records if "scope" not in r.asset_materialization.metadata]
        if not whole or "vectors_version" not in whole[0] or whole[0]["vectors_version"].value != version:
            return False
    return True


def worker_id(pid: int | None = None) -> str:
    """This machine, the process and when it started (so a reused pid is not taken for the same process)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time()}"


def _alive(worker: str) -> bool:
    host, pid, started = worker.split(":", 2)
    if host != socket.gethostname():
        return True  # another machine's run: its own run monitoring answers for it
    try:
        return str(psutil.Process(int(pid)).create_time()) == started
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def claim_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tag this run with its worker process, so that a later run can tell if it was killed."""
    instance.add_run_tags(run_id, {WORKER_TAG: worker_id()})


def fail_dead_runs(instance: dg.DagsterInstance, log) -> list[str]:
    """Mark failed the runs still STARTED whose worker process on this machine is gone (kill -9, OOM, reboot).

    Such a run holds nothing (the embedded store's lock died with it), but it would show as running
    for ever; the next run finishes its work (it resumes after the last batch the dead one wrote).
    """
    dead = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        worker = run.tags.get(WORKER_TAG)
        if worker and not _alive(worker):
            message = (
                f"Its process ({worker}) is gone (killed, out of memory or a reboot); the next run resumes its work"
            )
            instance.report_run_failed(run, message)
            log(f"Run {run.run_id[:8]} ({run.tags.get('dagster/partition', '')}) marked failed: {message}")
            dead.append(run.run_id)
    return dead
