"""dense_vectors and sparse_vectors: one vector per chunk row, from the configured encoders.

Each model's vectors are kept per partition by text hash, beside Dagster's storage, so a run
sends only texts the model has not embedded before: an unchanged partition costs no encoder call.
"""

import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd

from embedding_pipeline.partitions import resource_type_partitions
from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.options import EmbedOptions
from embedding_pipeline.resources.parquet_io import write_parquet
from embedding_pipeline.sync import embeddable

RETRIES = dg.RetryPolicy(max_retries=3, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)


def _cache_file(context: dg.AssetExecutionContext, model_name: str) -> Path:
    model = model_name.replace("/", "--")
    return Path(context.instance.storage_directory()) / "vector_cache" / model / f"{context.partition_key}.parquet"


def embed_new_texts(
    context: dg.AssetExecutionContext,
    chunks: pd.DataFrame,
    model_name: str,
    embed: Callable[[list[str]], pd.DataFrame],
    force: bool,
) -> tuple[pd.DataFrame, dict]:
    """Vector columns for every chunk row; `embed` sees only texts this model has not embedded yet.

    Returns the rows (point_id, text_hash, vector columns) and the metadata of the work done.
    """
    cache_file = _cache_file(context, model_name)
    cached = pd.read_parquet(cache_file) if cache_file.exists() and not force else None
    distinct = chunks.drop_duplicates("text_hash")[["text_hash", "text"]]
    todo = distinct if cached is None else distinct[~distinct["text_hash"].isin(cached["text_hash"])]
    started = time.perf_counter()
    fresh = embed(todo["text"].tolist()).assign(text_hash=todo["text_hash"].to_numpy()) if len(todo) else None
    seconds = time.perf_counter() - started
    if fresh is not None:
        fresh = fresh.dropna()  # refused texts: no vector, not remembered, tried again next run
    frames = [f for f in (cached, fresh) if f is not None]
    known = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"text_hash": pd.Series(dtype=object)})
    known = known[known["text_hash"].isin(distinct["text_hash"])]  # forget texts the partition no longer has
    write_parquet(known, cache_file)
    rows = chunks[["point_id", "text_hash"]].merge(known, on="text_hash")
    if len(todo):
        context.log.info(
            f"{model_name}: embedded {len(todo)} texts in {seconds:.1f}s, reused {len(distinct) - len(todo)}"
        )
    metadata = {
        "texts": dg.MetadataValue.int(len(chunks)),
        "texts_embedded": dg.MetadataValue.int(len(todo)),
        "texts_reused": dg.MetadataValue.int(len(distinct) - len(todo)),
        "encode_seconds": dg.MetadataValue.float(round(seconds, 3)),
        "texts_per_second": dg.MetadataValue.float(round(len(todo) / seconds, 1) if len(todo) else 0.0),
        "model": dg.MetadataValue.text(model_name),
    }
    return rows, metadata


@dg.asset(
    partitions_def=resource_type_partitions,
    group_name="embeddings",
    kinds={"onnx", "pandas"},
    code_version="dense-1",
    retry_policy=RETRIES,
)
def dense_vectors(
    context: dg.AssetExecutionContext,
    text_chunks: pd.DataFrame,
    dense_encoder: DenseEncoder,
    embed_options: EmbedOptions,
) -> dg.Output[pd.DataFrame]:
    """The dense embedding of every chunk text, named in Qdrant after the model's short name.

    A text the model refuses (an input the provider rejects) gets no vector: its record is named
    in a warning and in the metadata, and keeps the points it had; the rest is embedded.
    """
    chunks = embeddable(text_chunks)
    rejected: dict[str, str] = {}

    def embed(texts: list[str]) -> pd.DataFrame:
        vectors = dense_encoder.embed_documents(texts, progress=context.log)
        rejected.update(dense_encoder.rejected)
        return pd.DataFrame({"vector": [None if t in rejected else v for t, v in zip(texts, vectors)]})

    rows, metadata = embed_new_texts(context, chunks, dense_encoder.model_name, embed, embed_options.force_reembed)
    refused = chunks[chunks["text"].isin(rejected)]
    for record_key, text in zip(refused["record_key"], refused["text"]):
        context.log.warning(f"Not embedded by {dense_encoder.model_name}: {record_key}: {rejected[text]}")
    return dg.Output(
        rows,
        metadata={
            **metadata,
            **{name: dg.MetadataValue.int(value) for name, value in dense_encoder.stats.items()},
            "texts_rejected": dg.MetadataValue.int(len(refused)),
            "rejected": dg.MetadataValue.md(
                "\n".join(f"- {k}: {rejected[t]}" for k, t in zip(refused["record_key"], refused["text"])) or "none"
            ),
            "vector_name": dg.MetadataValue.text(dense_encoder.vector_name),
            "dimension": dg.MetadataValue.int(len(rows["vector"].iloc[0]) if len(rows) else 0),
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
    context: dg.AssetExecutionContext,
    text_chunks: pd.DataFrame,
    sparse_encoder: SparseEncoder,
    embed_options: EmbedOptions,
) -> dg.Output[pd.DataFrame]:
    """The sparse (BM25 by default) vector of every chunk text, for hybrid search."""

    def embed(texts: list[str]) -> pd.DataFrame:
        vectors = sparse_encoder.embed_documents(texts)
        return pd.DataFrame({"indices": [v.indices for v in vectors], "values": [v.values for v in vectors]})

    rows, metadata = embed_new_texts(
        context, embeddable(text_chunks), sparse_encoder.model_name, embed, embed_options.force_reembed
    )
    return dg.Output(
        rows,
        metadata={
            **metadata,
            "vector_name": dg.MetadataValue.text(sparse_encoder.vector_name),
            "idf_modifier": dg.MetadataValue.bool(sparse_encoder.uses_idf),
        },
    )
