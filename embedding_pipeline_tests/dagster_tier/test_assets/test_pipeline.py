"""The embed pipeline: sample database → chunks, vectors → embedded Qdrant, partition by partition."""

import pandas as pd

from embedding_pipeline.partitions import RESOURCE_TYPES


def _count(pipeline, kind: str, **match) -> int:
    return pipeline.count(kind, **match)


def _payloads(pipeline, kind: str) -> list[dict]:
    return list(pipeline.points(kind).values())


def test_every_partition_succeeds_and_has_points(embedded_pipeline):
    assert all(result.success for result in embedded_pipeline.results.values())
    for resource_type in RESOURCE_TYPES:
        assert _count(embedded_pipeline, "resources", resource_type=resource_type) > 0, resource_type


def test_content_chunks_are_within_the_token_limit_and_long_documents_are_split(embedded_pipeline):
    chunker = embedded_pipeline.resources["chunker"].get_chunker()
    payloads = _payloads(embedded_pipeline, "content_files")
    assert max(chunker.count_tokens(p["chunk_content"]) for p in payloads) <= chunker.chunk_size
    per_file = pd.Series([p["key"] for p in payloads]).value_counts()
    assert per_file["urban-beekeeping.md"] >= 7 and per_file["distributed-systems-notes.md"] >= 7


def test_markdown_chunks_that_lost_their_headers_start_with_the_header_path(embedded_pipeline):
    """As mit-learn's _chunk_markdown_documents writes them: a piece cut from under its headers starts with them."""
    chunks = [p for p in _payloads(embedded_pipeline, "content_files") if p["key"] == "urban-beekeeping.md"]
    swarm = next(c for c in chunks if "shaken into a cardboard box" in c["chunk_content"])
    assert swarm["chunk_content"].startswith("A Field Guide to Urban Beekeeping > Swarms\n\n### Catching a swarm")
    assert all(c["chunk_content"].startswith(("#", "A Field Guide to Urban Beekeeping")) for c in chunks)


def test_unpublished_records_are_not_embedded(embedded_pipeline):
    assert _count(embedded_pipeline, "resources", readable_id="ocw-11.001-retired") == 0
    assert _count(embedded_pipeline, "content_files", key="draft-exam.md") == 0


def test_materialization_metadata_reports_counts_models_and_rates(embedded_pipeline):
    result = embedded_pipeline.results["document"]
    source = embedded_pipeline.metadata(result, "source_content")
    chunks = embedded_pipeline.metadata(result, "text_chunks")
    dense = embedded_pipeline.metadata(result, "dense_vectors")
    sparse = embedded_pipeline.metadata(result, "sparse_vectors")
    points = embedded_pipeline.metadata(result, "qdrant_points")
    assert (source["resources"], source["content_files"], source["course_information"]) == (5, 5, 5)
    assert source["fetch_seconds"] > 0
    header = [cell.strip() for cell in chunks["sample_chunks"].splitlines()[0].split("|")]
    assert header == ["", "record", "tokens", "text", ""] and chunks["chunk_seconds"] > 0
    assert points["records_new"] == 15 and points["records_changed"] == points["records_deleted"] == 0
    assert chunks["chunks"] == points["content_files_points"] and chunks["tokens"] > 6000
    encoder = embedded_pipeline.resources["dense_encoder"]
    assert dense["model"] == encoder.model_name and dense["dimension"] == encoder.dim
    assert dense["texts_per_second"] > 0 and sparse["model"] == "Qdrant/bm25"
    assert points["points"] == chunks["resources"] + chunks["chunks"]
    assert points["dense_dimension"] == encoder.dim


def test_running_the_job_again_leaves_the_same_points(pipeline):
    pipeline.materialize("document")
    before = (_count(pipeline, "resources"), _count(pipeline, "content_files"))
    result = pipeline.materialize("document")
    assert result.success
    assert (_count(pipeline, "resources"), _count(pipeline, "content_files")) == before
    assert before[1] > 10


def test_a_broken_record_is_reported_and_the_rest_of_the_partition_is_embedded(pipeline):
    pipeline.execute("UPDATE {T}learningresource SET ocw_topics = '[not json' WHERE readable_id = 'yt-crispr'")
    pipeline.execute("UPDATE {T}learningresource SET title = '' WHERE readable_id = 'yt-sourdough'")
    result = pipeline.materialize("video")
    assert result.success
    chunks = pipeline.metadata(result, "text_chunks")
    assert chunks["failed_records"] == 4  # each with its course information, made of the same row
    assert "youtube.yt-crispr: field 'ocw_topics' is not JSON" in chunks["failures"]
    assert "youtube.yt-sourdough: field 'title' is empty" in chunks["failures"]
    assert _count(pipeline, "resources", resource_type="video") == 4


def test_a_failed_record_keeps_its_points_and_a_deleted_one_loses_them(pipeline):
    pipeline.materialize("podcast_episode")
    ((bebop,),) = pipeline.rows("SELECT id FROM {T}learningresource WHERE readable_id = 'ep-bebop'")
    pipeline.execute("DELETE FROM {T}contentfile WHERE learning_resource_id = :i", i=bebop)
    pipeline.execute("DELETE FROM {T}learningresource WHERE id = :i", i=bebop)
    pipeline.execute("UPDATE {T}learningresource SET title = '' WHERE readable_id = 'ep-black-holes'")
    result = pipeline.materialize("podcast_episode")
    # bebop, its five chunks and its course information
    assert pipeline.metadata(result, "qdrant_points")["points_deleted"] == 7
    assert _count(pipeline, "resources", readable_id="ep-bebop") == 0
    assert _count(pipeline, "content_files", resource_readable_id="ep-bebop") == 0
    assert _count(pipeline, "resources", readable_id="ep-black-holes") == 1
    assert _count(pipeline, "resources", resource_type="podcast_episode") == 5


def test_point_ids_are_deterministic_across_fresh_pipelines(pipeline, embedded_pipeline):
    pipeline.materialize("course")
    assert _ids(pipeline) == _ids(embedded_pipeline)
    assert len(_ids(pipeline)) == 8  # the published courses


def _ids(pipeline) -> set[str]:
    return set(pipeline.points("resources", resource_type="course"))
