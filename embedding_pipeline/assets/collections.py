"""qdrant_points: the partition's points in the Qdrant collections, and nothing else of it.

Searches read `{base}.resources` and `{base}.content_files`, aliases of physical collections
named `{base}.{kind}.{version}`; the version hashes everything that determines the vectors. A
change of model or chunking therefore fills new collections while searches stay on the old ones,
and both aliases move together once every partition has been embedded with the new settings.
"""

import hashlib
import json
import time

import dagster as dg
import pandas as pd
from qdrant_client import QdrantClient, models

from embedding_pipeline.assets.vectors import RETRIES, embeddable
from embedding_pipeline.partitions import RESOURCE_TYPES, resource_type_partitions
from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.options import EmbedOptions
from embedding_pipeline.resources.qdrant import (
    COLLECTION_KINDS,
    CollectionMismatch,
    QdrantResource,
    alias_target,
    ensure_collection,
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
            payload={**json.loads(row.payload), "point_hash": row.point_hash},
        )
        for row in chunks.itertuples()
    ]


def records_keeping_points(text_chunks: pd.DataFrame, embedded_point_ids: pd.Series) -> set[str]:
    """Records that could not be read or embedded: they keep the points they already have."""
    to_embed = embeddable(text_chunks)
    unembedded = to_embed.loc[~to_embed["point_id"].isin(embedded_point_ids), "record_key"]
    return set(text_chunks.loc[text_chunks["error"].notna(), "record_key"]) | set(unembedded)


def existing_points(client: QdrantClient, collection: str, resource_type: str) -> dict[str, dict]:
    """id → (record_key, point_hash) of this resource type's points in the collection."""
    found, offset = {}, None
    type_filter = models.Filter(
        must=[models.FieldCondition(key="resource_type", match=models.MatchValue(value=resource_type))]
    )
    while True:
        records, offset = client.scroll(
            collection, scroll_filter=type_filter, limit=2000, offset=offset, with_payload=["record_key", "point_hash"]
        )
        found.update({str(r.id): r.payload or {} for r in records})
        if offset is None:
            return found


def _all_partitions_done(context: dg.AssetExecutionContext, version: str) -> bool:
    """True when every other partition's latest materialization wrote this version's collections."""
    for partition in RESOURCE_TYPES:
        if partition == context.partition_key:
            continue
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[partition]), limit=1
        ).records
        metadata = records[0].asset_materialization.metadata if records else {}
        if "vectors_version" not in metadata or metadata["vectors_version"].value != version:
            return False
    return True


def _point_aliases(
    context: dg.AssetExecutionContext, client: QdrantClient, qdrant: QdrantResource, version: str
) -> list[str]:
    """Move both aliases to this version's collections when that is safe; returns what was removed."""
    names = {qdrant.alias(kind): qdrant.physical_name(kind, version) for kind in COLLECTION_KINDS}
    wanted = {alias: name for alias, name in names.items() if client.collection_exists(name)}
    current = {alias: alias_target(client, alias) for alias in names}
    if all(current[alias] == name for alias, name in wanted.items()):
        return []
    first_setup = all(target is None for target in current.values())
    if not first_setup and not _all_partitions_done(context, version):
        context.log.info(
            f"Searches stay on {sorted(filter(None, current.values()))} until every partition has version {version}"
        )
        return []
    actions = [
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
        for alias in wanted
        if current[alias] is not None
    ] + [
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=alias))
        for alias, name in wanted.items()
    ]
    client.update_collection_aliases(change_aliases_operations=actions)  # one atomic switch
    context.log.info(f"Searches now use {sorted(wanted.values())}")
    if qdrant.keep_old_collections:
        return []
    prefixes = tuple(f"{qdrant.alias(kind)}." for kind in COLLECTION_KINDS)
    old = [
        c.name
        for c in client.get_collections().collections
        if c.name.startswith(prefixes) and c.name not in wanted.values()
    ]
    for name in old:
        client.delete_collection(name)
    if old:
        context.log.info(f"Removed old collections {old}")
    return old


