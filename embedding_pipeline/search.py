"""Queries the collections the way the search endpoint does: dense, or dense + BM25 fused with RRF."""

from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.qdrant import QdrantResource
from embedding_pipeline.vector_store import SEARCH_WAIT_SECONDS


def search(
    qdrant: QdrantResource,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoder,
    query: str,
    collection: str = "resources",
    hybrid: bool = False,
    limit: int = 5,
    filters: dict | None = None,
    wait_seconds: float = SEARCH_WAIT_SECONDS,
) -> list[dict]:
    """The best `limit` points of `{base}.{collection}` for `query`: their score, id and payload."""
    dense_query = dense_encoder.embed_query(query).tolist()
    sparse_query = sparse_encoder.embed_query(query) if hybrid else None
    with qdrant.get_store(purpose="search", wait_seconds=wait_seconds) as store:
        name = qdrant.alias(collection)
        if hybrid:
            hits = store.query_hybrid(
                name, dense_query, dense_encoder.vector_name, sparse_query, sparse_encoder.vector_name, limit, filters
            )
        else:
            hits = store.query_nearest(name, dense_query, dense_encoder.vector_name, limit, filters)
    return [{"score": hit.score, "id": hit.id, **hit.payload} for hit in hits]
