"""Our points are mit-learn's: ids, texts and payloads compared with what mit-learn's own code makes of the
same rows (`fixtures/mit_learn_golden.json`, written by `fixtures/make_mit_learn_golden.py` inside a mit-learn
checkout at 2f304af, from both samples loaded into its PostgreSQL)."""

import json
from pathlib import Path

import pytest

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.content import ContentDatabase
from embedding_pipeline.mit_learn import OWN, RESOURCE_TYPES
from embedding_pipeline.partition.points import content_file_points, resource_points
from embedding_pipeline.partition.records import list_records
from embedding_pipeline.sample_data import EVERY_SAMPLE, load_sample_data

GOLDEN = json.loads((Path(__file__).parent.parent / "fixtures" / "mit_learn_golden.json").read_text())
# Keys of mit-learn's resource document this project does not write, with why. The first six are
# indexing-only: mit-learn's search drops them from responses (RESOURCES_PAYLOAD_EXCLUDE).
NOT_WRITTEN = {
    "_id", "resource_relations", "is_learning_material", "resource_age_date", "featured_rank", "is_incomplete_or_stale",
    # tables beyond the 16 this project reads (images, relationships, the per-type detail tables)
    "image", "children", "position", "best_run_id", "program", "learning_path", "podcast", "podcast_episode", "video",
    "video_playlist", "playlists", "content_files",
}  # fmt: skip
NOT_WRITTEN_IN_RUNS = {"image", "instructors", "resource_prices"}
# Two content files of one resource with the same key (the sample's duplicate): mit-learn writes both to
# one point, this project the newer one and names the other.
DUPLICATE_KEY = ".unplatformed-guide..guide.txt"
# What mit-learn embeds: published resources (and test-mode ones), and their files.
EMBEDDED = [r for r in GOLDEN["resources"] if r["payload"]["published"] or r["payload"]["test_mode"]]
EMBEDDED_IDS = {r["payload"]["readable_id"] for r in EMBEDDED}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('golden') / 'content.db'}"
    load_sample_data(url, samples=EVERY_SAMPLE)
    return ContentDatabase(url)


def our_points(database: ContentDatabase, chunker: Chunker) -> dict[str, dict]:
    points = {}
    for resource_type in RESOURCE_TYPES:
        with database.reader(resource_type) as reader:
            records = list(list_records(reader).records.values())
            files = [r for r in records if r.kind == "content_file"]
            resources = reader.resources([r.source_id for r in records if r.kind == "resource"])
            rows, parents = (
                reader.content_files([r.source_id for r in files]),
                reader.resources({r.resource_id for r in files}),
            )
            for record in records:
                if record.kind == "resource":
                    made = resource_points(record, resources[record.source_id], chunker)
                else:
                    made = content_file_points(record, rows[record.source_id], parents[record.resource_id], chunker)
                points.update({point["point_id"]: point for point in made})
    return points


def differences(ours, theirs, path: str = "") -> list[str]:
    """Where a value we write differs from mit-learn's (keys mit-learn writes and we do not are not looked at)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return [d for key in ours for d in differences(ours[key], theirs.get(key, "<absent>"), f"{path}.{key}")]
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [d for i, (a, b) in enumerate(zip(ours, theirs)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if ours == theirs else [f"{path}: {ours!r} != {theirs!r}"]


def test_resources_have_mit_learns_point_ids_texts_and_documents(sample):
    """vector_search.utils._process_resource_embeddings: `ids.append(vector_point_id(vector_point_key(doc)))`,
    `docs.append(_learning_resource_embedding_context(doc))`, the document itself as the payload."""
    ours = our_points(sample, Chunker(None, 512, 0))
    assert len(EMBEDDED) == len(GOLDEN["resources"]) - 1  # the sample's one unpublished resource
    for golden in EMBEDDED:
        point = ours[golden["id"]]  # a KeyError names a resource whose id is not mit-learn's
        assert point["text"] == golden["text"], golden["key"]
        payload = {key: value for key, value in point["payload"].items() if key != OWN}
        assert differences(payload, golden["payload"], golden["key"]) == []
        assert set(golden["payload"]) - set(payload) <= NOT_WRITTEN, golden["key"]
        for run, golden_run in zip(payload["runs"], golden["payload"]["runs"], strict=True):
            assert set(golden_run) - set(run) == NOT_WRITTEN_IN_RUNS
    assert set(ours[GOLDEN["resources"][0]["id"]]["payload"]) - set(GOLDEN["resources"][0]["payload"]) == {OWN}


@pytest.mark.parametrize("mode, encoding_name", [("characters", None), ("cl100k_base", "cl100k_base")])
def test_chunks_have_mit_learns_ids_texts_and_payloads(sample, mode, encoding_name):
    """vector_search.utils._generate_content_file_points: chunks of `_chunk_documents` or
    `_chunk_markdown_documents`, ids `vector_point_id(vector_point_key(doc, chunk_number=chunk_id,
    document_type="content_file"))`, payload `_with_run_readable_id_fallback({...})`; by characters when
    LITELLM_TOKEN_ENCODING_NAME is not set (`_get_text_splitter`), by tokens when it is."""
    ours = our_points(sample, Chunker(encoding_name, 512, 0))
    golden = [
        point
        for file in GOLDEN["content_files"][mode]
        for point in file["points"]
        if file["embedded"] and point["payload"]["resource_readable_id"] in EMBEDDED_IDS
    ]
    assert len(golden) > 100
    for expected in golden:
        point = ours[expected["id"]]
        if point["record_key"] == DUPLICATE_KEY:
            continue
        payload = {key: value for key, value in point["payload"].items() if key != OWN}
        assert payload == expected["payload"], expected["key"]
        assert point["text"] == expected["payload"]["chunk_content"]
    assert {p["point_id"] for p in ours.values() if p["collection"] == "content_files"} == {p["id"] for p in golden}
