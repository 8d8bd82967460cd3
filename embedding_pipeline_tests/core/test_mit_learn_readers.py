"""The reader contract: mit-learn's reader calls (`mit_learn_readers.py`, each copied from the mit-learn line it
names) replayed against collections this project wrote from both samples, with mit-learn's default sparse
encoder (its hashing vectorizer). What each call must return is computed from mit-learn's own documents for
the same rows (`fixtures/mit_learn_golden.json`), never from our payloads.

The store is qdrant-client's in-process stand-in for a Qdrant server (`:memory:`), the API mit-learn's
readers call; `test_mit_learn_readers_embedded.py` replays what the embedded engine can answer.
"""

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
from qdrant_client import models

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.mit_learn import OWN, RESOURCE_TYPES, vector_point_id
from embedding_pipeline.resources.encoders.sparse_hash import SparseHashEncoder
from embedding_pipeline.sample_data import EVERY_SAMPLE
from embedding_pipeline_tests.core.conftest import World
from embedding_pipeline_tests.support import mit_learn_readers as readers

GOLDEN = json.loads((Path(__file__).parent.parent / "fixtures" / "mit_learn_golden.json").read_text())
DOCS = [r["payload"] for r in GOLDEN["resources"] if r["payload"]["published"] or r["payload"]["test_mode"]]
RESOURCES, FILES = "resource_embeddings.resources", "resource_embeddings.content_files"
# Filters on dates are not made by mit-learn's search (they are sort keys); each other key is filtered on.
FILTERED = [p for p in readers.QDRANT_RESOURCE_PARAM_MAP if p not in ("next_start_date", "created_on")]
# Qdrant facets keyword, integer and bool indexes: every key of the map but the two dates.
FACETED = FILTERED


# The stand-in searches exactly, whatever `search_params` say (a server uses them: HNSW, quantization).
pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(
        tmp_path_factory.mktemp("readers"), samples=EVERY_SAMPLE, sparse=SparseHashEncoder(),
        chunker=Chunker(None, 512, 0), base="resource_embeddings",
    )  # fmt: skip
    for resource_type in RESOURCE_TYPES:
        assert world.run(resource_type).verification.passed
    yield world
    world.store.close()


@pytest.fixture(scope="module")
def client(world):
    return world.store.client


def common_value(field: str):
    """The value of `field` most documents share (what a user would filter on)."""
    values = Counter(
        str(v).lower() if isinstance(v, bool) else v
        for doc in DOCS
        for v in set(map(json.dumps, readers.extract_values(doc, field)))
    )
    return json.loads(values.most_common(1)[0][0]) if values else None


def value_counts(rows: list[dict], field: str) -> Counter:
    """How many rows hold each value at `field` (each value once per row), keyed as a facet shows it."""
    return Counter(
        str(v).lower() if isinstance(v, bool) else str(v)
        for row in rows
        for v in {json.dumps(v) for v in readers.extract_values(row, field)}
        for v in [json.loads(v)]
    )


# The chunks mit-learn writes of the files it embeds, of the resources it embeds: their payloads.
CHUNKS = [
    p["payload"]
    for f in sorted(GOLDEN["content_files"]["characters"], key=lambda f: f["content_file_id"])
    if f["embedded"]
    for p in f["points"]
    if p["payload"]["resource_readable_id"] in {d["readable_id"] for d in DOCS}
] + [  # and the course information of the resources it embeds
    p["payload"]
    for r in GOLDEN["course_information"]
    for p in r["points"]
    if p["payload"]["resource_readable_id"] in {d["readable_id"] for d in DOCS}
]
# As many as points they make (two files with one key share theirs: the later one's, written last).
CHUNK_POINTS = list({(p["resource_readable_id"], p["key"], p["chunk_number"]): p for p in CHUNKS}.values())


def expected(field: str, value) -> set[str]:
    return {doc["readable_id"] for doc in DOCS if value in readers.extract_values(doc, field)}


def readable_ids(points) -> set[str]:
    return {point.payload["readable_id"] for point in points}


