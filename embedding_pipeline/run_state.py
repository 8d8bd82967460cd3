"""What a partition's run leaves for later ones and for the checks, kept where every machine of a
deployment sees it: the manifest of its records (source_content's stored data, Parquet beside
Dagster's storage), the heads it left in Qdrant (Parquet too, removed before any run writes) and,
in Dagster's own key-value store, a request to verify every point (set by a failed
`points_match_source`, honoured and cleared by the next run)."""

import os
import socket
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from embedding_pipeline.sync import Head

COLUMNS = ["record_key", "record_id", "kind", "source_id", "status"]
HEAD_COLUMNS = ["record_id", "record_key", "fingerprint", "chunk_count", "collection"]  # Head's fields, in order
HEADS_SCHEMA = pa.schema([(name, pa.int64() if name == "chunk_count" else pa.string()) for name in HEAD_COLUMNS])
STATE = "qdrant_state"


def manifest_path(instance: dg.DagsterInstance, partition: str) -> Path:
    return Path(instance.storage_directory()) / "source_content" / f"{partition}.parquet"


def write_manifest(instance: dg.DagsterInstance, partition: str, rows: list[dict]) -> Path:
    """Written through a temporary file, so a killed run never leaves half a file behind."""
    path = manifest_path(instance, partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".partial")
    pd.DataFrame(rows, columns=COLUMNS).to_parquet(staging, index=False)
    staging.replace(path)
    return path


def failed_records(instance: dg.DagsterInstance, partition: str) -> set[str]:
    """Record ids the partition's last run could not read or embed."""
    path = manifest_path(instance, partition)
    if not path.exists():
        return set()
    manifest = pd.read_parquet(path, columns=["record_id", "status"])
    return set(manifest.loc[manifest["status"] == "failed", "record_id"])


def heads_path(instance: dg.DagsterInstance, partition: str) -> Path:
    return Path(instance.storage_directory()) / "qdrant_heads" / f"{partition}.parquet"


def save_heads(instance: dg.DagsterInstance, partition: str, heads: dict[str, Head], state: str) -> None:
    """The heads a whole run leaves in Qdrant, with the state they describe (`sync.partition_state`):
    a later run that finds Qdrant in that state reads them here, at a fraction of the cost of reading
    them from Qdrant (a no-change run's largest cost at 30,000 records)."""
    path = heads_path(instance, partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".partial")
    columns = {name: [getattr(head, name) for head in heads.values()] for name in HEAD_COLUMNS}
    table = pa.table(columns, schema=HEADS_SCHEMA).replace_schema_metadata({STATE: state})
    pq.write_table(table, staging)
    staging.replace(path)


def forget_heads(instance: dg.DagsterInstance, partition: str) -> None:
    """Before a run writes: if it dies, the next run reads the heads from Qdrant."""
    heads_path(instance, partition).unlink(missing_ok=True)


def saved_heads(instance: dg.DagsterInstance, partition: str, state: str) -> dict[str, Head] | None:
    """The heads saved by the last whole run, if Qdrant is still in the state that run left; else None
    (also for a file that cannot be read: it only spares reading Qdrant)."""
    try:
        table = pq.read_table(heads_path(instance, partition))
        if (table.schema.metadata or {}).get(STATE.encode()) != state.encode():
            return None
        columns = [table.column(name).to_pylist() for name in HEAD_COLUMNS]
    except (OSError, pa.ArrowException, KeyError):
        return None
    return {fields[0]: Head(*fields) for fields in zip(*columns)}


def _verify_key(partition: str) -> str:
    return f"embedding_pipeline/verify_points/{partition}"


def request_full_verification(instance: dg.DagsterInstance, partition: str) -> None:
    instance.run_storage.set_cursor_values({_verify_key(partition): "1"})


def full_verification_requested(instance: dg.DagsterInstance, partition: str) -> bool:
    return instance.run_storage.get_cursor_values({_verify_key(partition)}).get(_verify_key(partition)) == "1"


def clear_full_verification(instance: dg.DagsterInstance, partition: str) -> None:
    instance.run_storage.set_cursor_values({_verify_key(partition): "0"})


# A run's worker process, as a tag on the run: who may tell later that it died.
WORKER_TAG = "embedding_pipeline/worker"


def _process_start(pid: int) -> str:
    """When the process started (Linux: ticks since boot), so a reused pid is not taken for the same process."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[19] if stat.exists() else ""
    except OSError:
        return ""


def worker_id(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start(pid)}"


def _alive(worker: str) -> bool:
    host, pid, started = worker.split(":", 2)
    if host != socket.gethostname():
        return True  # another machine's run: its own run monitoring answers for it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _process_start(int(pid)) == started


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
