"""The asset checks pass on a consistent partition and fail, with counts and ids, when Qdrant drifts."""

import dagster as dg
import pytest

from embedding_pipeline.mit_learn import OWN
from embedding_pipeline.partitions import resource_type_partitions
from embedding_pipeline.vector_store import CollectionSpec, Point
from embedding_pipeline_tests.support.helpers import ASSETS


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _run_checks(pipeline, partition: str, *names: str) -> dict[str, dg.AssetCheckEvaluation]:
    """The checks alone, on what is in Qdrant now (as the UI's "Execute checks" does)."""
    keys = [dg.AssetCheckKey(dg.AssetKey("qdrant_points"), name) for name in names]
    job = dg.define_asset_job(
        "checks", selection=dg.AssetSelection.checks(*keys), partitions_def=resource_type_partitions
    )
    defs = dg.Definitions(assets=ASSETS, jobs=[job], resources=pipeline.resources)
    result = defs.resolve_job_def("checks").execute_in_process(
        instance=pipeline.instance, tags={"dagster/partition": partition}
    )  # as the UI launches a partitioned check
    assert not result.get_asset_materialization_events()  # nothing is written
    return _checks(result)


def test_all_checks_pass_on_a_consistent_partition(pipeline):
    checks = _checks(pipeline.materialize("document"))
    assert set(checks) == {
        "no_empty_chunks",
        "no_failed_records",
        "points_match_source",
        "dense_dimension_matches_encoder",
    }
    assert all(c.passed and c.partition == "document" for c in checks.values())
    assert checks["points_match_source"].metadata["expected_points"].value > 80


EXTRA_POINT = "00000000-0000-0000-0000-0000000000aa"


@pytest.mark.parametrize(("delete_one", "add_one"), [(True, False), (False, True), (True, True)])
def test_points_match_source_fails_when_a_point_is_deleted_or_added(pipeline, delete_one, add_one):
    pipeline.materialize("document")
    with pipeline.store() as store:
        name = pipeline.qdrant.alias("content_files")
        first, second = sorted(pid for pid, payload in store.scroll(name) if payload[OWN]["role"] == "chunk")[:2]
        if delete_one:
            store.delete(name, [first])
        if add_one:  # a point of this resource type that the source does not have
            ((_, _, vectors),) = store.retrieve(name, [second], with_vectors=True)
            payload = {OWN: {"resource_type": "document", "record_key": "library.gone.2024.x"}}
            store.upsert(name, [Point(EXTRA_POINT, vectors, payload)])
    check = _run_checks(pipeline, "document", "points_match_source")["points_match_source"]
    assert not check.passed and check.partition == "document"
    metadata = {k: v.value for k, v in check.metadata.items()}
    assert metadata["missing_points"] == int(delete_one) and metadata["extra_points"] == int(add_one)
    assert metadata["missing_sample"] == ([first] if delete_one else [])
    assert metadata["extra_sample"] == ([EXTRA_POINT] if add_one else [])
    assert _checks(pipeline.materialize("document"))["points_match_source"].passed  # the next run heals


def test_dimension_check_fails_when_the_collection_has_another_dimension(pipeline):
    dense = pipeline.resources["dense_encoder"]
    pipeline.materialize("video")
    with pipeline.store() as store:
        for kind in ("resources", "content_files"):
            alias = pipeline.qdrant.alias(kind)
            physical = store.resolve(alias)
            store.drop_collection(physical)
            store.create_collection(physical, CollectionSpec(dense.vector_name, 8, "bm25", True))
            store.set_aliases({alias: physical})
    check = _run_checks(pipeline, "video", "dense_dimension_matches_encoder")["dense_dimension_matches_encoder"]
    assert not check.passed and check.metadata["encoder_dimension"].value == dense.dim


def test_failed_records_are_a_warning_that_lists_them(pipeline):
    pipeline.execute("UPDATE {T}learningresource SET title = '' WHERE readable_id = 'yt-crispr'")
    checks = _checks(pipeline.materialize("video"))
    warning = checks["no_failed_records"]
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN and warning.partition == "video"
    assert "youtube.yt-crispr: field 'title' is empty" in warning.metadata["failures"].value
    assert checks["points_match_source"].passed and checks["no_empty_chunks"].passed