@pytest.mark.parametrize("param", FILTERED)
def test_resource_search_with_each_filter_finds_exactly_the_resources_mit_learn_documents_match(world, client, param):
    """views.py l.322 `search_filter = qdrant_query_conditions(params, ...)`, then l.384 `client.query_points(
    **search_params)` with a query (l.137 _build_search_params) and l.296 `client.scroll` without one."""
    field = readers.QDRANT_RESOURCE_PARAM_MAP[param]
    value = common_value(field)
    assert value is not None, f"no sample document has {field}"
    value = value if isinstance(value, bool) else [value]
    search_filter = readers.qdrant_query_conditions({param: value}, readers.QDRANT_RESOURCE_PARAM_MAP)
    want = expected(field, value if isinstance(value, bool) else value[0])
    query = world.dense.embed_query("learning").tolist()
    params = readers.search_params(RESOURCES, search_filter, 100, 100, None, query, world.dense.vector_name, None,
                                   "", resources=True)  # fmt: skip
    found = readers.resource_payload_hits(client.query_points(**params).points)
    assert {hit["readable_id"] for hit in found} == want
    scrolled, _ = client.scroll(RESOURCES, scroll_filter=search_filter, limit=1000, with_payload=True)
    assert readable_ids(scrolled) == want


@pytest.mark.parametrize("param", FACETED)
def test_facets_count_what_mit_learns_documents_hold(client, param):
    """utils.py l.1469 `client.facet(collection_name=..., key=qdrant_field, facet_filter=..., limit=100)`."""
    counts = value_counts(DOCS, readers.QDRANT_RESOURCE_PARAM_MAP[param])
    facets = readers.facet(client, RESOURCES, param, {}, readers.QDRANT_RESOURCE_PARAM_MAP)
    assert {hit["key"]: hit["doc_count"] for hit in facets} == dict(counts.most_common(100))


@pytest.mark.parametrize("order_by", ["created_on", "-created_on", "next_start_date", "-views", "views"])
def test_sorting_orders_as_mit_learns_documents_do(world, client, order_by):
    """views.py l.287 scroll with `order_by=self._format_order_by(order_by)`, and l.232 a dense prefetch under an
    `OrderByQuery` (sorting needs the range index mit-learn makes: DATETIME, INTEGER)."""
    key = order_by.lstrip("-")
    values = sorted((doc[key] for doc in DOCS if doc.get(key) is not None), reverse=order_by.startswith("-"))
    points, _ = client.scroll(RESOURCES, limit=1000, order_by=readers.format_order_by(order_by), with_payload=True)
    assert [point.payload[key] for point in points] == values
    query = world.dense.embed_query("learning").tolist()
    params = readers.search_params(RESOURCES, None, 1000, 1000, order_by, query, world.dense.vector_name, None, "",
                                   resources=True)  # fmt: skip
    assert [point.payload[key] for point in client.query_points(**params).points] == values


def test_a_title_made_into_a_hash_vectorizer_query_finds_its_resource_first(world, client):
    """With QDRANT_SPARSE_ENCODER_V2=vector_search.encoders.sparse_hash.SparseHashEncoder the reader makes the
    query vector itself (views.py l.177 `encoder_sparse.embed(query_string)`): a resource's title finds it first
    in a sparse query, and in the hybrid one (l.185, the program boost formula included)."""
    sparse, ranks = SparseHashEncoder(), {}
    for doc in DOCS:
        vector = sparse.embed_query(doc["title"])
        query = models.SparseVector(indices=vector.indices, values=vector.values)
        hits = client.query_points(RESOURCES, query=query, using=sparse.vector_name, limit=3).points
        ranks[doc["readable_id"]] = [hit.payload["readable_id"] for hit in hits].index(doc["readable_id"])
    # Second only behind a shorter text with the same words (47 of the 50 samples are first; three second:
    # "Foundations of Artificial Intelligence" behind "Artificial Intelligence", and two alike).
    assert ranks["ocw-18.06"] == 0 and max(ranks.values()) <= 1
    assert sum(rank == 0 for rank in ranks.values()) >= 0.9 * len(DOCS)
    doc = next(d for d in DOCS if d["readable_id"] == "ocw-18.06")
    vector = sparse.embed_query(doc["title"])
    params = readers.search_params(
        RESOURCES, None, 5, 50, None, world.dense.embed_query(doc["title"]).tolist(), world.dense.vector_name,
        models.SparseVector(indices=vector.indices, values=vector.values), sparse.vector_name, resources=True,
    )  # fmt: skip
    assert readers.resource_payload_hits(client.query_points(**params).points)[0]["readable_id"] == "ocw-18.06"


