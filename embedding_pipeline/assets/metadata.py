"""The five assets' materialization metadata, from what a partition's run did (`partition.run.Outcome`)."""

import dagster as dg

from embedding_pipeline.partition.points import PlannedPoint
from embedding_pipeline.partition.report import LISTED_FAILURES, Report
from embedding_pipeline.partition.run import Outcome

SAMPLE_TEXT = 60  # characters of each sample chunk shown (the table stays under Dagster's 1,000 inline)


def seconds(value: float) -> dg.MetadataValue:
    return dg.MetadataValue.float(round(float(value), 3))


def listed(messages) -> str:
    """At most LISTED_FAILURES messages as a Markdown list, saying how many more there are."""
    messages = list(messages)
    shown = [f"- {m}" for m in messages[:LISTED_FAILURES]]
    if len(messages) > LISTED_FAILURES:
        shown.append(f"- ... and {len(messages) - LISTED_FAILURES} more")
    return "\n".join(shown) or "none"


def sample_table(samples: list[PlannedPoint]) -> str:
    """A few chunks as a Markdown table, so the UI shows what is being embedded."""
    from tabulate import tabulate

    rows = [[s.record_key, s.tokens, " ".join(s.text.split())[:SAMPLE_TEXT] + "…"] for s in samples]
    return tabulate(rows, headers=["record", "tokens", "text"], tablefmt="pipe") if rows else "none"


def materializations(
    outcome: Outcome, chunker, dense, sparse, scope: str, never_embedded: str = ""
) -> list[dg.MaterializeResult]:
    """The five assets' results; `scope` names what a run limited to part of the partition covered;
    `never_embedded`, what no partition embeds, as the run's requester found it."""
    report = outcome.report
    points = {**points_metadata(outcome, dense, sparse), **({"scope": dg.MetadataValue.text(scope)} if scope else {})}
    return [
        dg.MaterializeResult(
            asset_key="source_content",
            metadata={**source_metadata(outcome), "never_embedded": dg.MetadataValue.text(never_embedded or "none")},
        ),
        dg.MaterializeResult(asset_key="text_chunks", metadata=chunk_metadata(report, chunker)),
        dg.MaterializeResult(asset_key="dense_vectors", metadata=dense_metadata(report, dense)),
        dg.MaterializeResult(asset_key="sparse_vectors", metadata=sparse_metadata(report, sparse)),
        dg.MaterializeResult(asset_key="qdrant_points", metadata=points),
    ]


def source_metadata(outcome: Outcome) -> dict:
    plan, report = outcome.plan, outcome.report
    return {
        "resources": dg.MetadataValue.int(report.records_listed["resource"]),
        "content_files": dg.MetadataValue.int(report.records_listed["content_file"]),
        "course_information": dg.MetadataValue.int(report.records_listed["course_information"]),
        "topics": dg.MetadataValue.int(report.records_listed["topic"]),
        "listed_new": dg.MetadataValue.int(len(plan.new)),
        "listed_changed": dg.MetadataValue.int(len(plan.changed)),
        "listed_unchanged": dg.MetadataValue.int(len(plan.unchanged)),
        "listed_deleted": dg.MetadataValue.int(len(plan.deleted)),
        "records_to_read": dg.MetadataValue.int(len(plan.todo)),
        "duplicate_records": dg.MetadataValue.int(len(plan.listing.duplicates) + len(report.shared_keys)),
        "duplicates": dg.MetadataValue.md(listed(plan.listing.duplicates + report.shared_keys)),
        "fetch_seconds": seconds(report.seconds["fetch"]),
    }


def chunk_metadata(report: Report, chunker) -> dict:
    return {
        "resources": dg.MetadataValue.int(report.records_done["resource"]),
        "content_files": dg.MetadataValue.int(report.records_done["content_file"]),
        "course_information": dg.MetadataValue.int(report.records_done["course_information"]),
        "topics": dg.MetadataValue.int(report.records_done["topic"]),
        "chunks": dg.MetadataValue.int(report.chunks),
        "tokens": dg.MetadataValue.int(report.tokens),
        "max_chunk_tokens": dg.MetadataValue.int(report.max_chunk_tokens),
        "chunk_size": dg.MetadataValue.int(chunker.chunk_size),
        "chunk_overlap": dg.MetadataValue.int(chunker.chunk_overlap),
        "token_encoding": dg.MetadataValue.text(chunker.encoding_name),
        "chunk_seconds": seconds(report.seconds["chunk"]),
        "sample_chunks": dg.MetadataValue.md(sample_table(report.samples)),
        "failed_records": dg.MetadataValue.int(len(report.failures)),
        "failures": dg.MetadataValue.md(listed(report.failures.values())),
    }


