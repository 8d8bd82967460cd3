"""The five pipeline assets of a partition, made by one step that streams the partition batch by batch.

source_content ─► text_chunks ─► dense_vectors ─┐
                               └► sparse_vectors ─┴► qdrant_points

A partition can hold a million chunks, so no step may hold it whole: records are read, chunked,
embedded and written `batch_size` at a time, and Qdrant is where the vectors and the "already
embedded" state live (`embedding_pipeline.sync`). One step does it, since each batch goes all
the way through; Dagster still sees the five assets, each with its own metadata.
"""

import time
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from embedding_pipeline.partitions import RESOURCE_TYPES, resource_type_partitions
from embedding_pipeline.resources.chunker import TextChunker
from embedding_pipeline.resources.content_source import ContentSource, ContentSourceError
from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.options import EmbedOptions
from embedding_pipeline.resources.qdrant import QdrantResource
from embedding_pipeline.run_state import (
    claim_run,
    clear_full_verification,
    fail_dead_runs,
    failed_records,
    forget_heads,
    full_verification_requested,
    request_full_verification,
    save_heads,
    saved_heads,
    write_manifest,
)
from embedding_pipeline.sync import (
    LISTED_FAILURES,
    MassDeletion,
    Options,
    PartitionSync,
    Plan,
    Report,
    Verification,
    ensure_collections,
    heads_agree,
    list_records,
    partition_state,
    refresh_heads,
    switch_aliases,
    verify,
)
from embedding_pipeline.vector_store import COLLECTION_KINDS, CollectionMismatch, collection_spec

RETRIES = dg.RetryPolicy(max_retries=3, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)
NO_EMPTY_CHUNKS, NO_FAILED_RECORDS = "no_empty_chunks", "no_failed_records"
POINTS_MATCH_SOURCE, DENSE_DIMENSION = "points_match_source", "dense_dimension_matches_encoder"
SAMPLE = 10
RECENT_RUNS = 20  # materializations looked through for a partition's last whole run
INTERRUPTED = "Interrupted (Ctrl-C or a terminate): the batches written so far stay done; run again to finish"


def _spec(key: str, description: str, deps: list[str], kinds: set[str], code_version: str | None = None):
    return dg.AssetSpec(
        key, description=description, deps=deps, kinds=kinds, group_name="embeddings",
        partitions_def=resource_type_partitions, code_version=code_version,
    )  # fmt: skip


SPECS = [
    _spec(
        "source_content",
        "The partition's published learning resources and content files, as the content database lists "
        "them; stored as a manifest (one row per record: key, status new/changed/unchanged/deleted/failed).",
        [], {"sql"},
    ),
    _spec(
        "text_chunks",
        "One text per Qdrant point: a resource's title, descriptions and topics; a content file's "
        "token-sized chunks, Markdown split on headers first. Only new and changed records are chunked.",
        ["source_content"], {"tiktoken"}, "chunks-2",
    ),
    _spec(
        "dense_vectors",
        "The dense vector of every chunk, named after the model; a text Qdrant already holds is not embedded again.",
        ["text_chunks"], {"onnx"}, "dense-2",
    ),
    _spec("sparse_vectors", "The BM25 vector of every chunk (Qdrant applies the IDF).", ["text_chunks"], {"onnx"}, "sparse-2"),
    _spec(
        "qdrant_points",
        "The partition's points in {base}.resources and {base}.content_files: new and changed ones written, "
        "deleted records' removed, indexes built.",
        ["text_chunks", "dense_vectors", "sparse_vectors"], {"qdrant"}, "points-2",
    ),
]  # fmt: skip


def _check(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, partitions_def=resource_type_partitions, description=description)


CHECK_SPECS = [
    _check(NO_EMPTY_CHUNKS, "text_chunks", "No text to embed is empty."),
    _check(NO_FAILED_RECORDS, "text_chunks", "Records that could not be read or embedded (WARN)."),
    _check(
        POINTS_MATCH_SOURCE, "qdrant_points",
        "Every record the source lists has all its points, as the source has it now, and Qdrant holds no point "
        "of this resource type that no listed record owns (records that failed keep theirs). After a run's "
        "writes a count per collection stands in for the list of points; executed alone, every point is listed.",
    ),
    _check(DENSE_DIMENSION, "qdrant_points", "The collections' dense vectors have the dimension the encoder produces."),
]  # fmt: skip


