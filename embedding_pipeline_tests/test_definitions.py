"""The Definitions load, and the asset graph is the one the design describes."""

import dagster as dg

from embedding_pipeline.definitions import defs
from embedding_pipeline.partitions import RESOURCE_TYPES


def test_asset_graph_is_the_pipeline_partitioned_by_resource_type():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"source_content", "text_chunks", "dense_vectors", "sparse_vectors", "qdrant_points"}
    for key in graph.get_all_asset_keys():
        assert graph.get(key).partitions_def.get_partition_keys() == RESOURCE_TYPES
    upstream = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()
    }
    assert upstream["qdrant_points"] == {"text_chunks", "dense_vectors", "sparse_vectors"}
    assert upstream["dense_vectors"] == upstream["sparse_vectors"] == {"text_chunks"}
    assert upstream["text_chunks"] == {"source_content"}


def test_embed_job_makes_every_asset_and_check_in_one_step():
    job = defs.resolve_job_def("embed")
    assert {node.name for node in job.graph.nodes} == {"embed_partition"}
    assert {key.name for key in job.asset_layer.asset_graph.asset_check_keys} == {
        "no_empty_chunks", "no_failed_records", "points_match_source", "dense_dimension_matches_encoder",
    }  # fmt: skip
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {
        "source_content",
        "text_chunks",
        "dense_vectors",
        "sparse_vectors",
        "qdrant_points",
    }
    assert job.partitions_def.get_partition_keys() == RESOURCE_TYPES


def test_secrets_are_passed_by_environment_variable_name(monkeypatch):
    from embedding_pipeline.resources import build_resources
    from embedding_pipeline.settings import Settings

    monkeypatch.setenv("QDRANT_API_KEY", "s3cret-key")
    monkeypatch.setenv("QDRANT_HOST", "http://127.0.0.1:6333")
    resources = build_resources(Settings.from_env())
    assert isinstance(resources["qdrant"].api_key, dg.EnvVar)
    assert "s3cret-key" not in repr(resources["qdrant"])
