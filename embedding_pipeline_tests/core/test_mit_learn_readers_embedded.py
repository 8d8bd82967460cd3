"""The reader contract on the embedded engine (qdrant-edge, Qdrant's own engine in-process): mit-learn's
reader calls (`mit_learn_readers.py`) translated into the engine's requests, key for key, against collections
this project wrote into it from both samples. Expected results come from mit-learn's own documents.

What the engine's Python binding (qdrant-edge-py 0.9.0) cannot take is left out, named: a filter on a boolean
(its MatchValue reads True as the integer 1), `query_points_groups` (it has no groups) and a query by point
id (it takes vectors: the point's own vector stands in, the point excluded, as Qdrant does)."""

import pytest
import qdrant_edge as edge
from qdrant_client import models

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.mit_learn import RESOURCE_TYPES, vector_point_id
from embedding_pipeline.resources.encoders.sparse_hash import SparseHashEncoder
from embedding_pipeline.sample_data import EVERY_SAMPLE
from embedding_pipeline.vector_store.edge import EdgeStore
from embedding_pipeline_tests.core.conftest import World
from embedding_pipeline_tests.core.test_mit_learn_readers import (
    CHUNK_POINTS,
    CONTENT_FACETED,
    DOCS,
    FACETED,
    FILTERED,
    common_value,
    expected,
    value_counts,
)
from embedding_pipeline_tests.support import mit_learn_readers as readers

RESOURCES = "resource_embeddings.resources"
BOOLEAN = {p for p in FILTERED if isinstance(common_value(readers.QDRANT_RESOURCE_PARAM_MAP[p]), bool)}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embedded")
    world = World(folder, samples=EVERY_SAMPLE, sparse=SparseHashEncoder(), chunker=Chunker(None, 512, 0),
                  base="resource_embeddings")  # fmt: skip
    world.store.close()
    world.store = EdgeStore(folder / "qdrant")
    for resource_type in RESOURCE_TYPES:
        assert world.run(resource_type).verification.passed
    yield world
    world.store.close()


@pytest.fixture(scope="module")
def shard(world):
    return world.store._shard(RESOURCES)  # the engine's own object, by the alias mit-learn's readers use


def edge_filter(search_filter: models.Filter | None) -> edge.Filter | None:
    """A reader's qdrant-client filter, as the engine's (the conditions `qdrant_query_conditions` makes)."""
    if search_filter is None:
        return None
    must = []
    for condition in search_filter.must:
        match = condition.match
        value = edge.MatchAny(list(match.any)) if isinstance(match, models.MatchAny) else edge.MatchValue(match.value)
        must.append(edge.FieldCondition(key=condition.key, match=value))
    return edge.Filter(must=must)


def payloads(points) -> list[dict]:
    return [point.payload for point in points]


@pytest.mark.parametrize("param", [p for p in FILTERED if p not in BOOLEAN])
def test_each_filter_finds_exactly_the_resources_mit_learn_documents_match(world, shard, param):
    """views.py l.322 qdrant_query_conditions, then l.384 query_points (dense, l.238) and l.296 scroll."""
    field = readers.QDRANT_RESOURCE_PARAM_MAP[param]
    value = common_value(field)
    search_filter = edge_filter(readers.qdrant_query_conditions({param: [value]}, readers.QDRANT_RESOURCE_PARAM_MAP))
    query = world.dense.embed_query("learning").tolist()
    found = shard.query(edge.QueryRequest(limit=100, query=edge.Query.Nearest(query, using=world.dense.vector_name),
                                          filter=search_filter, with_payload=True))  # fmt: skip
    assert {hit["readable_id"] for hit in readers.resource_payload_hits(found)} == expected(field, value)
    scrolled, _ = shard.scroll(edge.ScrollRequest(limit=1000, filter=search_filter, with_payload=True))
    assert {p["readable_id"] for p in payloads(scrolled)} == expected(field, value)


@pytest.mark.parametrize("param", FACETED)
def test_facets_count_what_mit_learns_documents_hold(shard, param):
    """utils.py l.1469 client.facet(key=qdrant_field, limit=100)."""
    field = readers.QDRANT_RESOURCE_PARAM_MAP[param]
    counts = value_counts(DOCS, field)
    hits = shard.facet(edge.FacetRequest(key=field, limit=100)).hits
    assert {str(h.value).lower() if isinstance(h.value, bool) else str(h.value): h.count for h in hits} == dict(counts)


@pytest.mark.parametrize("order_by", ["created_on", "-created_on", "next_start_date", "-views", "views"])
def test_sorting_orders_as_mit_learns_documents_do(shard, order_by):
    """views.py l.287 scroll with `order_by=_format_order_by(order_by)`."""
    key = order_by.lstrip("-")
    direction = edge.Direction.Desc if order_by.startswith("-") else edge.Direction.Asc
    values = sorted((doc[key] for doc in DOCS if doc.get(key) is not None), reverse=order_by.startswith("-"))
    points, _ = shard.scroll(edge.ScrollRequest(limit=1000, order_by=edge.OrderBy(key, direction), with_payload=True))
    assert [p[key] for p in payloads(points)] == values


def test_a_title_made_into_a_hash_vectorizer_query_finds_its_resource_first(world, shard):
    """views.py l.177 `encoder_sparse.embed(query_string)` with mit-learn's SparseHashEncoder, as a sparse query."""
    vector = SparseHashEncoder().embed_query("Linear Algebra")
    query = edge.Query.Nearest(
        edge.SparseVector(vector.indices, vector.values), using="hashing_vectorizer_sparse_model"
    )
    (best,) = shard.query(edge.QueryRequest(limit=1, query=query, with_payload=True))
    assert best.payload["readable_id"] == "ocw-18.06"


def test_similar_resources_and_the_health_check_find_points_by_mit_learns_ids(world, shard):
    """api.py l.1214 similar resources by `vector_point_id(vector_point_key(doc))`; tasks.py l.699 the health
    check's `retrieve(ids=...)` of every resource."""
    ids = [vector_point_id(f"{(d.get('platform') or {}).get('code', '')}.{d['readable_id']}") for d in DOCS]
    records = shard.retrieve(ids, with_payload=False, with_vector=True)
    assert len(records) == len(DOCS)
    own = records[0].vector[world.dense.vector_name]
    similar = shard.query(edge.QueryRequest(
        limit=6, query=edge.Query.Nearest(own, using=world.dense.vector_name), with_payload=True,
        filter=edge.Filter(must_not=[edge.HasIdCondition({str(records[0].id)})]),
    ))  # fmt: skip
    assert len(similar) == 6 and str(records[0].id) not in {str(hit.id) for hit in similar}


@pytest.mark.parametrize("param", CONTENT_FACETED)
def test_content_file_facets_count_the_chunks_mit_learn_wrote(world, param):
    """utils.py l.1469 `client.facet(...)` on `{base}.content_files`."""
    field = readers.QDRANT_CONTENT_FILE_PARAM_MAP[param]
    counts = value_counts(CHUNK_POINTS, field)
    hits = world.store._shard("resource_embeddings.content_files").facet(edge.FacetRequest(key=field, limit=100)).hits
    assert {str(h.value): h.count for h in hits} == dict(counts)
