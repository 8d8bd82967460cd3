"""The Definitions load, and the asset graph is the one the design describes."""

import dagster as dg

from embedding_pipeline.definitions import defs
from embedding_pipeline.partitions import PARTITIONS


def test_asset_graph_is_the_pipeline_partitioned_by_resource_type():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"source_content", "text_chunks", "dense_vectors", "sparse_vectors", "qdrant_points"}
    for key in graph.get_all_asset_keys():
        assert graph.get(key).partitions_def.get_partition_keys() == PARTITIONS
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
    assert job.partitions_def.get_partition_keys() == PARTITIONS


def test_secrets_are_passed_by_environment_variable_name(monkeypatch):
    from embedding_pipeline.resources import build_resources
    from embedding_pipeline.settings import Settings

    monkeypatch.setenv("QDRANT_API_KEY", "s3cret-key")
    monkeypatch.setenv("QDRANT_HOST", "http://127.0.0.1:6333")
    resources = build_resources(Settings.from_env())
    assert isinstance(resources["qdrant"].api_key, dg.EnvVar)
    assert "s3cret-key" not in repr(resources["qdrant"])
    assert resources["qdrant"].host == "http://127.0.0.1:6333"  # shown, having no password
    for host in (
        "https://me:pass-shown-nowhere@qdrant.example.org",
        "https://qdrant.example.org/?key=pass-shown-nowhere",
    ):
        monkeypatch.setenv("QDRANT_HOST", host)
        monkeypatch.setenv("QDRANT_PORT", "6334")
        qdrant = build_resources(Settings.from_env())["qdrant"]
        assert isinstance(qdrant.host, dg.EnvVar) and "shown-nowhere" not in repr(qdrant)
        with dg.build_resources({"qdrant": qdrant}) as built:
            assert built.qdrant.url == host.replace(".org", ".org:6334")


IMPORT_DEFINITIONS = """
import json, os, sys
before = dict(os.environ)
import embedding_pipeline.definitions
heavy = ["pandas", "fastembed", "onnxruntime", "langchain_text_splitters", "litellm", "torch"]
print(json.dumps({"environment_unchanged": dict(os.environ) == before, "heavy": [m for m in heavy if m in sys.modules]}))
"""


def test_importing_the_definitions_changes_no_environment_variable_and_loads_no_model_library(tmp_path):
    """A process that only loads the definitions (the webserver, a sensor tick, a run with nothing to do) reads the
    settings and nothing else: no variable is set and no model or splitter library is imported."""
    import json
    import os
    import subprocess
    import sys

    (tmp_path / ".env").write_text("QDRANT_CHUNK_SIZE=7\n")  # a .env is the entry points' business, not the import's
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "LITELLM_LOCAL_MODEL_COST_MAP")}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_DEFINITIONS], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == {"environment_unchanged": True, "heavy": []}


def test_the_sensor_ticks_as_often_as_set(tmp_path):
    """A deployment sets how often the sensor polls the content database; the daemon reads it from the definitions."""
    import os
    import subprocess
    import sys

    show = "from embedding_pipeline.definitions import defs; print(defs.resolve_sensor_def('new_content_sensor')"
    show += ".minimum_interval_seconds)"
    for value, expected in ((None, "30"), ("120", "120")):
        env = {k: v for k, v in os.environ.items() if k != "EMBEDDING_PIPELINE_SENSOR_INTERVAL_SECONDS"}
        env.update({"EMBEDDING_PIPELINE_SENSOR_INTERVAL_SECONDS": value} if value else {})
        done = subprocess.run(
            [sys.executable, "-c", show], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.stdout.split() == [expected], done.stderr[-2000:]
    env["EMBEDDING_PIPELINE_SENSOR_INTERVAL_SECONDS"] = "1"  # the daemon looks every 5 s: named, not accepted
    done = subprocess.run(
        [sys.executable, "-c", show], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0 and "EMBEDDING_PIPELINE_SENSOR_INTERVAL_SECONDS" in done.stderr
