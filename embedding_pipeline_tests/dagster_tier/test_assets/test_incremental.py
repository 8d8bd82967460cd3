"""The least work that keeps Qdrant in step with the content database."""

import hashlib
import shutil
from pathlib import Path

import dagster as dg
import pytest

from embedding_pipeline.assets.state import PartitionState
from embedding_pipeline.mit_learn import OWN, own
from embedding_pipeline.sample_data import HERE
from embedding_pipeline.vector_store import Point

BEEKEEPING = (HERE / "files" / "urban_beekeeping.md").read_text()
FORCE = {"resources": {"embed_options": {"config": {"force_reembed": True}}}}


def _points(pipeline, kind: str, **match) -> dict[str, dict]:
    return pipeline.points(kind, **match)


@pytest.fixture
def embedded(pipeline):
    """The pipeline with the document and video partitions embedded once; encoder counts reset."""
    for partition in ("document", "video"):
        pipeline.materialize(partition)
    pipeline.encoded()
    return pipeline


def test_nothing_changed_nothing_embedded(embedded):
    result = embedded.materialize("document")
    assert embedded.encoded() == ([], [])
    dense = embedded.metadata(result, "dense_vectors")
    assert dense["texts_embedded"] == dense["texts"] == 0  # not even looked at: no record changed
    assert embedded.metadata(result, "sparse_vectors")["texts_embedded"] == 0
    assert embedded.metadata(result, "text_chunks")["chunks"] == 0
    points = embedded.metadata(result, "qdrant_points")
    assert points["points_upserted"] == 0 and points["points_unchanged"] == points["points"] > 30
    assert points["records_unchanged"] == 15 and points["batches"] == 0  # 5 resources, their information, 5 files
    assert points["heads_from"].startswith("the last whole run")  # Qdrant's were not read again
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "points_match_source"]
    assert check.passed and not check.metadata["every_point_listed"].value  # a count per collection sufficed


def test_a_damaged_heads_file_costs_only_a_read_of_qdrant(embedded):
    saved = PartitionState.load(embedded.instance, "video").heads_cache.path
    assert saved.exists()
    saved.write_bytes(b"not parquet")
    result = embedded.materialize("video")
    points = embedded.metadata(result, "qdrant_points")
    assert points["heads_from"] == "Qdrant" and points["points_upserted"] == 0
    assert embedded.encoded() == ([], [])
    assert embedded.metadata(embedded.materialize("video"), "qdrant_points")["heads_from"] != "Qdrant"  # saved again


def test_a_qdrant_restored_from_a_backup_older_than_an_edit_is_caught_though_its_counts_match(embedded):
    """The heads a run saved are trusted only while Qdrant holds as many points and a sample of heads agrees."""
    store_folder = Path(embedded.qdrant.path)
    backup = store_folder.with_name("backup")
    shutil.copytree(store_folder, backup)
    embedded.execute(
        "UPDATE {T}learningresource SET description = :d WHERE readable_id = 'yt-crispr'",
        d="Base editing and prime editing: the next generation of CRISPR gene therapies.",
    )
    embedded.materialize("video")
    shutil.rmtree(store_folder)
    backup.rename(store_folder)  # as many points as before the edit, the old description
    embedded.encoded()
    result = embedded.materialize("video")
    assert embedded.metadata(result, "qdrant_points")["heads_from"] == "Qdrant"
    assert len(embedded.encoded()[0]) == 2  # its text and its course information
    (payload,) = _points(embedded, "resources", readable_id="yt-crispr").values()
    assert payload["description"].startswith("Base editing")


def test_an_edited_description_sends_only_that_text_and_search_returns_it(embedded):
    embedded.execute(
        "UPDATE {T}learningresource SET description = :d, updated_on = CURRENT_TIMESTAMP WHERE readable_id = 'yt-crispr'",
        d="Base editing and prime editing: the next generation of CRISPR gene therapies.",
    )
    result = embedded.materialize("video")
    dense, sparse = embedded.encoded()  # its text and its course information
    assert len(dense) == 2 and dense == sparse and all("prime editing" in text for text in dense)
    points = embedded.metadata(result, "qdrant_points")
    assert points["points_upserted"] == 2
    assert (points["records_new"], points["records_changed"], points["records_unchanged"]) == (0, 2, 11)
    (payload,) = _points(embedded, "resources", readable_id="yt-crispr").values()
    assert payload["description"].startswith("Base editing and prime editing")


