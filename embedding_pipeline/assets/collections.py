"""qdrant_points: the partition's points in the Qdrant collections, and nothing else of it."""

import hashlib
import json
import time

import dagster as dg
import pandas as pd
from qdrant_client import QdrantClient, models

from embedding_pipeline.assets.vectors import RETRIES, embeddable
from embedding_pipeline.partitions import resource_type_partitions
from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.qdrant import (
    COLLECTION_KINDS,
    QdrantResource,
    alias_target,
    ensure_collection,
    point_alias,
)

UPSERT_BATCH = 256


def vectors_version(dense: DenseEncoder, sparse: SparseEncoder, chunker: TextChunker) -> str:
    """Short hash of everything that determines the vectors; it names the physical collections."""
    settings = [dense.model_name, sparse.model_name, chunker.encoding_name, chunker.chunk_size, chunker.chunk_overlap]
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:8]


def _points(chunks: pd.DataFrame, dense_name: str, sparse_name: str) -> list[models.PointStruct]:
    return [
        models.PointStruct(
            id=row.point_id,
            vector={
                dense_name: row.vector.tolist(),
                sparse_name: models.SparseVector(indices=row.indices.tolist(), values=row.values.tolist()),
            },
            payload=json.loads(row.payload),
        )
        for row in chunks.itertuples()
    ]


def _stale_point_ids(
    client: QdrantClient, collection: str, resource_type: str, keep_ids: set[str], keep_records: set[str]
) -> list[str]:
    """Points of this resource type that the source no longer produces (deleted, unpublished, shrunk)."""
    stale, offset = [], None
    type_filter = models.Filter(
        must=[models.FieldCondition(key="resource_type", match=models.MatchValue(value=resource_type))]
    )
    while True:
        records, offset = client.scroll(
            collection, scroll_filter=type_filter, limit=1000, offset=offset, with_payload=["record_key"]
        )
        stale += [
            str(r.id)
            for r in records
            if str(r.id) not in keep_ids and (r.payload or {}).get("record_key") not in keep_records
        ]
        if offset is None:
            return stale


@dg.asset(
    partitions_def=resource_type_partitions,
    group_name="embeddings",
    kinds={"qdrant"},
    code_version="points-1",
    retry_policy=RETRIES,
)
def qdrant_points(
    context: dg.AssetExecutionContext,
    text_chunks: pd.DataFrame,
    dense_vectors: pd.DataFrame,
    sparse_vectors: pd.DataFrame,
    qdrant: QdrantResource,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoder,
    chunker: TextChunker,
) -> dg.MaterializeResult:
    """Upserts the partition's points into `{base}.resources` and `{base}.content_files`.

    Ids are deterministic, so a rerun overwrites rather than duplicates; points of this resource
    type that the source no longer has are deleted, which also heals a run killed half-way.
    Records that failed upstream keep the points they already had.
    """
    version = vectors_version(dense_encoder, sparse_encoder, chunker)
    chunks = embeddable(text_chunks).merge(dense_vectors, on="point_id").merge(sparse_vectors, on="point_id")
    failed_records = set(text_chunks.loc[text_chunks["error"].notna(), "record_key"])
    dim = len(chunks["vector"].iloc[0]) if len(chunks) else None
    metadata: dict = {"vectors_version": dg.MetadataValue.text(version)}
    upserted = deleted = 0
    started = time.perf_counter()
    with qdrant.get_client() as client:
        for kind in COLLECTION_KINDS:
            name = qdrant.physical_name(kind, version)
            points = chunks[chunks["collection"] == kind]
            if dim is None and not client.collection_exists(name):
                continue
            if dim is not None:
                ensure_collection(
                    client, name, kind, dense_encoder.vector_name, dim, sparse_encoder.vector_name, sparse_encoder.uses_idf
                )
            for start in range(0, len(points), UPSERT_BATCH):
                batch = _points(points.iloc[start : start + UPSERT_BATCH], dense_encoder.vector_name, sparse_encoder.vector_name)
                client.upsert(name, points=batch, wait=True)
                upserted += len(batch)
            stale = _stale_point_ids(client, name, context.partition_key, set(points["point_id"]), failed_records)
            if stale:
                client.delete(name, points_selector=models.PointIdsList(points=stale), wait=True)
                deleted += len(stale)
            alias = qdrant.alias(kind)
            if alias_target(client, alias) is None:
                point_alias(client, alias, name)
            metadata[f"{kind}_points"] = dg.MetadataValue.int(len(points))
            metadata[f"{kind}_collection"] = dg.MetadataValue.text(name)
            metadata[f"{kind}_collection_total_points"] = dg.MetadataValue.int(client.count(name, exact=True).count)
    seconds = time.perf_counter() - started
    context.log.info(f"Upserted {upserted} points, deleted {deleted} stale ones in {seconds:.1f}s")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "points": dg.MetadataValue.int(upserted),
            "points_deleted": dg.MetadataValue.int(deleted),
            "failed_records_kept": dg.MetadataValue.int(len(failed_records)),
            "dense_model": dg.MetadataValue.text(dense_encoder.model_name),
            "dense_dimension": dg.MetadataValue.int(dim or 0),
            "sparse_model": dg.MetadataValue.text(sparse_encoder.model_name),
            "upsert_seconds": dg.MetadataValue.float(round(seconds, 3)),
            "points_per_second": dg.MetadataValue.float(round(upserted / seconds, 1) if seconds else 0.0),
        }
    )