def _every_partition_done(context: dg.AssetExecutionContext, version: str) -> bool:
    """True when every other partition's latest whole run wrote this version's collections.

    Runs limited to some records (`scope` in their metadata) do not count: they leave the rest out.
    """
    for partition in RESOURCE_TYPES:
        if partition == context.partition_key:
            continue
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("qdrant_points"), asset_partitions=[partition]),
            limit=RECENT_RUNS,
        ).records
        whole = [r.asset_materialization.metadata for r in records if "scope" not in r.asset_materialization.metadata]
        if not whole or "vectors_version" not in whole[0] or whole[0]["vectors_version"].value != version:
            return False
    return True


@dg.multi_asset(
    name="embed_partition",
    specs=SPECS,
    check_specs=CHECK_SPECS,
    partitions_def=resource_type_partitions,
    retry_policy=RETRIES,
    can_subset=True,  # the checks can be executed alone, against what Qdrant holds now
)
def embed_partition(
    context: dg.AssetExecutionContext,
    content_source: ContentSource,
    chunker: TextChunker,
    dense_encoder: DenseEncoder,
    sparse_encoder: SparseEncoder,
    qdrant: QdrantResource,
    embed_options: EmbedOptions,
) -> Iterator:
    """Reads the partition's new and changed records, chunks, embeds and writes them, batch by batch.

    Unchanged records cost nothing but their line in the listing; a run that dies resumes after the
    last batch it finished; a record that cannot be read or embedded keeps its points and is named.
    """
    try:
        yield from _embed_partition(
            context, content_source, chunker, dense_encoder, sparse_encoder, qdrant, embed_options
        )
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):  # Dagster would retry it, as an error
        raise dg.Failure(INTERRUPTED, allow_retries=False) from None