def test_a_run_sees_an_edit_that_did_not_bump_updated_on(embedded):
    embedded.execute("UPDATE {T}learningresource SET title = 'CRISPR, explained again' WHERE readable_id = 'yt-crispr'")
    embedded.materialize("video")
    dense, _ = embedded.encoded()
    assert len(dense) == 2 and all("CRISPR, explained again" in text for text in dense)


def test_an_edited_paragraph_reembeds_only_the_chunks_it_is_in(embedded):
    before = _points(embedded, "content_files", key="urban-beekeeping.md")
    edited = BEEKEEPING.replace("shaken into a cardboard box", "shaken gently into a ventilated cardboard box")
    embedded.execute(  # as the application does: the checksum follows the content
        "UPDATE {T}contentfile SET content = :c, checksum = :h WHERE key = 'urban-beekeeping.md'",
        c=edited, h=hashlib.sha256(edited.encode()).hexdigest(),
    )  # fmt: skip
    result = embedded.materialize("document")
    dense, _ = embedded.encoded()
    assert 1 <= len(dense) <= 2 and all("ventilated cardboard box" in text for text in dense)
    assert embedded.metadata(result, "dense_vectors")["texts_reused"] >= len(before) - 2
    after = _points(embedded, "content_files", key="urban-beekeeping.md")
    assert after.keys() == before.keys()
    points = embedded.metadata(result, "qdrant_points")  # every chunk's payload carries the new checksum
    assert (points["records_changed"], points["points_upserted"]) == (1, len(after))


def test_a_payload_only_change_updates_qdrant_without_the_encoders(embedded):
    embedded.execute(
        "UPDATE {T}learningresource SET view_count = 4321, updated_on = CURRENT_TIMESTAMP WHERE readable_id = 'yt-crispr'"
    )
    result = embedded.materialize("video")
    assert embedded.encoded() == ([], [])
    # the resource's point, and its course information's head with the new fingerprint (same text)
    assert embedded.metadata(result, "qdrant_points")["points_upserted"] == 2
    (payload,) = _points(embedded, "resources", readable_id="yt-crispr").values()
    assert payload["views"] == 4321


def test_deleted_and_unpublished_records_disappear_with_their_chunks_and_nothing_else(embedded):
    documents_before = _points(embedded, "resources", resource_type="document")
    chunks_before = _points(embedded, "content_files", **{own("resource_type"): "document"})
    safety_chunks = _points(embedded, "content_files", key="lab-safety.md")
    bees_chunks = _points(embedded, "content_files", resource_readable_id="doc-urban-beekeeping")  # and information
    embedded.execute("DELETE FROM {T}contentfile WHERE key = 'lab-safety.md'")
    embedded.execute("UPDATE {T}learningresource SET published = 0 WHERE readable_id = 'doc-urban-beekeeping'")
    result = embedded.materialize("document")
    assert embedded.encoded() == ([], [])
    points = embedded.metadata(result, "qdrant_points")
    assert points["points_deleted"] == len(safety_chunks) + len(bees_chunks) + 1
    assert (points["records_deleted"], points["records_new"], points["records_changed"]) == (4, 0, 0)
    documents_after = _points(embedded, "resources", resource_type="document")
    assert set(documents_before) - set(documents_after) == {
        pid for pid, p in documents_before.items() if p["readable_id"] == "doc-urban-beekeeping"
    }
    chunks_after = _points(embedded, "content_files", **{own("resource_type"): "document"})
    assert chunks_after.keys() == chunks_before.keys() - safety_chunks.keys() - bees_chunks.keys()
    assert len(_points(embedded, "resources", resource_type="video")) == 6  # another partition: untouched


