"""qdrant_points: the partition's points in the Qdrant collections, and nothing else of it.

Searches read `{base}.resources` and `{base}.content_files`, aliases of physical collections
named `{base}.{kind}.{version}`; the version hashes everything that determines the vectors. A
change of model or chunking therefore fills new collections while searches stay on the old ones,
and both aliases move together once every partition has been embedded with the new settings.
The work itself is in `embedding_pipeline.sync`.
"""

import time
from functools import partial

import dagster as dg
import pandas as pd

from embedding_pipeline.assets.vectors import RETRIES
from embedding_pipeline.partitions import RESOURCE_TYPES, resource_type_partitions
from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.options import EmbedOptions
from embedding_pipeline.resources.qdrant import QdrantResource
from embedding_pipeline.sync import (
    current_version,
    embeddable,
    ensure_collections,
    point_hash,
    records_keeping_points,
    switch_aliases,
    sync_collection,
    to_points,
)
from embedding_pipeline.vector_store import COLLECTION_KINDS, CollectionMismatch, collection_spec


def _every_partition_done(context: dg.AssetExecutionContext, version: str) -> bool:
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
    version = current_version(dense_encoder, sparse_encoder, chunker)
    chunks = (
        embeddable(text_chunks)
        .merge(dense_vectors, on=["point_id", "text_hash"])
        .merge(sparse_vectors, on=["point_id", "text_hash"])
    )
    chunks["point_hash"] = [point_hash(version, t, p) for t, p in zip(chunks["text_hash"], chunks["payload"])]
    keep = records_keeping_points(text_chunks, chunks["point_id"])
    dim = len(chunks["vector"].iloc[0]) if len(chunks) else None
    names = {kind: qdrant.physical_name(kind, version) for kind in COLLECTION_KINDS}
    dense_name, sparse_name = dense_encoder.vector_name, sparse_encoder.vector_name

    def spec(kind: str):
        return None if dim is None else collection_spec(kind, dense_name, dim, sparse_name, sparse_encoder.uses_idf)

    started = time.perf_counter()
    with qdrant.get_store_for_step(context, "qdrant_points") as store:
        try:
            dropped = ensure_collections(store, names, spec, recreate=embed_options.recreate_collections)
        except CollectionMismatch as error:
            raise dg.Failure(str(error), allow_retries=False) from None
        for name in dropped:
            context.log.warning(f"Dropped {name} (recreate_collections)")
        write = partial(to_points, dense_name=dense_name, sparse_name=sparse_name)
        syncs = {
            kind: sync_collection(
                store,
                name,
                chunks[chunks["collection"] == kind],
                context.partition_key,
                write,
                keep_records=keep,
                force=embed_options.force_reembed,
                progress=context.log.info,
            )
            for kind, name in names.items()
            if store.collection_exists(name)
        }
        switch = switch_aliases(
            store,
            {qdrant.alias(kind): name for kind, name in names.items()},
            lambda: _every_partition_done(context, version),
            keep_old=qdrant.keep_old_collections,
        )
    seconds = time.perf_counter() - started
    if switch.moved:
        context.log.info(f"Searches now use {sorted(switch.searches_use.values())}")
    elif any(switch.searches_use.get(qdrant.alias(k)) not in ("", n) for k, n in names.items()):
        context.log.info(
            f"Searches stay on {sorted(switch.searches_use.values())} until every partition has version {version}"
        )
    if switch.removed:
        context.log.info(f"Removed old collections {switch.removed}")
    upserted = sum(s.upserted for s in syncs.values())
    unchanged = sum(s.unchanged for s in syncs.values())
    deleted = sum(s.deleted for s in syncs.values())
    before = set().union(*(s.records_before for s in syncs.values()))
    written = set().union(*(s.records_written for s in syncs.values()))
    gone = set().union(*(s.records_gone for s in syncs.values()))
    current = set(chunks["record_key"])
    context.log.info(
        f"Upserted {upserted} points ({unchanged} unchanged), deleted {deleted} stale ones in {seconds:.1f}s"
    )
    per_kind = {}
    for kind, sync in syncs.items():
        per_kind[f"{kind}_points"] = dg.MetadataValue.int(sync.points)
        per_kind[f"{kind}_collection"] = dg.MetadataValue.text(sync.name)
        per_kind[f"{kind}_collection_total_points"] = dg.MetadataValue.int(sync.total_points)
    return dg.MaterializeResult(
        metadata={
            "vectors_version": dg.MetadataValue.text(version),
            **per_kind,
            "records_new": dg.MetadataValue.int(len(current - before)),
            "records_changed": dg.MetadataValue.int(len(written & before & current)),
            "records_unchanged": dg.MetadataValue.int(len(current - written)),
            "records_deleted": dg.MetadataValue.int(len(gone - current)),
            "points": dg.MetadataValue.int(upserted + unchanged),
            "points_upserted": dg.MetadataValue.int(upserted),
            "points_unchanged": dg.MetadataValue.int(unchanged),
            "points_deleted": dg.MetadataValue.int(deleted),
            "failed_records_kept": dg.MetadataValue.int(len(keep)),
            "searches_use": dg.MetadataValue.text(", ".join(switch.searches_use.values())),
            "collections_removed": dg.MetadataValue.text(", ".join(switch.removed) or "none"),
            "dense_model": dg.MetadataValue.text(dense_encoder.model_name),
            "dense_dimension": dg.MetadataValue.int(dim or 0),
            "sparse_model": dg.MetadataValue.text(sparse_encoder.model_name),
            "upsert_seconds": dg.MetadataValue.float(round(seconds, 3)),
            "points_per_second": dg.MetadataValue.float(round(upserted / seconds, 1) if seconds else 0.0),
        }
    )
