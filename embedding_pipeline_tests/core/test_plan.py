"""Planning against heads: what is new, changed, unchanged or deleted; damage; verification; the deletion guard."""

import pytest

from embedding_pipeline.mit_learn import OWN
from embedding_pipeline.partition.heads import Head, HeadsFile, stored_heads
from embedding_pipeline.partition.plan import Damage, MassDeletion, RunOptions, check_deletions, make_plan, verify
from embedding_pipeline.partition.records import list_records
from embedding_pipeline.vector_store import Point


def _listing(world, resource_type: str):
    with world.database.reader(resource_type) as reader:
        return list_records(reader)


def _vectors(world) -> dict:
    return {
        world.dense.vector_name: world.dense.embed_query("x").tolist(),
        world.sparse.vector_name: world.sparse.embed_query("x"),
    }


def _head(record, chunks: int = 1, fingerprint: str | None = None) -> Head:
    return Head(record.record_id, record.record_key, fingerprint or record.fingerprint, chunks, record.collection)


def test_records_are_new_changed_unchanged_or_deleted_by_their_heads(world):
    listing = _listing(world, "video")
    records = list(listing.records.values())
    gone = Head("gone-id", "youtube.gone", "f", 2, "resources")
    heads = {r.record_id: _head(r) for r in records[:3]} | {records[3].record_id: _head(records[3], fingerprint="old")}
    plan = make_plan(listing, heads | {"gone-id": gone}, Damage())
    assert (len(plan.new), len(plan.changed), len(plan.unchanged), plan.deleted) == (len(records) - 4, 1, 3, [gone])
    assert [r.kind for r in plan.todo] == sorted((r.kind for r in plan.todo), key=lambda kind: kind != "resource")


def test_scoped_runs_leave_the_rest_alone(world):
    listing = _listing(world, "course")
    gone = Head("gone-id", "ocw.gone", "f", 1, "resources")
    some = next(r for r in listing.records.values() if r.kind == "resource")
    by_ids = make_plan(listing, {"gone-id": gone}, Damage(), RunOptions(resource_ids=frozenset({some.source_id})))
    assert {r.source_id for r in by_ids.new if r.kind == "resource"} == {some.source_id} and by_ids.deleted == []
    gone_file = Head("gone-file", "ocw.gone.x.y", "f", 3, "content_files")
    resources_only = make_plan(
        listing, {"gone-id": gone, "gone-file": gone_file}, Damage(), RunOptions(content_files=False)
    )
    # mit-learn writes a resource's course information with the resource, files or not
    assert {r.kind for r in resources_only.new} == {"resource", "course_information"}
    assert resources_only.deleted == [gone]


def test_deleting_more_than_the_share_or_everything_is_refused(world):
    listing = _listing(world, "video")
    heads = {r.record_id: _head(r) for r in listing.records.values()}
    gone = [Head(f"gone-{i}", f"youtube.gone-{i}", "f", 1, "resources") for i in range(3)]
    plan = make_plan(listing, heads | {h.record_id: h for h in gone}, Damage())
    check_deletions(plan, "video", 0.5)  # 3 of 16 points
    with pytest.raises(MassDeletion, match="would delete 3 of the partition's 16 points"):
        check_deletions(plan, "video", 0.15)
    check_deletions(plan, "video", None)  # allowed
    everything = make_plan(listing.__class__(), heads, Damage())
    with pytest.raises(MassDeletion, match="would delete 13 of the partition's 13 points"):
        check_deletions(everything, "video", 1.0)  # all of them, whatever the share


def test_verification_names_missing_extra_and_out_of_date_points(world):
    world.run("video")
    listing = _listing(world, "video")
    names = world.names.by_kind
    assert verify(world.store, names, "video", listing, set()).passed
    crispr = next(r for r in listing.records.values() if r.record_key == "youtube.yt-crispr")
    world.store.delete(names["resources"], [crispr.record_id])
    failed = verify(world.store, names, "video", listing, set())
    assert not failed.passed and failed.missing == ["youtube.yt-crispr (not written)"]  # its only point is its head
    assert (failed.expected_points, failed.points_in_qdrant) == (13, 12)
    assert verify(world.store, names, "video", listing, {crispr.record_id}).passed  # it failed: not held against Qdrant
    world.store.upsert(names["resources"], [Point("00000000-0000-0000-0000-0000000000aa", _vectors(world), {
        OWN: {"resource_type": "video", "record_id": "nobody"}})])  # fmt: skip
    assert verify(world.store, names, "video", listing, {crispr.record_id}).extra == [
        "00000000-0000-0000-0000-0000000000aa"
    ]
    world.execute("UPDATE {T}learningresource SET title = 'Sourdough, again' WHERE readable_id = 'yt-sourdough'")
    stale = verify(world.store, names, "video", _listing(world, "video"), set())
    assert stale.out_of_date == ["youtube.yt-sourdough", "youtube.yt-sourdough.course_information"]


def test_saved_heads_are_used_only_while_qdrant_is_in_the_state_they_describe(world, tmp_path):
    world.run("video")
    heads = stored_heads(world.store, world.names.by_kind, "video")
    saved = HeadsFile(tmp_path / "saved.parquet")
    saved.save(heads, "state-1")
    assert saved.load("state-1") == heads and saved.load("state-2") is None
    saved.path.write_bytes(b"not parquet")
    assert saved.load("state-1") is None  # a damaged file only costs a read of Qdrant
    saved.forget()
    assert not saved.path.exists() and saved.load("state-1") is None