def _embed_partition(context, content_source, chunker, dense_encoder, sparse_encoder, qdrant, embed_options):
    partition = context.partition_key
    claim_run(context.instance, context.run.run_id)  # a later run can tell if this one is killed
    fail_dead_runs(context.instance, context.log.warning)
    version = qdrant.vectors_version
    names = {kind: qdrant.physical_name(kind, version) for kind in COLLECTION_KINDS}
    if not context.selected_asset_keys:  # the checks alone, on what Qdrant holds now
        with content_source.reader(partition) as reader, qdrant.get_store_for_step(context, "checks") as store:
            failed = failed_records(context.instance, partition)  # they keep their old points, or have none
            verification = verify(store, names, partition, list_records(reader), failed, full=True)
            sizes = _dense_sizes(store, names, dense_encoder)
        if not verification.passed:
            request_full_verification(context.instance, partition)  # the next run compares every point and heals
        yield from _selected(context, _qdrant_checks(verification, sizes, dense_encoder))
        return
    if embed_options.recreate_collections and "dagster/backfill" in context.run.tags:
        raise dg.Failure(
            "recreate_collections drops every partition's points, so a backfill would undo its own runs; "
            "use force_reembed in a backfill, or recreate_collections in a single run",
            allow_retries=False,
        )
    dense_encoder.check()
    options = Options(
        batch_size=content_source.batch_size,
        upload_batch_size=qdrant.upload_batch_size,
        force=embed_options.force_reembed,
        resource_ids=frozenset(embed_options.resource_ids),
        content_files=not embed_options.skip_content_files,
        max_delete_share=None if embed_options.allow_mass_deletion else qdrant.max_delete_share,
    )
    scope = _scope(embed_options)
    if scope:
        context.log.info(f"{partition}: this run embeds {scope}; every other record is left as it is")

    def spec(kind: str):
        return collection_spec(
            kind, dense_encoder.vector_name, dense_encoder.dim, sparse_encoder.vector_name, sparse_encoder.uses_idf
        )

    with content_source.reader(partition) as reader, qdrant.get_store_for_step(context, "embed_partition") as store:
        if embed_options.recreate_collections:
            forget_heads(context.instance, partition)
            for name in ensure_collections(store, names, lambda kind: None, recreate=True):
                context.log.warning(f"Dropped {name} (recreate_collections)")
        sync = PartitionSync(
            store, reader, chunker, dense_encoder, sparse_encoder, names, version, partition, options, context.log.info
        )
        full = full_verification_requested(context.instance, partition)
        started = time.perf_counter()
        saved = None if full else _saved_heads(context, store, names, qdrant.location)
        sync.report.seconds["heads"] = time.perf_counter() - started
        if saved is not None:
            sync.report.heads_from = "the last whole run (Qdrant unchanged since)"
        plan = sync.plan(verify_every_point=full, heads=saved)
        if not plan.listing.records and not plan.listing.failed and content_source.holds_no_resources():
            raise ContentSourceError(
                content_source.database_url, "the database holds no learning resources at all; nothing was written"
            )
        context.log.info(
            f"{partition}: {len(plan.listing.records)} records listed: {len(plan.new)} new, {len(plan.changed)} "
            f"changed, {len(plan.unchanged)} unchanged, {len(plan.deleted)} deleted"
        )
        touches_qdrant = bool(plan.todo or plan.deleted or any(plan.damage.orphans.values()))
        if touches_qdrant:
            forget_heads(context.instance, partition)  # saved again below, once Qdrant is checked
        try:
            report = sync.run(plan, spec)
        except (CollectionMismatch, MassDeletion) as error:
            raise dg.Failure(str(error), allow_retries=False) from None
        heads = refresh_heads(store, names, plan.heads, plan.todo, plan.deleted) if touches_qdrant else plan.heads
        verification = verify(
            store, names, partition, plan.listing, report.failed_record_ids, full,
            heads=heads, damage=None if touches_qdrant else plan.damage,
        )  # fmt: skip
        if not verification.passed:
            forget_heads(context.instance, partition)
        elif not scope and (touches_qdrant or saved is None):
            save_heads(context.instance, partition, heads, partition_state(store, names, partition, qdrant.location))
        sizes = _dense_sizes(store, names, dense_encoder)
        switch = switch_aliases(
            store,
            {qdrant.alias(kind): name for kind, name in names.items()},
            lambda: not scope and _every_partition_done(context, version),
            keep_old=qdrant.keep_old_collections,
        )
    if switch.moved:
        context.log.info(f"Searches now use {sorted(switch.searches_use.values())}")
    if switch.removed:
        context.log.info(f"Removed old collections {switch.removed}")
    for who, reason in list(report.failures.items())[:LISTED_FAILURES]:
        context.log.warning(f"Not embedded: {reason}")
    for message in plan.listing.duplicates[:LISTED_FAILURES]:
        context.log.warning(f"Duplicate record key: {message}")
    if not scope:  # the manifest and the verification state describe whole runs
        write_manifest(context.instance, partition, _manifest(plan, report))
        if not verification.passed:
            request_full_verification(context.instance, partition)
        elif full:
            clear_full_verification(context.instance, partition)

    results = [
        dg.MaterializeResult(asset_key="source_content", metadata=_source_metadata(plan, report)),
        dg.MaterializeResult(asset_key="text_chunks", metadata=_chunk_metadata(report, chunker)),
        dg.MaterializeResult(asset_key="dense_vectors", metadata=_dense_metadata(report, dense_encoder)),
        dg.MaterializeResult(asset_key="sparse_vectors", metadata=_sparse_metadata(report, sparse_encoder)),
        dg.MaterializeResult(
            asset_key="qdrant_points",
            metadata={
                **_points_metadata(plan, report, version, names, switch, dense_encoder, sparse_encoder),
                **({"scope": dg.MetadataValue.text(scope)} if scope else {}),
            },
        ),
        dg.AssetCheckResult(
            asset_key="text_chunks",
            check_name=NO_EMPTY_CHUNKS,
            passed=not report.empty_texts,
            metadata={"chunks": report.chunks, "empty_texts": report.empty_texts},
        ),
        dg.AssetCheckResult(
            asset_key="text_chunks",
            check_name=NO_FAILED_RECORDS,
            passed=not report.failures,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "failed_records": len(report.failures),
                "failures": dg.MetadataValue.md(_listed(report.failures.values())),
            },
        ),
        *_qdrant_checks(verification, sizes, dense_encoder),
    ]
    yield from _selected(context, results)


def _saved_heads(context, store, names: dict[str, str], location: str) -> dict | None:
    """The heads the partition's last whole run saved, if Qdrant holds as many points as it left and a
    sample of them agrees with Qdrant's; else None (the run reads them from Qdrant)."""
    partition = context.partition_key
    saved = saved_heads(context.instance, partition, partition_state(store, names, partition, location))
    if saved is not None and not heads_agree(store, names, saved):
        context.log.warning(f"{partition}: Qdrant's heads differ from those the last run left; all are read again")
        return None
    return saved


def _scope(options: EmbedOptions) -> str:
    """What a run limited to part of the partition embeds, in words; empty for a whole run."""
    which = f"resources {', '.join(map(str, sorted(options.resource_ids)))}" if options.resource_ids else ""
    if options.skip_content_files:
        return f"{which or 'the learning resources'}, content files left as they are"
    return f"{which} and their content files" if which else ""


