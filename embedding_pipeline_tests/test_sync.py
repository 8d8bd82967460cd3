"""The synchronisation of a partition with Qdrant, as plain functions on the real model and engine (no Dagster)."""

from typing import ClassVar

import pytest
import sqlalchemy as sa

from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.resources.encoders.fastembed import FastEmbedEncoder
from embedding_pipeline.sample_data import load_sample_data
from embedding_pipeline.sync import Options, PartitionSync, list_records, switch_aliases
from embedding_pipeline.vector_store import CollectionSpec, collection_spec
from embedding_pipeline.vector_store.edge import EdgeStore
from embedding_pipeline_tests.conftest import resource

NAMES = {"resources": "t.resources.v1", "content_files": "t.content_files.v1"}


class Outage(RuntimeError):
    """The encoder's service went away (an API outage, a full disk, a kill)."""


class FlakyEncoder(FastEmbedEncoder):
    """The real model; it counts the texts it embeds, and fails once `fail_after` calls have succeeded."""

    embedded: ClassVar[list[str]] = []
    fail_after: ClassVar[int | None] = None

    def embed_documents(self, texts, progress=None):
        if FlakyEncoder.fail_after is not None:
            if FlakyEncoder.fail_after == 0:
                raise Outage("the embedding service is unreachable")
            FlakyEncoder.fail_after -= 1
        FlakyEncoder.embedded.extend(texts)
        return super().embed_documents(texts)


@pytest.fixture
def source(tmp_path) -> ContentSource:
    url = f"sqlite:///{tmp_path / 'content.db'}"
    load_sample_data(url)
    return ContentSource(batch_size=100, database_url=url)


@pytest.fixture
def run(tmp_path, source, model_dir):
    """Run the synchronisation of one partition as a run would; returns (plan, report)."""
    FlakyEncoder.embedded, FlakyEncoder.fail_after = [], None
    dense = FlakyEncoder(model_name="sentence-transformers/all-MiniLM-L6-v2", model_path=str(model_dir), batch_size=32)
    sparse, chunker = resource("sparse_encoder"), resource("chunker")

    def run(resource_type: str, **options):
        options = Options(**{"batch_size": 100, "upload_batch_size": 1000, **options})
        with source.reader(resource_type) as reader, EdgeStore(tmp_path / "qdrant") as store:
            sync = PartitionSync(store, reader, chunker, dense, sparse, NAMES, "v1", resource_type, options)
            plan = sync.plan()
            report = sync.run(plan, lambda kind: collection_spec(kind, dense.vector_name, dense.dim, "bm25", True))
            return plan, report

    return run


def execute(source: ContentSource, sql: str, **params) -> None:
    engine = sa.create_engine(source.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)
    engine.dispose()


def test_a_second_run_with_nothing_changed_reads_chunks_and_embeds_nothing(run):
    plan, first = run("document")
    assert (len(plan.new), first.texts_embedded, first.points_upserted) == (10, 87, 87)
    FlakyEncoder.embedded.clear()
    plan, again = run("document")
    assert (len(plan.unchanged), len(plan.todo), again.batches, again.chunks) == (10, 0, 0, 0)
    assert FlakyEncoder.embedded == [] and again.points_unchanged == 87


def test_keys_that_join_to_the_same_text_never_share_a_point(run, source):
    """`mitx.ocw` + `18` and `mitx` + `ocw.18`, each with a file of the same run and key: four records, four points."""
    for number, (platform, readable_id) in enumerate([("mitx.ocw", "18"), ("mitx", "ocw.18")]):
        execute(
            source,
            "INSERT INTO learning_resources (id, readable_id, platform, resource_type, title, published) "
            "VALUES (:i, :r, :p, 'program', :t, 1)", i=9000 + number, r=readable_id, p=platform, t=f"Program {number}",
        )  # fmt: skip
        execute(
            source,
            "INSERT INTO content_files (id, resource_id, run_readable_id, key, title, content, published) "
            "VALUES (:i, :r, 'y.r', 'x', 'Notes', :c, 1)", i=9100 + number, r=9000 + number, c=f"Notes {number}.",
        )  # fmt: skip
    plan, report = run("program")
    assert len({r.record_id for r in plan.new}) == len(plan.new) == 5 + 4
    assert report.points_upserted == 5 + 2 + 2


def test_records_go_in_batches_that_never_mix_resources_and_content_files(run):
    _, report = run("document", batch_size=3)
    assert report.batches == 4  # 5 resources in 3 + 2, 5 content files in 3 + 2
    assert report.records_done == {"resource": 5, "content_file": 5}


