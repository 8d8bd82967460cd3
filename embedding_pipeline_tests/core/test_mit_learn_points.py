"""Our points are mit-learn's: ids, texts and payloads compared with what mit-learn's own code makes of the
same rows (`fixtures/mit_learn_golden.json`, written by `fixtures/make_mit_learn_golden.py` inside a mit-learn
checkout at 2f304af, from both samples loaded into its PostgreSQL)."""

import hashlib
import json
import re
from pathlib import Path

import pytest

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.content import ContentDatabase
from embedding_pipeline.mit_learn import OWN, RESOURCE_TYPES
from embedding_pipeline.partition.points import record_points
from embedding_pipeline.partition.records import list_records
from embedding_pipeline.resources import build_resources
from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.sample_data import EVERY_SAMPLE, load_sample_data
from embedding_pipeline.settings import Settings

GOLDEN = json.loads((Path(__file__).parent.parent / "fixtures" / "mit_learn_golden.json").read_text())
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
    return ContentDatabase(url, app_base_url=GOLDEN["app_base_url"])


SET_SECTIONS = ("**Instructors**", "**Levels**", "**Languages**")


def sets_sorted(text: str) -> str:
    """A course information text with the lines of the sections mit-learn lists from a Python set sorted:
    their order in mit-learn's text changes from process to process (string hashing is salted)."""
    sections = re.split(r"(?=\n\*\*)", text)
    return "".join(
        section.split("\n\n", 1)[0] + "\n\n" + "\n".join(sorted(section.split("\n\n", 1)[1].split("\n")))
        if section.strip().startswith(SET_SECTIONS)
        else section
        for section in sections
    )


FILE_KEYS: set[str] = set()  # of the content files our_points made


def our_points(database: ContentDatabase, chunker: Chunker) -> dict[str, dict]:
    points = {}
    FILE_KEYS.clear()
    for resource_type in RESOURCE_TYPES:
        with database.reader(resource_type) as reader:
            records = list(list_records(reader).records.values())
            files = [r for r in records if r.kind == "content_file"]
            FILE_KEYS.update(r.record_key for r in files)
            resources = reader.resources([r.source_id for r in records if r.kind == "resource"])
            rows, parents = (
                reader.content_files([r.source_id for r in files]),
                reader.resources({r.resource_id for r in files}),
            )
            for record in records:
                row = rows[record.source_id] if record.kind == "content_file" else resources[record.source_id]
                made = record_points(record, row, parents.get(record.resource_id), chunker)
                points.update({point.point_id: point for point in made})
    return points


def same_document(ours: dict, theirs: dict, key: str) -> None:
    """Our payload is mit-learn's document key for key, but for our bookkeeping and featured_rank's random part."""
    ours = {k: v for k, v in ours.items() if k != OWN}
    ranks = ours.pop("featured_rank"), theirs.pop("featured_rank")
    assert ours == theirs, key
    assert [rank is None for rank in ranks] == [ranks[1] is None] * 2, key
    if ranks[1] is not None:  # mit-learn's position + random(); ours position + a fraction drawn from the key
        assert int(ranks[0]) == int(ranks[1]) and 0 <= ranks[0] - int(ranks[0]) < 1, key


def test_resources_have_mit_learns_point_ids_texts_and_documents(sample):
    """vector_search.utils._process_resource_embeddings: `ids.append(vector_point_id(vector_point_key(doc)))`,
    `docs.append(_learning_resource_embedding_context(doc))`, the document (serialize_bulk_learning_resources)
    itself as the payload: every key of every resource type, images, children, playlists, per-type objects, channel
    URLs, indexing-only keys. The sample's runs are dated so that each best run is the same from the golden's
    `generated_at` until 2099."""
    ours = our_points(sample, Chunker(None, 512, 0))
    assert len(EMBEDDED) == len(GOLDEN["resources"]) - 1  # the sample's one unpublished resource
    shown = {"image", "children", "best_run_id", "playlists", "featured_rank", "resource_age_date"}
    for golden in EMBEDDED:
        point = ours[golden["id"]]  # a KeyError names a resource whose id is not mit-learn's
        assert point.text == golden["text"], golden["key"]
        same_document(point.payload, dict(golden["payload"]), golden["key"])
        shown -= {key for key, value in golden["payload"].items() if value}
    assert not shown  # the sample gives each of them a value somewhere
    types = {g["payload"]["resource_type"]: g["payload"] for g in EMBEDDED}
    assert all(types[kind].get(kind) for kind in ("course", "program", "video", "podcast", "podcast_episode",
                                                   "video_playlist", "learning_path"))  # fmt: skip


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
        if point.record_key == DUPLICATE_KEY:
            continue
        payload = {key: value for key, value in point.payload.items() if key != OWN}
        assert payload == expected["payload"], expected["key"]
        assert point.text == expected["payload"]["chunk_content"]
    files = {p.point_id for p in ours.values() if p.record_key in FILE_KEYS}
    assert files == {p["id"] for p in golden}


