"""Asset checks an operator sees on each partition: is Qdrant exactly what the source says?

Both read the source and Qdrant afresh (never a run's own bookkeeping), so they can also be
executed alone from the UI, against what Qdrant holds now.
"""

import dagster as dg

from embedding_pipeline.partitions import resource_type_partitions
from embedding_pipeline.points import point_ids
from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.qdrant import QdrantResource
from embedding_pipeline.run_state import failed_records, request_full_verification
from embedding_pipeline.sync import current_version, find_damage, list_records, make_plan, stored_heads
from embedding_pipeline.vector_store import COLLECTION_KINDS

SAMPLE = 10


@dg.asset_check(
    asset="qdrant_points",
    partitions_def=resource_type_partitions,
    pool="qdrant",
    description="Every record the source lists has all its points, as the source has it now, and Qdrant holds "
    "no point of this resource type that no listed record owns (records that failed keep theirs).",
)
def points_match_source(
    context: dg.AssetCheckExecutionContext,
    content_source: ContentSource,
    qdrant: QdrantResource,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoder,
    chunker: TextChunker,
) -> dg.AssetCheckResult:
    partition = context.partition_key
    version = current_version(dense_encoder, sparse_encoder, chunker)
    names = {kind: qdrant.physical_name(kind, version) for kind in COLLECTION_KINDS}
    failed = failed_records(context.instance, partition)  # they keep their old points, or have none
    with content_source.reader(partition) as reader, qdrant.get_store_for_step(context, "checks") as store:
        listing = list_records(reader)
        heads = stored_heads(store, names, partition)
        damage = find_damage(store, names, partition, heads, listing.records, full=True)
        in_qdrant = sum(
            store.count(name, {"resource_type": partition}) for name in names.values() if store.collection_exists(name)
        )
    plan = make_plan(listing, heads, damage)
    unwritten = [r for r in plan.new if r.record_id not in failed]  # listed, never written
    stale = [r for r in plan.changed if r.record_id not in failed and r.record_id not in damage.records]
    missing = damage.missing + [point_ids(r, 1)[0] for r in unwritten]
    extra = damage.extra + [f"{h.record_key} ({h.chunk_count} points)" for h in plan.deleted]
    expected = sum(heads[r.record_id].chunk_count for r in plan.changed + plan.unchanged) + len(unwritten)
    passed = not missing and not extra and not stale
    if not passed:
        request_full_verification(context.instance, partition)  # the next run compares every point and heals
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "expected_points": expected,
            "points_in_qdrant": in_qdrant,
            "missing_points": len(missing),
            "extra_points": len(extra),
            "records_out_of_date": len(stale),
            "missing_sample": dg.MetadataValue.json(sorted(missing)[:SAMPLE]),
            "extra_sample": dg.MetadataValue.json(sorted(extra)[:SAMPLE]),
            "out_of_date_sample": dg.MetadataValue.json(sorted(r.record_key for r in stale)[:SAMPLE]),
        },
    )


@dg.asset_check(
    asset="qdrant_points",
    partitions_def=resource_type_partitions,
    pool="qdrant",
    description="The collections' dense vectors have the dimension the encoder produces.",
)
def dense_dimension_matches_encoder(
    context: dg.AssetCheckExecutionContext,
    qdrant: QdrantResource,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoder,
    chunker: TextChunker,
) -> dg.AssetCheckResult:
    version = current_version(dense_encoder, sparse_encoder, chunker)
    with qdrant.get_store_for_step(context, "checks") as store:
        names = [qdrant.physical_name(kind, version) for kind in COLLECTION_KINDS]
        sizes = {
            name: store.dense_sizes(name).get(dense_encoder.vector_name)
            for name in names
            if store.collection_exists(name)
        }
    encoder_dim = dense_encoder.dim
    return dg.AssetCheckResult(
        passed=all(size == encoder_dim for size in sizes.values()),
        metadata={"encoder_dimension": encoder_dim, "collections": dg.MetadataValue.json(sizes)},
    )