def _vector_metadata(report: Report, spent: float, model: str, vector_name: str) -> dict:
    return {
        "texts": dg.MetadataValue.int(report.texts_needed),
        "texts_embedded": dg.MetadataValue.int(report.texts_embedded),
        "texts_reused": dg.MetadataValue.int(report.texts_reused),
        "texts_taken_over": dg.MetadataValue.int(report.texts_taken_over),
        "encode_seconds": seconds(spent),
        "texts_per_second": dg.MetadataValue.float(round(report.texts_embedded / spent, 1) if spent else 0.0),
        "model": dg.MetadataValue.text(model),
        "vector_name": dg.MetadataValue.text(vector_name),
    }


def dense_metadata(report: Report, dense) -> dict:
    return {
        **_vector_metadata(report, report.seconds["dense"], dense.model_name, dense.vector_name),
        **{name: dg.MetadataValue.int(report.encoder_stats[name]) for name in dense.stat_names},
        "texts_rejected": dg.MetadataValue.int(len(report.rejected)),
        "rejected": dg.MetadataValue.md(listed(f"{k}: {v}" for k, v in report.rejected.items())),
        "dimension": dg.MetadataValue.int(report.dimension),
    }


def sparse_metadata(report: Report, sparse) -> dict:
    return {
        **_vector_metadata(report, report.seconds["sparse"], sparse.model_name, sparse.vector_name),
        "idf_modifier": dg.MetadataValue.bool(sparse.uses_idf),
    }


def points_metadata(outcome: Outcome, dense, sparse) -> dict:
    plan, report, switch = outcome.plan, outcome.report, outcome.switch
    spent = report.seconds["upsert"]
    written = report.records_written
    return {
        "vectors_version": dg.MetadataValue.text(outcome.names.version),
        **_collection_metadata(outcome),
        "records_new": dg.MetadataValue.int(sum(1 for r in plan.new if r.record_id in written)),
        "records_changed": dg.MetadataValue.int(sum(1 for r in plan.changed if r.record_id in written)),
        "records_unchanged": dg.MetadataValue.int(len(plan.listing.records) - len(written)),
        "records_deleted": dg.MetadataValue.int(len(plan.deleted)),
        "points": dg.MetadataValue.int(report.points_upserted + report.points_unchanged),
        "points_upserted": dg.MetadataValue.int(report.points_upserted),
        "points_unchanged": dg.MetadataValue.int(report.points_unchanged),
        "points_deleted": dg.MetadataValue.int(report.points_deleted),
        "failed_records_kept": dg.MetadataValue.int(len(report.failures)),
        "batches": dg.MetadataValue.int(report.batches),
        "searches_use": dg.MetadataValue.text(", ".join(switch.searches_use.values())),
        "collections_removed": dg.MetadataValue.text(", ".join(switch.removed) or "none"),
        "old_collections_kept": dg.MetadataValue.text(", ".join(switch.kept) or "none"),
        "dense_model": dg.MetadataValue.text(dense.model_name),
        "dense_dimension": dg.MetadataValue.int(report.dimension),
        "sparse_model": dg.MetadataValue.text(sparse.model_name),
        "heads_from": dg.MetadataValue.text(report.heads_from),
        "heads_seconds": seconds(report.seconds["heads"]),
        "upsert_seconds": seconds(spent),
        "index_seconds": seconds(report.seconds["index"]),
        "points_per_second": dg.MetadataValue.float(round(report.points_upserted / spent, 1) if spent else 0.0),
    }


def _collection_metadata(outcome: Outcome) -> dict:
    """Per collection kind that exists: this type's points, the physical name, and every type's points."""
    report, metadata = outcome.report, {}
    for kind, name in outcome.names.by_kind.items():
        if kind in report.collection_points:
            metadata[f"{kind}_points"] = dg.MetadataValue.int(report.partition_points[kind])
            metadata[f"{kind}_collection"] = dg.MetadataValue.text(name)
            metadata[f"{kind}_collection_total_points"] = dg.MetadataValue.int(report.collection_points[kind])
    return metadata
