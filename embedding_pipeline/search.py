"""Queries the collections the way the search endpoint does: dense, or dense + BM25 fused with RRF."""

from qdrant_client import models

from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.qdrant import QdrantResource


def search(
    qdrant: QdrantResource,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoder,
    query: str,
    collection: str = "resources",
    hybrid: bool = False,
    limit: int = 5,
) -> list[dict]:
    """The best `limit` points of `{base}.{collection}` for `query`: their score, id and payload."""
    dense_query = dense_encoder.embed_query(query).tolist()
    with qdrant.get_client() as client:
        name = qdrant.alias(collection)
        if hybrid:
            candidates = max(limit * 4, 20)
            response = client.query_points(
                name,
                prefetch=[
                    models.Prefetch(query=dense_query, using=dense_encoder.vector_name, limit=candidates),
                    models.Prefetch(
                        query=sparse_encoder.embed_query(query), using=sparse_encoder.vector_name, limit=candidates
                    ),
                ],
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=limit,
                with_payload=True,
            )
        else:
            response = client.query_points(
                name, query=dense_query, using=dense_encoder.vector_name, limit=limit, with_payload=True
            )
    return [{"score": point.score, "id": str(point.id), **(point.payload or {})} for point in response.points]