def _selected(context: dg.AssetExecutionContext, results: list) -> Iterator:
    """The results of the assets and checks this run selected (a run may select a subset, or only checks)."""
    for result in results:
        if isinstance(result, dg.AssetCheckResult):
            key = dg.AssetCheckKey(dg.AssetKey.from_coercible(result.asset_key), result.check_name)
            if key in context.selected_asset_check_keys:
                yield result
        elif dg.AssetKey.from_coercible(result.asset_key) in context.selected_asset_keys:
            yield result


def _dense_sizes(store, names: dict[str, str], dense: DenseEncoder) -> dict[str, int | None]:
    return {
        name: store.dense_sizes(name).get(dense.vector_name) for name in names.values() if store.collection_exists(name)
    }


def _qdrant_checks(verification: Verification, sizes: dict, dense: DenseEncoder) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key="qdrant_points",
            check_name=POINTS_MATCH_SOURCE,
            passed=verification.passed,
            metadata={
                "expected_points": verification.expected_points,
                "points_in_qdrant": verification.points_in_qdrant,
                "missing_points": len(verification.missing),
                "extra_points": len(verification.extra),
                "records_out_of_date": len(verification.out_of_date),
                "every_point_listed": verification.every_point_listed,
                "missing_sample": dg.MetadataValue.json(sorted(verification.missing)[:SAMPLE]),
                "extra_sample": dg.MetadataValue.json(sorted(verification.extra)[:SAMPLE]),
                "out_of_date_sample": dg.MetadataValue.json(sorted(verification.out_of_date)[:SAMPLE]),
            },
        ),
        dg.AssetCheckResult(
            asset_key="qdrant_points",
            check_name=DENSE_DIMENSION,
            passed=all(size == dense.dim for size in sizes.values()),
            metadata={"encoder_dimension": dense.dim, "collections": dg.MetadataValue.json(sizes)},
        ),
    ]


def _seconds(value: float) -> dg.MetadataValue:
    return dg.MetadataValue.float(round(float(value), 3))


def _listed(messages) -> str:
    messages = list(messages)
    shown = [f"- {m}" for m in messages[:LISTED_FAILURES]]
    if len(messages) > LISTED_FAILURES:
        shown.append(f"- ... and {len(messages) - LISTED_FAILURES} more")
    return "\n".join(shown) or "none"


def _manifest(plan: Plan, report: Report) -> list[dict]:
    status = {r.record_id: "new" for r in plan.new} | {r.record_id: "changed" for r in plan.changed}
    status |= {r.record_id: "failed" for r in plan.new + plan.changed if r.record_id in report.failed_record_ids}
    rows = [
        {"record_key": r.record_key, "record_id": r.record_id, "kind": r.kind, "source_id": r.source_id,
         "status": status.get(r.record_id, "unchanged")}
        for r in plan.listing.records.values()
    ] + [
        {"record_key": h.record_key, "record_id": h.record_id, "kind": h.kind, "source_id": None, "status": "deleted"}
        for h in plan.deleted
    ]  # fmt: skip
    return rows


def _source_metadata(plan: Plan, report: Report) -> dict:
    return {
        "resources": dg.MetadataValue.int(report.records_listed["resource"]),
        "content_files": dg.MetadataValue.int(report.records_listed["content_file"]),
        "records_to_read": dg.MetadataValue.int(len(plan.todo)),
        "duplicate_records": dg.MetadataValue.int(len(plan.listing.duplicates)),
        "duplicates": dg.MetadataValue.md(_listed(plan.listing.duplicates)),
        "fetch_seconds": _seconds(report.seconds["fetch"]),
    }


def _sample_table(samples: list[dict]) -> str:
    """A few chunks as a Markdown table, so the UI shows what is being embedded (inline: under 1,000 characters)."""
    rows = [
        {"record": s["record_key"], "tokens": s["tokens"], "text": " ".join(s["text"].split())[:60] + "…"}
        for s in samples
    ]
    return pd.DataFrame(rows, columns=["record", "tokens", "text"]).to_markdown(index=False) if rows else "none"


