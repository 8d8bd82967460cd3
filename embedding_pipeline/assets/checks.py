"""The four asset checks: their specs, and their results from what a run (or a check alone) found."""

import warnings

import dagster as dg

from embedding_pipeline.assets.metadata import listed
from embedding_pipeline.partition.plan import Verification
from embedding_pipeline.partition.report import Report
from embedding_pipeline.partitions import resource_type_partitions

NO_EMPTY_CHUNKS, NO_FAILED_RECORDS = "no_empty_chunks", "no_failed_records"
POINTS_MATCH_SOURCE, DENSE_DIMENSION = "points_match_source", "dense_dimension_matches_encoder"
SAMPLE = 10  # point ids shown per list


def _check(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():  # partitioned checks are a preview in Dagster 1.13: known, said once here
        warnings.simplefilter("ignore", dg.PreviewWarning)
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


def chunk_checks(report: Report) -> list[dg.AssetCheckResult]:
    return [
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
                "failures": dg.MetadataValue.md(listed(report.failures.values())),
            },
        ),
    ]


SHARED_KEYS = "keys_another_type_holds"


def qdrant_checks(
    verification: Verification, sizes: dict, dimension: int, shared_keys: list[str] = ()
) -> list[dg.AssetCheckResult]:
    """`shared_keys`: records whose point another type's record holds (their points are missing, and stay so)."""
    sample = {
        name: dg.MetadataValue.json(sorted(ids)[:SAMPLE])
        for name, ids in (
            ("missing_sample", verification.missing),
            ("extra_sample", verification.extra),
            ("out_of_date_sample", verification.out_of_date),
        )
    }
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
                "points_answered_wrongly": dg.MetadataValue.md(listed(verification.unreadable)),
                "every_point_listed": verification.every_point_listed,
                **({SHARED_KEYS: dg.MetadataValue.md(listed(shared_keys))} if shared_keys else {}),
                **sample,
            },
        ),
        dg.AssetCheckResult(
            asset_key="qdrant_points",
            check_name=DENSE_DIMENSION,
            passed=all(size == dimension for size in sizes.values()),
            metadata={"encoder_dimension": dimension, "collections": dg.MetadataValue.json(sizes)},
        ),
    ]
