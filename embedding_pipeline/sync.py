"""Keeping Qdrant in step with one partition: plain functions, called by `qdrant_points` and its checks.

Each point carries `record_key` and `point_hash` (a hash of its text, payload and the vectors'
version). A run writes the points whose hash differs from Qdrant's, deletes the partition's points
whose record is gone, and leaves alone the points of records that could not be read or embedded.
Searches use aliases; they move to new physical collections only once every partition is in them.
"""

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd

from embedding_pipeline.vector_store import CollectionSpec, Point, SparseVector, VectorStore

log = logging.getLogger(__name__)


def vectors_version(*settings) -> str:
    """Short hash of everything that determines the vectors; it names the physical collections."""
    return hashlib.sha256(json.dumps(list(settings)).encode()).hexdigest()[:8]


def current_version(dense, sparse, chunker) -> str:
    """The version of the current dense encoder, sparse encoder and chunker settings."""
    return vectors_version(
        dense.model_name, sparse.model_name, chunker.encoding_name, chunker.chunk_size, chunker.chunk_overlap
    )


def point_hash(version: str, text_hash: str, payload: str) -> str:
    return hashlib.sha256(f"{version}{text_hash}{payload}".encode()).hexdigest()[:16]


def embeddable(chunks: pd.DataFrame) -> pd.DataFrame:
    """The chunk rows that have a text to embed (not the records that failed upstream)."""
    return chunks[chunks["error"].isna()]


def records_keeping_points(text_chunks: pd.DataFrame, embedded_point_ids: Iterable[str]) -> set[str]:
    """Records that could not be read or embedded: they keep the points they already have."""
    to_embed = embeddable(text_chunks)
    unembedded = to_embed.loc[~to_embed["point_id"].isin(set(embedded_point_ids)), "record_key"]
    return set(text_chunks.loc[text_chunks["error"].notna(), "record_key"]) | set(unembedded)


def to_points(rows: pd.DataFrame, dense_name: str, sparse_name: str) -> list[Point]:
    """Rows with point_id, vector, indices, values, payload (JSON) and point_hash, as points to write."""
    return [
        Point(
            id=row.point_id,
            vectors={
                dense_name: row.vector.tolist(),
                sparse_name: SparseVector(row.indices.tolist(), row.values.tolist()),
            },
            payload={**json.loads(row.payload), "point_hash": row.point_hash},
        )
        for row in rows.itertuples()
    ]


@dataclass
class CollectionSync:
    """What one collection's sync did, by point and by record."""

    name: str
    points: int = 0
    upserted: int = 0
    unchanged: int = 0
    deleted: int = 0
    total_points: int = 0
    records_before: set[str] = field(default_factory=set)
    records_written: set[str] = field(default_factory=set)
    records_gone: set[str] = field(default_factory=set)


def sync_collection(
    store: VectorStore,
    name: str,
    rows: pd.DataFrame,
    resource_type: str,
    to_write: Callable[[pd.DataFrame], list[Point]],
    keep_records: set[str] = frozenset(),
    force: bool = False,
    batch_size: int = 1000,
    progress: Callable[[str], None] = log.info,
) -> CollectionSync:
    """Make `name` hold exactly `rows` for this resource type (records in `keep_records` aside).

    `rows` has point_id, record_key, point_hash and whatever `to_write` turns into points.
    """
    result = CollectionSync(name, points=len(rows))
    existing = {state.id: state for state in store.point_states(name, resource_type)}
    stored_hash = rows["point_id"].map({pid: state.point_hash for pid, state in existing.items()})
    todo = rows if force else rows[stored_hash != rows["point_hash"]]
    started = time.perf_counter()
    for start in range(0, len(todo), batch_size):
        store.upsert(name, to_write(todo.iloc[start : start + batch_size]))
        done = min(start + batch_size, len(todo))
        if done < len(todo) and time.perf_counter() - started > 10 and start // batch_size % 10 == 9:
            progress(f"{name}: upserted {done}/{len(todo)} points, {done / (time.perf_counter() - started):.0f}/s")
    wanted = set(rows["point_id"])
    stale = [pid for pid, state in existing.items() if pid not in wanted and state.record_key not in keep_records]
    for start in range(0, len(stale), batch_size):
        store.delete(name, stale[start : start + batch_size])
    if len(todo) or stale:
        store.finish_writes(name)
    result.upserted, result.unchanged, result.deleted = len(todo), len(rows) - len(todo), len(stale)
    result.records_before = {state.record_key for state in existing.values()}
    result.records_written = set(todo["record_key"])
    result.records_gone = {existing[pid].record_key for pid in stale}
    result.total_points = store.count(name)
    return result


def ensure_collections(
    store: VectorStore, names: dict[str, str], spec: Callable[[str], CollectionSpec | None], recreate: bool = False
) -> list[str]:
    """kind → physical name: create what is missing (or everything, if `recreate`); returns what was dropped.

    `spec(kind)` is None when the partition has nothing to write (the dimension is then unknown):
    such a collection is not created.
    """
    dropped = []
    for kind, name in names.items():
        if recreate and store.collection_exists(name):
            store.drop_collection(name)
            dropped.append(name)
        kind_spec = spec(kind)
        if kind_spec is not None:
            store.ensure_collection(name, kind_spec)
    return dropped


@dataclass
class AliasSwitch:
    searches_use: dict[str, str]  # alias → physical collection, after the call
    moved: bool = False
    removed: list[str] = field(default_factory=list)


def switch_aliases(
    store: VectorStore,
    targets: dict[str, str],
    every_partition_done: Callable[[], bool],
    keep_old: bool = False,
) -> AliasSwitch:
    """Point the aliases at their new collections; then drop the old collections.

    An alias that does not exist yet is created at once (no search uses it). Aliases that exist
    move together, and only when `every_partition_done()`: a re-embed is then complete, and
    searches never see a collection half filled with the new model.
    """
    current = store.aliases()
    wanted = {alias: name for alias, name in targets.items() if store.collection_exists(name)}
    missing = {alias: name for alias, name in wanted.items() if alias not in current}
    moving = {alias: name for alias, name in wanted.items() if alias in current and current[alias] != name}
    if moving and not every_partition_done():
        moving = {}
    if missing or moving:
        store.set_aliases({**missing, **moving})
    removed = []
    if moving and not keep_old:
        prefixes = tuple(f"{alias}." for alias in targets)
        in_use = set(store.aliases().values())
        removed = [n for n in store.collections() if n.startswith(prefixes) and n not in in_use]
        for name in removed:
            store.drop_collection(name)
    after = store.aliases()
    return AliasSwitch({alias: after.get(alias, "") for alias in targets}, moved=bool(moving), removed=removed)
