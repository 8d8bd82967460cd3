"""dense_vectors and sparse_vectors: one vector per chunk row, from the configured encoders."""

import time

import dagster as dg
import pandas as pd

from embedding_pipeline.partitions import resource_type_partitions
from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder

RETRIES = dg.RetryPolicy(max_retries=3, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)


def embeddable(chunks: pd.DataFrame) -> pd.DataFrame:
    """The chunk rows that have a text to embed (not the records that failed upstream)."""
    return chunks[chunks["error"].isna()]


def _rate_metadata(texts: int, distinct: int, seconds: float) -> dict:
    return {
        "texts": dg.MetadataValue.int(texts),
        "distinct_texts": dg.MetadataValue.int(distinct),
        "encode_seconds": dg.MetadataValue.float(round(seconds, 3)),
        "texts_per_second": dg.MetadataValue.float(round(distinct / seconds, 1) if seconds else 0.0),
    }


@dg.asset(
    partitions_def=resource_type_partitions,
    group_name="embeddings",
    kinds={"onnx", "pandas"},
    code_version="dense-1",
    retry_policy=RETRIES,
)
def dense_vectors(
    context: dg.AssetExecutionContext, text_chunks: pd.DataFrame, dense_encoder: DenseEncoder
) -> dg.Output[pd.DataFrame]:
    """The dense embedding of every chunk text, named in Qdrant after the model's short name."""
    chunks = embeddable(text_chunks)
    texts = chunks["text"].tolist()
    started = time.perf_counter()
    vectors = dense_encoder.embed_documents(texts, progress=context.log)
    seconds = time.perf_counter() - started
    distinct = len(set(texts))
    context.log.info(f"{dense_encoder.model_name}: {distinct} distinct texts in {seconds:.1f}s")
    frame = pd.DataFrame({"point_id": chunks["point_id"].to_numpy(), "vector": list(vectors)})
    return dg.Output(
        frame,
        metadata={
            **_rate_metadata(len(texts), distinct, seconds),
            "model": dg.MetadataValue.text(dense_encoder.model_name),
            "vector_name": dg.MetadataValue.text(dense_encoder.vector_name),
            "dimension": dg.MetadataValue.int(dense_encoder.dim),
        },
    )


@dg.asset(
    partitions_def=resource_type_partitions,
    group_name="embeddings",
    kinds={"onnx", "pandas"},
    code_version="sparse-1",
    retry_policy=RETRIES,
)
def sparse_vectors(
    context: dg.AssetExecutionContext, text_chunks: pd.DataFrame, sparse_encoder: SparseEncoder
) -> dg.Output[pd.DataFrame]:
    """The sparse (BM25 by default) vector of every chunk text, for hybrid search."""
    chunks = embeddable(text_chunks)
    texts = chunks["text"].tolist()
    started = time.perf_counter()
    vectors = sparse_encoder.embed_documents(texts)
    seconds = time.perf_counter() - started
    frame = pd.DataFrame(
        {
            "point_id": chunks["point_id"].to_numpy(),
            "indices": [v.indices for v in vectors],
            "values": [v.values for v in vectors],
        }
    )
    return dg.Output(
        frame,
        metadata={
            **_rate_metadata(len(texts), len(set(texts)), seconds),
            "model": dg.MetadataValue.text(sparse_encoder.model_name),
            "vector_name": dg.MetadataValue.text(sparse_encoder.vector_name),
            "idf_modifier": dg.MetadataValue.bool(sparse_encoder.uses_idf),
        },
    )