def test_served_payloads_hold_the_api_fields_and_our_key_only(client):
    """utils.py l.1220 _resource_payload_hits serves payloads as the API's resources; mit-learn's readers take
    `(payload.get("platform") or {}).get("code")` (l.1236) and gain only this project's one key."""
    points, _ = client.scroll(RESOURCES, limit=1000, with_payload=readers.search_params(
        RESOURCES, None, 1, 1, None, [0.0], "", None, "", resources=True)["with_payload"])  # fmt: skip
    hits = readers.resource_payload_hits(points)
    assert len(hits) == len(DOCS)
    for hit in hits:
        assert (hit.get("platform") or {}).get("code", "") is not None
        assert not set(hit) & set(readers.RESOURCES_PAYLOAD_EXCLUDE)


@pytest.mark.parametrize("param", [p for p in readers.QDRANT_CONTENT_FILE_PARAM_MAP if p not in ("flashcards",)])
def test_content_file_search_with_each_filter_finds_the_chunks_mit_learn_wrote(world, client, param):
    """views.py l.738 content-file search: `qdrant_query_conditions(params, collection_name=CONTENT_FILES...)`;
    the chunks expected are the ones mit-learn's `_generate_content_file_points` made of the same files."""
    golden = CHUNKS
    field = readers.QDRANT_CONTENT_FILE_PARAM_MAP[param]
    values = Counter(json.dumps(v) for p in golden for v in readers.extract_values(p, field))
    if not values:
        pytest.skip(f"no sample chunk has {field}")
    value = json.loads(values.most_common(1)[0][0])
    search_filter = readers.qdrant_query_conditions({param: [value]}, readers.QDRANT_CONTENT_FILE_PARAM_MAP)
    points, _ = client.scroll(FILES, scroll_filter=search_filter, limit=1000, with_payload=True)
    want = Counter((p["resource_readable_id"], p["key"]) for p in golden if value in readers.extract_values(p, field))
    got = Counter((p.payload["resource_readable_id"], p.payload["key"]) for p in points)
    duplicate = ("unplatformed-guide", "guide.txt")  # two files with one key: mit-learn writes both to one point
    assert {k: v for k, v in got.items() if k != duplicate} == {k: v for k, v in want.items() if k != duplicate}


def test_the_resource_filter_finds_best_runs_and_run_less_files_and_groups_by_resource(world, client):
    """views.py l.718-733: `resource_readable_id` becomes `run_readable_id` = best runs + the readable ids (which
    run-less files carry, utils.py l.536); then l.250 `client.query_points_groups(group_by=...)`."""
    wanted = {"ocw-18.06": "spring-2024", "yt-neural-networks": None, "episode-230-the-physics-of-ice": None}
    best_runs = []
    for doc in DOCS:
        if doc["readable_id"] in wanted and doc.get("best_run_id"):
            best_runs += [run["run_id"] for run in doc["runs"] if run["id"] == doc["best_run_id"]]
    assert best_runs == ["spring-2024"]
    params = {"run_readable_id": best_runs + list(wanted)}
    search_filter = readers.qdrant_query_conditions(params, readers.QDRANT_CONTENT_FILE_PARAM_MAP)
    query = world.dense.embed_query("syllabus transcript captions").tolist()
    search = readers.search_params(FILES, search_filter, 10, 10, None, query, world.dense.vector_name, None, "",
                                   resources=False)  # fmt: skip
    groups = readers.group_search(client, search, "resource_readable_id")
    assert {group["id"] for group in groups} == set(wanted)
    assert all(group["payload"]["chunks"] for group in groups)


def test_similar_resources_by_mit_learns_id_exclude_the_resource_itself(world, client):
    """learning_resources_search/api.py l.1214 `input_query=vector_point_id(vector_point_key(value_doc))` into
    l.1181 `client.query_points(query=<that id>, using=encoder.model_short_name())`."""
    for doc in DOCS[:10]:
        point_id = vector_point_id(f"{(doc.get('platform') or {}).get('code', '')}.{doc['readable_id']}")
        hits = readers.similar_results(client, RESOURCES, point_id, world.dense.vector_name, 6)
        assert len(hits) == 6 and doc["readable_id"] not in {hit["readable_id"] for hit in hits}
        # l.1225: `readable_id__in=[resource["readable_id"] for resource in hits if resource["published"]]`
        assert all(isinstance(hit["published"], bool) and hit["readable_id"] for hit in hits)


