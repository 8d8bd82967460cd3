"""A partition's state: what its runs leave for the next one, loaded once at a step's start and saved once at its end.

It lives where every machine of a deployment looks: Dagster's instance storage (its key-value store: PostgreSQL in
production, SQLite in DAGSTER_HOME by default) and Qdrant (the heads of the records, read from Qdrant when no copy
is at hand). A run pod on Kubernetes starts with an empty disk and does the same work as the machine before it;
the heads a whole run left are kept in a local file only as a cache.
"""

import json
from dataclasses import dataclass, field

import dagster as dg

from embedding_pipeline.partition.heads import HeadsFile
from embedding_pipeline.partition.run import Outcome
from embedding_pipeline.partitions import PARTITIONS

FAILED_KEPT = 10_000  # ids of the records a run could not embed, kept for the checks alone (the rest are counted)


def _key(partition: str, name: str) -> str:
    return f"embedding_pipeline/{partition}/{name}"


@dataclass
class PartitionState:
    partition: str
    failed: set[str] = field(default_factory=set)  # ids of the records the last whole run could not embed
    verify_every_point: bool = False  # a failed points_match_source asked the next run to compare every point
    heads_cache: HeadsFile | None = None  # the heads the last whole run left on this machine (a cache)
    instance: dg.DagsterInstance | None = None

    @classmethod
    def load(cls, instance: dg.DagsterInstance, partition: str) -> "PartitionState":
        keys = {_key(partition, "failed_records"), _key(partition, "verify_every_point")}
        stored = instance.run_storage.get_cursor_values(keys)
        failed = json.loads(stored.get(_key(partition, "failed_records")) or "[]")
        return cls(
            partition,
            failed=set(failed),
            verify_every_point=stored.get(_key(partition, "verify_every_point")) == "1",
            heads_cache=HeadsFile(f"{instance.storage_directory()}/qdrant_heads/{partition}.parquet"),
            instance=instance,
        )

    def save(self, outcome: Outcome, whole: bool, version: str) -> None:
        """After a run: a whole one records the records it could not embed, whether the next must compare every
        point, and that this partition holds `version`'s collections (a run limited to some records leaves all
        that as it was)."""
        if not whole:
            return
        failed = sorted(outcome.report.failed_record_ids)[:FAILED_KEPT]
        self._set(failed_records=json.dumps(failed), version=version)
        self.request_full_verification(not outcome.verification.passed)

    def request_full_verification(self, requested: bool = True) -> None:
        """Set by a failed points_match_source; the next run compares every point and heals."""
        if requested or self.verify_every_point:
            self._set(verify_every_point="1" if requested else "0")

    def every_partition_done(self, version: str) -> bool:
        """True when every other partition's last whole run wrote `version`'s collections: a re-embed is complete
        and the aliases may move. Read now, after this partition saved its own: of two partitions finishing at
        once, the second to save sees both."""
        others = {_key(p, "version"): p for p in PARTITIONS if p != self.partition}
        stored = self.instance.run_storage.get_cursor_values(set(others))
        return all(stored.get(key) == version for key in others)

    def _set(self, **values: str) -> None:
        self.instance.run_storage.set_cursor_values({_key(self.partition, k): v for k, v in values.items()})
