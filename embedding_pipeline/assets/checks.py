"""Asset checks an operator sees on each partition: is Qdrant exactly what the source says?"""

import dagster as dg
import pandas as pd

from embedding_pipeline.partitions import resource_type_partitions
from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.qdrant import QdrantResource
from embedding_pipeline.sync import current_version, embeddable, records_keeping_points
from embedding_pipeline.vector_store import COLLECTION_KINDS, VectorStore

SAMPLE = 10


def _collections(store: VectorStore, qdrant: QdrantResource, version: str) -> list[str]:
    """The current settings' physical collections that exist."""
    names = [qdrant.physical_name(kind, version) for kind in COLLECTION_KINDS]
    return [name for name in names if store.collection_exists(name)]


@dg.asset_check(
    asset="qdrant_points",
    partitions_def=resource_type_partitions,
    pool="qdrant",
    additional_ins={"text_chunks": dg.AssetIn("text_chunks"), "dense_vectors": dg.AssetIn("dense_vectors")},
    description="Every chunk has its point in Qdrant, and Qdrant holds no point of this resource type "
    "that the source no longer has (records that failed keep theirs).",
)
def points_match_source(
    context: dg.AssetCheckExecutionContext,
    text_chunks: pd.DataFrame,
    dense_vectors: pd.DataFrame,
    qdrant: QdrantResource,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoder,
    chunker: TextChunker,
) -> dg.AssetCheckResult:
    expected = set(embeddable(text_chunks)["point_id"]) & set(dense_vectors["point_id"])
    kept = records_keeping_points(text_chunks, dense_vectors["point_id"])
    present: dict[str, str | None] = {}
    version = current_version(dense_encoder, sparse_encoder, chunker)
    with qdrant.get_store_for_step(context, "checks") as store:
        for name in _collections(store, qdrant, version):
            present.update((s.id, s.record_key) for s in store.point_states(name, context.partition_key))
    missing = sorted(expected - present.keys())
    extra = sorted(pid for pid, record_key in present.items() if pid not in expected and record_key not in kept)
    return dg.AssetCheckResult(
        passed=not missing and not extra,
        metadata={
            "expected_points": len(expected),
            "points_in_qdrant": len(present),
            "missing_points": len(missing),
            "extra_points": len(extra),
            "missing_sample": dg.MetadataValue.json(missing[:SAMPLE]),
            "extra_sample": dg.MetadataValue.json(extra[:SAMPLE]),
        },
    )


@dg.asset_check(
    asset="qdrant_points",
    partitions_def=resource_type_partitions,
    pool="qdrant",
    additional_ins={"dense_vectors": dg.AssetIn("dense_vectors")},
    description="The collections' dense vectors have the dimension the encoder produces.",
)
def dense_dimension_matches_encoder(
    context: dg.AssetCheckExecutionContext,
    dense_vectors: pd.DataFrame,
    qdrant: QdrantResource,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoder,
    chunker: TextChunker,
) -> dg.AssetCheckResult:
    encoder_dim = len(dense_vectors["vector"].iloc[0]) if len(dense_vectors) else dense_encoder.dim
    version = current_version(dense_encoder, sparse_encoder, chunker)
    with qdrant.get_store_for_step(context, "checks") as store:
        sizes = {
            name: store.dense_sizes(name).get(dense_encoder.vector_name)
            for name in _collections(store, qdrant, version)
        }
    return dg.AssetCheckResult(
        passed=all(size == encoder_dim for size in sizes.values()),
        metadata={"encoder_dimension": encoder_dim, "collections": dg.MetadataValue.json(sizes)},
    )
