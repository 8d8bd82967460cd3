"""Queries the collections the way the search endpoint and the "similar resources" carousel do."""

import logging

from embedding_pipeline.errors import PermanentError
from embedding_pipeline.mit_learn import vector_point_id
from embedding_pipeline.model_identity import ModelIdentity
from embedding_pipeline.resources.encoders.base import DenseEncoder, SparseEncoderBase
from embedding_pipeline.resources.qdrant import QdrantResource
from embedding_pipeline.vector_store import SEARCH_WAIT_SECONDS, Hit, UnknownResource, VectorStore

log = logging.getLogger(__name__)
_MODELS_CHECKED: set[tuple[str, str]] = set()  # (store, collection): said once per process


def search(
    qdrant: QdrantResource,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoderBase,
    query: str,
    collection: str = "resources",
    hybrid: bool = False,
    limit: int = 5,
    filters: dict | None = None,
    wait_seconds: float = SEARCH_WAIT_SECONDS,
) -> list[dict]:
    """The best `limit` points of `{base}.{collection}` for `query`: their score, id and payload.

    `filters` (payload field → value) are served by the payload indexes, e.g. `{"resource_type": "video"}`.
    """
    if not query.strip():
        raise BadQuery("Nothing to search for: the query is empty")
    _check_limit(limit)
    dense_query = dense_encoder.embed_query(query).tolist()
    sparse_query = sparse_encoder.embed_query(query) if hybrid else None
    with qdrant.get_store_for_queries(purpose="search", wait_seconds=wait_seconds) as store:
        name = qdrant.alias(collection)
        _say_if_another_model(store, qdrant.location, name, dense_encoder, sparse_encoder)
        if hybrid:
            hits = store.query_hybrid(
                name, dense_query, dense_encoder.vector_name, sparse_query, sparse_encoder.vector_name, limit, filters
            )
        else:
            hits = store.query_nearest(name, dense_query, dense_encoder.vector_name, limit, filters)
    return _rows(hits)


def similar(
    qdrant: QdrantResource,
    dense_encoder: DenseEncoder,
    resource: str,
    limit: int = 5,
    filters: dict | None = None,
    wait_seconds: float = SEARCH_WAIT_SECONDS,
) -> list[dict]:
    """The resources nearest to `resource` (PLATFORM.READABLE_ID, mit-learn's point key) by its own stored
    vector, itself excluded: what mit-learn's "similar resources" carousel asks."""
    _check_limit(limit)
    with qdrant.get_store_for_queries(purpose="similar resources", wait_seconds=wait_seconds) as store:
        name = qdrant.alias("resources")
        found = store.retrieve(name, [vector_point_id(resource)], fields=[])
        if not found:
            raise UnknownResource(
                f"No resource {resource!r} in {name}: give PLATFORM.READABLE_ID of an embedded resource, "
                "e.g. as `search --json` prints them"
            )
        hits = store.query_similar(name, found[0][0], dense_encoder.vector_name, limit, filters)
    return _rows(hits)


def _say_if_another_model(store: VectorStore, location: str, name: str, dense, sparse) -> None:
    """Queries embedded by a model that did not make the collection's vectors (changed in place, its re-embed not
    done yet) rank by noise: said once per process and collection, as the store keeps its models."""
    target = store.resolve(name)
    if (location, target) in _MODELS_CHECKED or not store.collection_exists(target):
        return
    _MODELS_CHECKED.add((location, target))
    kept = store.model_of(target)
    why = ModelIdentity.of(dense, sparse).differs_from(kept) if kept else None
    if why:
        log.warning(
            f"{why}: not the model that made {target}'s vectors, so these results rank by noise until a re-embed "
            "(`embedding-pipeline embed --reembed`) moves searches to its collections"
        )


class BadQuery(PermanentError, ValueError):
    """A query that cannot be asked: said in one line, before a model or the store is touched."""


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise BadQuery(f"A limit of {limit} results: ask for 1 or more")


def _rows(hits: list[Hit]) -> list[dict]:
    return [{"score": hit.score, "id": hit.id, **hit.payload} for hit in hits]
