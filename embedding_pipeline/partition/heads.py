"""Heads: what Qdrant holds of each record (its first point carries the record's fingerprint and number
of points), read from Qdrant or from the copy the partition's last whole run saved."""

import random
from dataclasses import dataclass, fields
from pathlib import Path

from embedding_pipeline.digests import digest
from embedding_pipeline.files import atomic_write
from embedding_pipeline.mit_learn import OWN, own
from embedding_pipeline.partition.records import Record, kind_of, point_ids
from embedding_pipeline.vector_store import VectorStore

HEAD_FIELDS = [OWN]  # of a head's payload: our bookkeeping (record id, key, fingerprint, chunk count)
LOOKUP_BATCH = 1000  # ids per retrieve
HEADS_SAMPLED = 100  # saved heads a run compares with Qdrant's before it trusts the rest
STATE = "qdrant_state"  # the saved heads file's metadata key: the state of Qdrant they describe


@dataclass(frozen=True)
class Head:
    """What Qdrant holds of a record: its fingerprint when last written, and how many points it has."""

    record_id: str
    record_key: str
    fingerprint: str
    chunk_count: int
    collection: str  # "resources", "content_files" or "topics"

    @property
    def kind(self) -> str:
        return kind_of(self.collection, self.record_key)

    def record(self) -> Record:
        """Enough of the record to name its points (a record the source may no longer list)."""
        return Record(self.kind, 0, self.record_id, self.record_key, "")


def _head(payload: dict, collection: str) -> Head:
    kept = payload[OWN]
    return Head(
        kept["record_id"], kept.get("record_key", ""), kept.get("record_fingerprint", ""),
        int(kept.get("chunk_count") or 1), collection,
    )  # fmt: skip


def of_type(resource_type: str, **more) -> dict:
    """The filter of one partition's points (with more of our bookkeeping fields to match)."""
    return {own("resource_type"): resource_type, **{own(name): value for name, value in more.items()}}


def stored_heads(store: VectorStore, names: dict[str, str], resource_type: str) -> dict[str, Head]:
    """The heads of this resource type's records in the collections `names` (kind → name), by record id."""
    heads = {}
    for kind, name in names.items():
        if not store.collection_exists(name):
            continue
        for _, payload in store.scroll(name, of_type(resource_type, role="head"), HEAD_FIELDS):
            head = _head(payload, kind)
            heads[head.record_id] = head
    return heads


def read_heads(store: VectorStore, name: str, kind: str, records: list[Record]) -> dict[str, Head]:
    """The heads Qdrant holds of these records in collection `name` (of `kind`), by record id."""
    heads: dict[str, Head] = {}
    if not records or not store.collection_exists(name):
        return heads
    for start in range(0, len(records), LOOKUP_BATCH):
        ids = [point_ids(record, 1)[0] for record in records[start : start + LOOKUP_BATCH]]  # a head is point 0
        for _, payload, _ in store.retrieve(name, ids, fields=HEAD_FIELDS):
            if OWN in payload:  # a point of mit-learn's own that this project has not written yet
                head = _head(payload, kind)
                heads[head.record_id] = head
    return heads


def refresh_heads(
    store: VectorStore, names: dict[str, str], heads: dict[str, Head], written: list[Record], deleted: list[Head]
) -> dict[str, Head]:
    """The heads after a run that wrote (some of) `written` and deleted `deleted`: those read again from
    Qdrant, the rest as they were, so that a run reads back what it touched, not the whole partition."""
    gone = {head.record_id for head in deleted} | {record.record_id for record in written}
    fresh = {record_id: head for record_id, head in heads.items() if record_id not in gone}
    for kind, name in names.items():
        fresh.update(read_heads(store, name, kind, [r for r in written if r.collection == kind]))
    return fresh


def heads_agree(store: VectorStore, names: dict[str, str], heads: dict[str, Head], sample: int = HEADS_SAMPLED) -> bool:
    """Do `sample` heads picked at random match Qdrant's? Counts alone miss a Qdrant restored from a backup
    taken before records were edited (as many points, older texts); a spot check catches most of those."""
    picked = random.sample(list(heads.values()), min(sample, len(heads)))
    for kind, name in names.items():
        mine = [head for head in picked if head.collection == kind]
        stored = read_heads(store, name, kind, [head.record() for head in mine])
        if any(stored.get(head.record_id) != head for head in mine):
            return False
    return True


def partition_state(store: VectorStore, names: dict[str, str], resource_type: str, where: str) -> str:
    """Where Qdrant is, its collections and how many points of this resource type each holds: a run that
    finds the state a whole run left may take that run's heads as they were (`HeadsFile`)."""
    points = {
        name: store.count(name, of_type(resource_type)) if store.collection_exists(name) else None
        for name in names.values()
    }
    return digest(digest(where), points)  # a server URL may carry a password: only its digest is kept


HEAD_COLUMNS = tuple(f.name for f in fields(Head))  # the saved heads file's columns


class HeadsFile:
    """The heads a whole run left, with the state of Qdrant they describe (Parquet). A later run that finds
    Qdrant in that state reads them here, at a fraction of the cost of reading them from Qdrant (a
    no-change run's largest cost at 30,000 records). Removed before any run writes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def save(self, heads: dict[str, Head], state: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {name: [getattr(head, name) for head in heads.values()] for name in HEAD_COLUMNS}
        schema = pa.schema([(name, pa.int64() if name == "chunk_count" else pa.string()) for name in HEAD_COLUMNS])
        table = pa.table(columns, schema=schema).replace_schema_metadata({STATE: state})
        with atomic_write(self.path, "wb") as file:
            pq.write_table(table, file)

    def forget(self) -> None:
        """Before a run writes: if it dies, the next run reads the heads from Qdrant."""
        self.path.unlink(missing_ok=True)

    def load(self, state: str) -> dict[str, Head] | None:
        """The saved heads if Qdrant is still in `state`; else None (also for a file that cannot be read:
        it only spares reading Qdrant)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.path)
            if (table.schema.metadata or {}).get(STATE.encode()) != state.encode():
                return None
            columns = [table.column(name).to_pylist() for name in HEAD_COLUMNS]
        except (OSError, pa.ArrowException, KeyError):
            return None
        return {values[0]: Head(*values) for values in zip(*columns)}