def test_a_run_that_fails_resumes_after_its_last_finished_batch(run, source):
    FlakyEncoder.fail_after = 2  # two batches embedded and written, then the service goes away
    with pytest.raises(Outage):
        run("document", batch_size=2)
    before = list(FlakyEncoder.embedded)
    FlakyEncoder.embedded.clear()
    FlakyEncoder.fail_after = None
    plan, report = run("document", batch_size=2)
    assert len(plan.unchanged) == 4 and len(plan.new) == 6  # the first two batches are done
    assert not set(FlakyEncoder.embedded) & set(before)  # nothing embedded twice
    assert report.points_upserted == 87 - 4


def test_an_edit_costs_its_record_only(run, source):
    run("video")
    FlakyEncoder.embedded.clear()
    execute(source, "UPDATE learning_resources SET description = 'Now with prime editing.', updated_on = '2025-03-01' "
            "WHERE readable_id = 'yt-crispr'")  # fmt: skip
    plan, report = run("video")
    assert [r.record_key for r in plan.changed] == ["youtube.yt-crispr"] and len(plan.unchanged) == 6
    assert len(FlakyEncoder.embedded) == 1 and "prime editing" in FlakyEncoder.embedded[0]
    assert (report.points_upserted, report.texts_reused) == (1, 0)


def test_a_touched_record_whose_text_did_not_change_is_rewritten_without_the_encoder(run, source):
    run("video")
    FlakyEncoder.embedded.clear()
    execute(source, "UPDATE content_files SET updated_on = '2025-03-01' WHERE key = 'captions.vtt.txt'")
    plan, report = run("video")
    assert len(plan.changed) == 1 and FlakyEncoder.embedded == []
    assert report.texts_reused == 1  # the head carries the new fingerprint and dates: rewritten, not re-embedded


def test_duplicate_record_keys_use_one_row_name_the_other_and_do_not_flap(run, source):
    execute(
        source,
        "INSERT INTO content_files (id, resource_id, run_readable_id, key, title, content, file_type, file_extension, "
        "url, checksum, published, updated_on) SELECT 900, resource_id, run_readable_id, key, title, "
        "'A second copy with other text.', file_type, file_extension, url, 'other', published, updated_on "
        "FROM content_files WHERE key = 'lab-safety.md'",
    )
    with source.reader("document") as reader:
        listing = list_records(reader)
    (message,) = listing.duplicates
    assert "lab-safety.md" in message and "id=900 used" in message
    run("document")
    FlakyEncoder.embedded.clear()
    plan, again = run("document")
    assert again.points_upserted == 0 and FlakyEncoder.embedded == [] and len(plan.unchanged) == 10


def test_deleted_records_lose_all_their_points(run, source):
    _, first = run("document")
    execute(source, "DELETE FROM content_files WHERE key = 'urban-beekeeping.md'")
    plan, report = run("document")
    (gone,) = plan.deleted
    assert gone.record_key.endswith("urban-beekeeping.md") and report.points_deleted == gone.chunk_count > 7
    assert report.partition_points["content_files"] == first.partition_points["content_files"] - gone.chunk_count


def test_a_record_that_cannot_be_read_is_named_and_keeps_its_points(run, source):
    run("video")
    execute(
        source, "UPDATE learning_resources SET title = '', updated_on = '2025-03-01' WHERE readable_id = 'yt-crispr'"
    )
    plan, report = run("video")
    assert report.failures == {"youtube.yt-crispr": "youtube.yt-crispr: field 'title' is empty"}
    assert report.points_deleted == 0 and report.partition_points["resources"] == 6


def _collections(store, version: str) -> dict[str, str]:
    targets = {f"base.{kind}": f"base.{kind}.{version}" for kind in ("resources", "content_files")}
    for name in targets.values():
        store.ensure_collection(name, CollectionSpec("dense", 4, "bm25", True))
    return targets


@pytest.fixture
def store(tmp_path):
    with EdgeStore(tmp_path / "aliases") as store:
        yield store


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
    assert done.moved and store.aliases() == new
    assert sorted(done.removed) == ["base.content_files.v1", "base.resources.v1"]
    assert sorted(store.collections()) == sorted(new.values())


def test_old_collections_are_kept_when_asked(store):
    switch_aliases(store, _collections(store, "v1"), every_partition_done=lambda: False)
    moved = switch_aliases(store, _collections(store, "v2"), every_partition_done=lambda: True, keep_old=True)
    assert moved.moved and moved.removed == [] and "base.resources.v1" in store.collections()
