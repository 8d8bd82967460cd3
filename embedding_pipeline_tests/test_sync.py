"""The synchronisation of one partition with Qdrant, as plain functions on the embedded engine (no Dagster)."""

import json
import uuid
from functools import partial

import numpy as np
import pandas as pd
import pytest

from embedding_pipeline.sync import ensure_collections, switch_aliases, sync_collection, to_points
from embedding_pipeline.vector_store import CollectionSpec
from embedding_pipeline.vector_store.edge import EdgeStore

SPEC = CollectionSpec("dense", 4, "bm25", True, {"resource_type": "keyword", "record_key": "identifier"})
WRITE = partial(to_points, dense_name="dense", sparse_name="bm25")


def rows(records: dict[str, int], resource_type: str = "course", version: str = "v1") -> pd.DataFrame:
    """Chunk rows as `qdrant_points` hands them over: record key → number of chunks."""
    out = []
    for record, chunks in records.items():
        for number in range(chunks):
            out.append(
                {
                    "point_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource_type}/{record}/{number}")),
                    "record_key": record,
                    "point_hash": f"{version}-{record}-{number}",
                    "vector": np.array([1.0, number, len(record), 0.5], dtype=np.float32),
                    "indices": np.array([1, 2 + number]),
                    "values": np.array([1.0, 0.5]),
                    "payload": json.dumps({"resource_type": resource_type, "record_key": record, "chunk": number}),
                }
            )
    return pd.DataFrame(out)


@pytest.fixture
def store(tmp_path):
    store = EdgeStore(tmp_path / "qdrant")
    store.create_collection("c", SPEC)
    yield store
    store.close()


def test_only_new_and_changed_points_are_written_and_stale_ones_deleted(store):
    first = sync_collection(store, "c", rows({"a": 2, "b": 1, "c": 3}), "course", WRITE)
    assert (first.upserted, first.unchanged, first.deleted, first.total_points) == (6, 0, 0, 6)
    assert first.records_before == set() and first.records_written == {"a", "b", "c"}

    again = sync_collection(store, "c", rows({"a": 2, "b": 1, "c": 3}), "course", WRITE)
    assert (again.upserted, again.unchanged, again.deleted) == (0, 6, 0)

    edited = rows({"a": 2, "b": 1, "c": 2})  # c lost a chunk
    edited.loc[edited["record_key"] == "b", "point_hash"] = "edited"
    changed = sync_collection(store, "c", edited, "course", WRITE)
    assert (changed.upserted, changed.unchanged, changed.deleted) == (1, 4, 1)
    assert changed.records_written == {"b"} and changed.records_gone == {"c"}
    assert store.retrieve("c", [edited.point_id[2]])[0][1]["point_hash"] == "edited"


def test_other_resource_types_and_records_that_failed_keep_their_points(store):
    sync_collection(store, "c", rows({"a": 1, "b": 2}), "course", WRITE)
    sync_collection(store, "c", rows({"v": 2}, resource_type="video"), "video", WRITE)
    kept = sync_collection(store, "c", rows({"a": 1}), "course", WRITE, keep_records={"b"})
    assert kept.deleted == 0 and store.count("c", {"record_key": "b"}) == 2
    gone = sync_collection(store, "c", rows({}).reindex(columns=rows({"a": 1}).columns), "course", WRITE)
    assert gone.deleted == 3 and store.count("c", {"resource_type": "course"}) == 0
    assert store.count("c", {"resource_type": "video"}) == 2


def test_force_writes_every_point_again(store):
    sync_collection(store, "c", rows({"a": 2}), "course", WRITE)
    forced = sync_collection(store, "c", rows({"a": 2}), "course", WRITE, force=True)
    assert (forced.upserted, forced.unchanged) == (2, 0)


def test_upserts_are_batched_and_report_progress(store, monkeypatch):
    calls = []
    original = store.upsert
    monkeypatch.setattr(store, "upsert", lambda name, points: calls.append(len(points)) or original(name, points))
    sync_collection(store, "c", rows({f"r{i}": 5 for i in range(50)}), "course", WRITE, batch_size=60)
    assert calls == [60, 60, 60, 60, 10]


def test_ensure_collections_creates_what_is_missing_and_recreate_drops_first(store):
    names = {"resources": "base.resources.v1", "content_files": "base.content_files.v1"}
    spec = {"resources": SPEC, "content_files": None}  # no chunks yet: the dimension is unknown
    assert ensure_collections(store, names, spec.get) == []
    assert "base.resources.v1" in store.collections() and "base.content_files.v1" not in store.collections()
    sync_collection(store, "base.resources.v1", rows({"a": 1}), "course", WRITE)
    assert ensure_collections(store, names, spec.get, recreate=True) == ["base.resources.v1"]
    assert store.count("base.resources.v1") == 0


def _collections(store, version: str) -> dict[str, str]:
    targets = {f"base.{kind}": f"base.{kind}.{version}" for kind in ("resources", "content_files")}
    for name in targets.values():
        store.ensure_collection(name, SPEC)
    return targets


def test_aliases_are_set_at_once_on_first_set_up(store):
    switch = switch_aliases(store, _collections(store, "v1"), every_partition_done=lambda: False)
    assert switch.moved is False and store.aliases() == {
        "base.resources": "base.resources.v1",
        "base.content_files": "base.content_files.v1",
    }


def test_aliases_move_together_only_when_every_partition_is_done_then_old_collections_go(store):
    switch_aliases(store, _collections(store, "v1"), every_partition_done=lambda: False)
    new = _collections(store, "v2")
    waiting = switch_aliases(store, new, every_partition_done=lambda: False)
    assert not waiting.moved and set(store.aliases().values()) == {"base.resources.v1", "base.content_files.v1"}
    done = switch_aliases(store, new, every_partition_done=lambda: True)
    assert done.moved and store.aliases() == {alias: name for alias, name in new.items()}
    assert sorted(done.removed) == ["base.content_files.v1", "base.resources.v1"]
    assert sorted(store.collections()) == sorted(new.values()) + ["c"]  # another base's collection stays


def test_old_collections_are_kept_when_asked(store):
    switch_aliases(store, _collections(store, "v1"), every_partition_done=lambda: False)
    moved = switch_aliases(store, _collections(store, "v2"), every_partition_done=lambda: True, keep_old=True)
    assert moved.moved and moved.removed == [] and "base.resources.v1" in store.collections()