@dg.asset(
    partitions_def=resource_type_partitions,
    group_name="embeddings",
    kinds={"qdrant"},
    code_version="points-1",
    retry_policy=RETRIES,
    pool="qdrant",
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
    embed_options: EmbedOptions,
) -> dg.MaterializeResult:
    """Upserts the partition's new and changed points and deletes the ones the source no longer has.

    Ids are deterministic and each point carries a hash of its text, payload and vectors' version,
    so a rerun rewrites nothing that did not change, and a run killed half-way is healed by the next.
    Records that failed upstream keep the points they already had.
    """
    if embed_options.recreate_collections and "dagster/backfill" in context.run.tags:
        raise dg.Failure(
            "recreate_collections drops every partition's points, so a backfill would undo its own runs; "
            "use force_reembed in a backfill, or recreate_collections in a single run",
            allow_retries=False,
        )
    version = vectors_version(dense_encoder, sparse_encoder, chunker)
    chunks = (
        embeddable(text_chunks)
        .merge(dense_vectors, on=["point_id", "text_hash"])
        .merge(sparse_vectors, on=["point_id", "text_hash"])
    )
    chunks["point_hash"] = [
        hashlib.sha256(f"{version}{text_hash}{payload}".encode()).hexdigest()[:16]
        for text_hash, payload in zip(chunks["text_hash"], chunks["payload"])
    ]
    failed_records = records_keeping_points(text_chunks, chunks["point_id"])
    dim = len(chunks["vector"].iloc[0]) if len(chunks) else None
    metadata: dict = {"vectors_version": dg.MetadataValue.text(version)}
    upserted = unchanged = deleted = 0
    before: set[str] = set()  # record keys that had points before this run
    written: set[str] = set()  # record keys with a point upserted now
    gone: set[str] = set()  # record keys of deleted points
    started = time.perf_counter()
    with qdrant.get_client() as client:
        for kind in COLLECTION_KINDS:
            name = qdrant.physical_name(kind, version)
            if embed_options.recreate_collections and client.collection_exists(name):
                client.delete_collection(name)
                context.log.warning(f"Dropped {name} (recreate_collections)")
            points = chunks[chunks["collection"] == kind]
            if dim is None and not client.collection_exists(name):
                continue
            if dim is not None:
                try:
                    ensure_collection(
                        client,
                        name,
                        kind,
                        dense_encoder.vector_name,
                        dim,
                        sparse_encoder.vector_name,
                        sparse_encoder.uses_idf,
                    )
                except CollectionMismatch as error:
                    raise dg.Failure(str(error), allow_retries=False) from None
            existing = existing_points(client, name, context.partition_key)
            stored_hash = points["point_id"].map({pid: payload.get("point_hash") for pid, payload in existing.items()})
            todo = points if embed_options.force_reembed else points[stored_hash != points["point_hash"]]
            for start in range(0, len(todo), UPSERT_BATCH):
                batch = _points(
                    todo.iloc[start : start + UPSERT_BATCH], dense_encoder.vector_name, sparse_encoder.vector_name
                )
                client.upsert(name, points=batch, wait=True)
            keep = set(points["point_id"])
            stale = [
                pid
                for pid, payload in existing.items()
                if pid not in keep and payload.get("record_key") not in failed_records
            ]
            if stale:
                client.delete(name, points_selector=models.PointIdsList(points=stale), wait=True)
            before |= {payload.get("record_key") for payload in existing.values()}
            written |= set(todo["record_key"])
            gone |= {existing[pid].get("record_key") for pid in stale}
            upserted, unchanged, deleted = (
                upserted + len(todo),
                unchanged + len(points) - len(todo),
                deleted + len(stale),
            )
            metadata[f"{kind}_points"] = dg.MetadataValue.int(len(points))
            metadata[f"{kind}_collection"] = dg.MetadataValue.text(name)
            metadata[f"{kind}_collection_total_points"] = dg.MetadataValue.int(
                client.get_collection(name).points_count or 0
            )
        removed = _point_aliases(context, client, qdrant, version)
        searched = {kind: alias_target(client, qdrant.alias(kind)) or "" for kind in COLLECTION_KINDS}
    seconds = time.perf_counter() - started
    current = set(chunks["record_key"])
    records = {
        "records_new": len(current - before),
        "records_changed": len((written & before) & current),
        "records_unchanged": len(current - written),
        "records_deleted": len(gone - current),
    }
    context.log.info(
        f"Upserted {upserted} points ({unchanged} unchanged), deleted {deleted} stale ones in {seconds:.1f}s"
    )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **{name: dg.MetadataValue.int(count) for name, count in records.items()},
            "points": dg.MetadataValue.int(upserted + unchanged),
            "points_upserted": dg.MetadataValue.int(upserted),
            "points_unchanged": dg.MetadataValue.int(unchanged),
            "points_deleted": dg.MetadataValue.int(deleted),
            "failed_records_kept": dg.MetadataValue.int(len(failed_records)),
            "searches_use": dg.MetadataValue.text(", ".join(searched.values())),
            "collections_removed": dg.MetadataValue.text(", ".join(removed) or "none"),
            "dense_model": dg.MetadataValue.text(dense_encoder.model_name),
            "dense_dimension": dg.MetadataValue.int(dim or 0),
            "sparse_model": dg.MetadataValue.text(sparse_encoder.model_name),
            "upsert_seconds": dg.MetadataValue.float(round(seconds, 3)),
            "points_per_second": dg.MetadataValue.float(round(upserted / seconds, 1) if seconds else 0.0),
        }
    )