def test_points_lost_or_added_in_qdrant_are_healed_by_the_next_run(embedded):
    """Points missing (deleted by hand) and extra (a point no record owns): only the lost texts are embedded again."""
    kept = _points(embedded, "content_files", **{own("resource_type"): "document"})
    lost = sorted(kept)[:5]
    with embedded.store() as store:
        name = embedded.qdrant.alias("content_files")
        store.delete(name, lost)
        ((_, _, vectors),) = store.retrieve(name, [sorted(kept)[-1]], with_vectors=True)
        extra = "00000000-0000-0000-0000-000000000001"
        payload = {OWN: {"resource_type": "document", "record_key": "library.gone.x.y", "point_hash": "x"}}
        store.upsert(name, [Point(extra, vectors, payload)])
    result = embedded.materialize("document")
    dense, _ = embedded.encoded()
    assert sorted(dense) == sorted(kept[pid]["chunk_content"] for pid in lost)  # their vectors were gone
    points = embedded.metadata(result, "qdrant_points")
    assert points["heads_from"] == "Qdrant"  # the counts moved: the heads the last run saved are not trusted
    assert (points["points_upserted"], points["points_deleted"]) == (5, 1)
    assert _points(embedded, "content_files", **{own("resource_type"): "document"}).keys() == kept.keys()


def test_force_reembed_embeds_and_upserts_everything_again(embedded):
    result = embedded.materialize("video", run_config=FORCE)
    dense, sparse = embedded.encoded()
    assert len(set(dense)) == embedded.metadata(result, "dense_vectors")["texts_embedded"] == 17
    assert len(sparse) == 17
    # 6 videos, 5 caption chunks, the videos' course information
    assert embedded.metadata(result, "qdrant_points")["points_upserted"] == 17


def test_recreate_collections_starts_from_empty_collections(embedded):
    recreate = {"resources": {"embed_options": {"config": {"recreate_collections": True}}}}
    result = embedded.materialize("video", run_config=recreate)
    assert result.success
    assert len(_points(embedded, "resources", resource_type="video")) == 6
    assert _points(embedded, "resources", resource_type="document") == {}  # as the old command did


def test_recreate_collections_is_refused_in_a_backfill(embedded):
    recreate = {"resources": {"embed_options": {"config": {"recreate_collections": True}}}}
    with pytest.raises(dg.Failure, match="a backfill or a run over several partitions would undo its own work"):
        embedded.materialize("video", run_config=recreate, tags={"dagster/backfill": "abc"})
    assert len(_points(embedded, "resources", resource_type="document")) == 5


def test_a_partition_without_content_runs_and_one_that_loses_all_its_content_is_emptied_when_allowed(pipeline):
    pipeline.execute("DELETE FROM {T}learningresource WHERE resource_type = 'video_playlist'")
    assert pipeline.materialize("video_playlist").success  # nothing to embed, nothing in Qdrant yet
    pipeline.materialize("video")
    pipeline.execute("UPDATE {T}learningresource SET published = 0 WHERE resource_type = 'video'")
    assert not pipeline.materialize("video", raise_on_error=False).success  # refused: see test_faults.py
    allowed = {"resources": {"embed_options": {"config": {"allow_mass_deletion": True}}}}
    result = pipeline.materialize("video", run_config=allowed)
    # 6 videos, 5 caption chunks, the videos' course information
    assert pipeline.metadata(result, "qdrant_points")["points_deleted"] == 17
    assert _points(pipeline, "resources", resource_type="video") == {}


def test_a_renamed_platform_rewrites_its_resources_payloads_and_embeds_only_their_course_information(embedded):
    """mit-learn moves only the platform's own `updated_on`; the run still sees which points show the name.
    Only the course information shows it in its text."""
    embedded.execute("UPDATE {T}learningresourceplatform SET name = 'MIT Libraries Press' WHERE code = 'library'")
    result = embedded.materialize("document")
    dense_texts, _ = embedded.encoded()
    assert len(dense_texts) == 5 and all("MIT Libraries Press" in text for text in dense_texts)
    points = embedded.metadata(result, "qdrant_points")
    dense = embedded.metadata(result, "dense_vectors")
    chunks = len(embedded.points("content_files", **{own("resource_type"): "document"}))
    assert (points["records_changed"], points["points_upserted"], dense["texts_embedded"]) == (15, 5 + chunks, 5)
    assert {p["platform"]["name"] for p in embedded.points("resources", resource_type="document").values()} == {
        "MIT Libraries Press"
    }
    assert embedded.metadata(embedded.materialize("video"), "qdrant_points")["points_upserted"] == 0
