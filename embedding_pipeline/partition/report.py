"""What a run of one partition did: counts, timings and failures, for its log lines and Dagster metadata."""

from collections import Counter
from dataclasses import dataclass, field

from embedding_pipeline.partition.points import PlannedPoint
from embedding_pipeline.partition.records import Record

LISTED_FAILURES = 50  # named in logs and metadata; counts cover all
SAMPLES = 5  # chunks shown in the metadata


@dataclass
class Report:
    records_listed: Counter = field(default_factory=Counter)  # kind → records
    failures: dict[str, str] = field(default_factory=dict)  # record key → reason
    failed_record_ids: set[str] = field(default_factory=set)
    records_done: Counter = field(default_factory=Counter)  # kind → records chunked and written
    chunks: int = 0
    empty_texts: int = 0
    tokens: int = 0
    max_chunk_tokens: int = 0
    samples: list[PlannedPoint] = field(default_factory=list)  # the first points, shown in the metadata
    texts_needed: int = 0
    texts_embedded: int = 0
    texts_reused: int = 0
    texts_taken_over: int = 0  # of those, vectors mit-learn had written (a deployment taken over)
    rejected: dict[str, str] = field(default_factory=dict)  # record key → reason
    encoder_stats: Counter = field(default_factory=Counter)
    dimension: int = 0
    points_upserted: int = 0
    points_unchanged: int = 0
    points_deleted: int = 0
    records_written: set[str] = field(default_factory=set)
    seconds: Counter = field(default_factory=Counter)  # fetch, heads, chunk, dense, sparse, upsert, index
    collection_points: dict[str, int] = field(default_factory=dict)  # kind → points of every type
    partition_points: dict[str, int] = field(default_factory=dict)  # kind → points of this resource type
    batches: int = 0
    heads_from: str = "Qdrant"  # or the last whole run's saved heads
    shared_keys: list[str] = field(default_factory=list)  # records whose key another type's record also has

    def fail(self, record: Record | str, reason: str) -> None:
        key = record.record_key if isinstance(record, Record) else record
        self.failures[key] = reason
        if isinstance(record, Record):
            self.failed_record_ids.add(record.record_id)