def test_the_health_check_finds_every_resource_and_first_chunk_by_id(client):
    """vector_search/tasks.py l.699-710 and l.761-773: `filter_existing_qdrant_points_by_ids` (utils.py l.1583,
    `client.retrieve(ids=..., with_payload=False)`) of `vector_point_id(vector_point_key(...))` of each resource
    and each file's chunk 0 must find every one."""
    resource_ids = [r["id"] for r in GOLDEN["resources"] if r["payload"] in DOCS]
    assert len(client.retrieve(RESOURCES, ids=resource_ids, with_payload=False)) == len(resource_ids)
    first_chunks = {
        f["points"][0]["id"]
        for f in GOLDEN["content_files"]["characters"]
        if f["embedded"]
        and f["points"]
        and f["points"][0]["payload"]["resource_readable_id"] in {d["readable_id"] for d in DOCS}
    }
    assert len(client.retrieve(FILES, ids=list(first_chunks), with_payload=False)) == len(first_chunks)


def test_the_opensearch_indexer_reads_the_dense_vector_of_each_resource_by_readable_id(world, client):
    """learning_resources_search/indexing_api.py l.367 `retrieve_points_matching_params({"readable_id": ...},
    with_vectors=True)` then `vector_result[0].vector.get(dense_encoder().model_short_name())`."""
    for doc in DOCS[:10]:
        search_filter = readers.qdrant_query_conditions({"readable_id": doc["readable_id"]},
                                                        readers.QDRANT_RESOURCE_PARAM_MAP)  # fmt: skip
        points, _ = client.scroll(RESOURCES, scroll_filter=search_filter, with_vectors=True)
        assert len(points[0].vector.get(world.dense.vector_name)) == world.dense.dim


def test_topics_are_mit_learns_collection_and_similar_topics_find_a_resources_own(world, client):
    """vector_search/utils.py l.329 embed_topics: one point per topic, id `topic.topic_uuid`, payload
    `{"name": ...}`; learning_resources_search/api.py l.1033-1052 get_similar_topics_qdrant: the resource's
    dense vector (`retrieve(..., with_vectors=True)`, `vector.get(model_short_name())`) queries `{base}.topics`."""
    outcome = world.run("topics")
    assert outcome.verification.passed and outcome.report.points_upserted > 30
    rows = world.rows("SELECT topic_uuid, name FROM {T}learningresourcetopic")
    points = client.retrieve("resource_embeddings.topics", ids=[str(uuid.UUID(str(u))) for u, _ in rows])
    assert sorted(p.payload["name"] for p in points) == sorted(name for _, name in rows)
    assert all(set(p.payload) == {"name", OWN} for p in points)
    (resource,) = client.retrieve(RESOURCES, ids=[vector_point_id("ocw.ocw-18.06")], with_vectors=True)
    hits = readers.similar_results(client, "resource_embeddings.topics", resource.vector[world.dense.vector_name],
                                   world.dense.vector_name, 3)  # fmt: skip
    assert len(hits) == 3 and {hit["name"] for hit in hits} <= {name for _, name in rows}
    world.execute(
        "UPDATE {T}learningresourcetopic SET name = 'Linear Algebra and Matrices' WHERE name = 'Linear Algebra'"
    )
    world.execute("DELETE FROM {T}learningresource_topics WHERE learningresourcetopic_id IN "
                  "(SELECT id FROM {T}learningresourcetopic WHERE name = 'Film')")  # fmt: skip
    world.execute("DELETE FROM {T}learningresourcetopic WHERE name = 'Film'")
    world.embedded()
    again = world.run("topics")
    assert world.embedded() == ["Linear Algebra and Matrices"] and again.report.points_deleted == 1
    assert world.run("topics").report.points_upserted == 0


CONTENT_FACETED = [
    p for p in readers.QDRANT_CONTENT_FILE_PARAM_MAP if p not in ("description", "summary", "flashcards")
]


@pytest.mark.parametrize("param", CONTENT_FACETED)
def test_content_file_facets_count_the_chunks_mit_learn_wrote(client, param):
    """utils.py l.1469 `client.facet(...)` on the content-file collection (COLLECTION_PARAM_MAP's map)."""
    counts = value_counts(CHUNK_POINTS, readers.QDRANT_CONTENT_FILE_PARAM_MAP[param])
    facets = readers.facet(client, FILES, param, {}, readers.QDRANT_CONTENT_FILE_PARAM_MAP)
    # The stand-in shows a 32-digit hex keyword (a checksum) as a UUID; a server shows it as stored.
    shown = {hit["key"].replace("-", "") if param == "checksum" else hit["key"]: hit["doc_count"] for hit in facets}
    assert shown == dict(counts.most_common(100))