def test_course_information_has_mit_learns_ids_texts_and_payloads(sample):
    """vector_search.utils._embed_course_metadata_as_contentfile: for every resource it embeds, the chunks of
    `LearningResourceMetadataDisplaySerializer(doc).render_chunks()`, ids `vector_point_id(vector_point_key(doc,
    document_type="course_information", chunk_number=...))`, payload with `key`, `checksum`, `file_type`
    "course_metadata" and the resource's offeror, platform and URL."""
    ours = our_points(sample, Chunker(None, 512, 0))
    golden = [
        point
        for resource in GOLDEN["course_information"]
        for point in resource["points"]
        if point["payload"]["resource_readable_id"] in EMBEDDED_IDS
    ]
    assert len(golden) > len(EMBEDDED)  # a program's long information takes two chunks
    sections = {"Runs/Sessions", "Instructors", "Duration", "As Taught In", "Child Courses And Programs"}
    assert all(any(f"**{s}" in p["payload"]["chunk_content"] for p in golden) for s in sections)
    same_order = 0
    for expected in golden:
        point = ours[expected["id"]]
        payload = {k: v for k, v in point.payload.items() if k != OWN}
        assert point.text == payload["chunk_content"]
        assert sets_sorted(payload.pop("chunk_content")) == sets_sorted(expected["payload"]["chunk_content"])
        if point.text == expected["payload"]["chunk_content"]:  # the checksum covers the order too
            same_order += 1
            assert payload["checksum"] == expected["payload"]["checksum"], expected["key"]
        payload.pop("checksum")
        assert payload == {k: v for k, v in expected["payload"].items() if k not in ("chunk_content", "checksum")}
    assert same_order >= len(golden) - 2
    information = {p.point_id for p in ours.values() if p.payload.get("file_type") == "course_metadata"}
    assert information == {p["id"] for p in golden}


def test_a_video_or_document_folds_its_own_files_into_its_text_and_document(sample):
    """vector_search.utils._learning_resource_embedding_context: `f"{context}\\n\\n## Content\\n{content}"` from the
    `content_files` VideoResourceSerializer and DocumentResourceSerializer list (the resource's own files,
    `direct_learning_resource`), whose first file's description stands in for a missing one (`get_description`)."""
    ours = our_points(sample, Chunker(None, 512, 0))
    folding = [r for r in EMBEDDED if "\n\n## Content\n" in r["text"]]
    assert {r["payload"]["resource_type"] for r in folding} == {"video", "document"}
    video = next(r for r in folding if r["payload"]["resource_type"] == "video")
    assert video["payload"]["description"] == video["payload"]["content_files"][0]["description"]
    for golden in folding:
        point = ours[golden["id"]]
        assert point.text == golden["text"]
        files = point.payload["content_files"]
        assert [f["key"] for f in files] == [f["key"] for f in golden["payload"]["content_files"]]
        # as serialize_learning_resource_for_update writes them: with their text, summary and flashcards (mit-learn's
        # search drops those when it serves a payload, _trim_indexing_only_list_fields)
        assert files == golden["payload"]["content_files"]
        assert all("content" in f for f in files)
    # their own files are no content-file points of theirs
    assert not any(p.payload.get("key") == "notYouTube123-notes" for p in ours.values() if "chunk_number" in p.payload)


def long_text(words: int, special: bool) -> str:  # as make_mit_learn_golden.long_text
    return " ".join(f"word{i}" for i in range(words)) + (" <|endoftext|>" if special else "")


@pytest.mark.parametrize("case", GOLDEN["truncations"], ids=lambda c: f"{c['model']}-{c['words']}-{c['special']}")
def test_a_resources_text_is_cut_to_the_dense_models_limit_as_mit_learn_cuts_it(case):
    """vector_search.encoders.utils.truncate_to_model_limit as _learning_resource_embedding_context calls it: to
    the model's max_input_tokens (LiteLLM's model info) in the LiteLLM encoder's token encoding when both are
    known, else to 20,000 characters (another encoder; a model tiktoken does not know; a special token)."""
    resource = TextChunker(chunk_size=512, chunk_overlap=0, limit_model=case["model"] if case["litellm"] else None)
    cut = resource.get_chunker().fit_to_model(long_text(case["words"], case["special"]))
    assert (len(cut), hashlib.md5(cut.encode()).hexdigest()) == (case["length"], case["md5"])


def test_the_litellm_encoder_cuts_resource_texts_by_its_models_limit(monkeypatch):
    monkeypatch.setenv("QDRANT_ENCODER", "vector_search.encoders.litellm.LiteLLMEncoder")
    monkeypatch.setenv("QDRANT_DENSE_MODEL", "text-embedding-3-small")
    assert build_resources(Settings.from_env())["chunker"].limit_model == "text-embedding-3-small"
    monkeypatch.delenv("QDRANT_ENCODER")
    assert build_resources(Settings.from_env())["chunker"].limit_model is None
