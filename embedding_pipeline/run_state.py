"""What a partition's run leaves for later ones and for the checks, kept where every machine of a
deployment sees it: the manifest of its records (source_content's stored data, Parquet beside
Dagster's storage) and, in Dagster's own key-value store, a request to verify every point (set
by a failed `points_match_source`, honoured and cleared by the next run)."""

from pathlib import Path

import dagster as dg
import pandas as pd

COLUMNS = ["record_key", "record_id", "kind", "source_id", "status"]


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


def _verify_key(partition: str) -> str:
    return f"embedding_pipeline/verify_points/{partition}"


def request_full_verification(instance: dg.DagsterInstance, partition: str) -> None:
    instance.run_storage.set_cursor_values({_verify_key(partition): "1"})


def full_verification_requested(instance: dg.DagsterInstance, partition: str) -> bool:
    return instance.run_storage.get_cursor_values({_verify_key(partition)}).get(_verify_key(partition)) == "1"


def clear_full_verification(instance: dg.DagsterInstance, partition: str) -> None:
    instance.run_storage.set_cursor_values({_verify_key(partition): "0"})