def _chunk_metadata(report: Report, chunker: TextChunker) -> dict:
    return {
        "resources": dg.MetadataValue.int(report.records_done["resource"]),
        "content_files": dg.MetadataValue.int(report.records_done["content_file"]),
        "chunks": dg.MetadataValue.int(report.chunks),
        "tokens": dg.MetadataValue.int(report.tokens),
        "max_chunk_tokens": dg.MetadataValue.int(report.max_chunk_tokens),
        "chunk_size": dg.MetadataValue.int(chunker.chunk_size),
        "chunk_overlap": dg.MetadataValue.int(chunker.chunk_overlap),
        "token_encoding": dg.MetadataValue.text(chunker.encoding_name),
        "chunk_seconds": _seconds(report.seconds["chunk"]),
        "sample_chunks": dg.MetadataValue.md(_sample_table(report.samples)),
        "failed_records": dg.MetadataValue.int(len(report.failures)),
        "failures": dg.MetadataValue.md(_listed(report.failures.values())),
    }


def _vector_metadata(report: Report, seconds: float, model: str, vector_name: str) -> dict:
    return {
        "texts": dg.MetadataValue.int(report.texts_needed),
        "texts_embedded": dg.MetadataValue.int(report.texts_embedded),
        "texts_reused": dg.MetadataValue.int(report.texts_reused),
        "encode_seconds": _seconds(seconds),
        "texts_per_second": dg.MetadataValue.float(round(report.texts_embedded / seconds, 1) if seconds else 0.0),
        "model": dg.MetadataValue.text(model),
        "vector_name": dg.MetadataValue.text(vector_name),
    }


def _dense_metadata(report: Report, dense: DenseEncoder) -> dict:
    return {
        **_vector_metadata(report, report.seconds["dense"], dense.model_name, dense.vector_name),
        **{name: dg.MetadataValue.int(report.encoder_stats[name]) for name in dense.stat_names},
        "texts_rejected": dg.MetadataValue.int(len(report.rejected)),
        "rejected": dg.MetadataValue.md(_listed(f"{k}: {v}" for k, v in report.rejected.items())),
        "dimension": dg.MetadataValue.int(report.dimension),
    }


def _sparse_metadata(report: Report, sparse: SparseEncoder) -> dict:
    return {
        **_vector_metadata(report, report.seconds["sparse"], sparse.model_name, sparse.vector_name),
        "idf_modifier": dg.MetadataValue.bool(sparse.uses_idf),
    }


def _points_metadata(plan, report, version, names, switch, dense, sparse) -> dict:
    deleted_records = len(plan.deleted)
    seconds = report.seconds["upsert"]
    per_kind = {}
    for kind, name in names.items():
        if kind in report.collection_points:
            per_kind[f"{kind}_points"] = dg.MetadataValue.int(report.partition_points[kind])
            per_kind[f"{kind}_collection"] = dg.MetadataValue.text(name)
            per_kind[f"{kind}_collection_total_points"] = dg.MetadataValue.int(report.collection_points[kind])
    written = len(report.records_written)
    return {
        "vectors_version": dg.MetadataValue.text(version),
        **per_kind,
        "records_new": dg.MetadataValue.int(sum(1 for r in plan.new if r.record_id in report.records_written)),
        "records_changed": dg.MetadataValue.int(sum(1 for r in plan.changed if r.record_id in report.records_written)),
        "records_unchanged": dg.MetadataValue.int(len(plan.listing.records) - written),
        "records_deleted": dg.MetadataValue.int(deleted_records),
        "points": dg.MetadataValue.int(report.points_upserted + report.points_unchanged),
        "points_upserted": dg.MetadataValue.int(report.points_upserted),
        "points_unchanged": dg.MetadataValue.int(report.points_unchanged),
        "points_deleted": dg.MetadataValue.int(report.points_deleted),
        "failed_records_kept": dg.MetadataValue.int(len(report.failures)),
        "batches": dg.MetadataValue.int(report.batches),
        "searches_use": dg.MetadataValue.text(", ".join(switch.searches_use.values())),
        "collections_removed": dg.MetadataValue.text(", ".join(switch.removed) or "none"),
        "dense_model": dg.MetadataValue.text(dense.model_name),
        "dense_dimension": dg.MetadataValue.int(report.dimension),
        "sparse_model": dg.MetadataValue.text(sparse.model_name),
        "heads_from": dg.MetadataValue.text(report.heads_from),
        "heads_seconds": _seconds(report.seconds["heads"]),
        "upsert_seconds": _seconds(seconds),
        "index_seconds": _seconds(report.seconds["index"]),
        "points_per_second": dg.MetadataValue.float(round(report.points_upserted / seconds, 1) if seconds else 0.0),
    }
