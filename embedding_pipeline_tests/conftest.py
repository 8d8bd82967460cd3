"""Shared fixtures. Three tiers: `core/` (plain Python, seconds), `dagster_tier/` (assets, sensors, the CLI,
with the deterministic encoder of `support/encoders.py`) and `e2e/` (the real model, PostgreSQL, the daemon,
faults, the browser). The pipeline fixtures import their helpers when first used, so that the core never
loads Dagster or the model."""

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Commands the tests start get Ctrl-C as at a terminal. Started as a script's background job (`pytest &`),
# this process ignores SIGINT and its children would inherit that, so a test's Ctrl-C would not reach them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Lets a fixture see whether its test failed (the browser then saves a screenshot)."""
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The default dense model as ONNX: the project's own copy (built once by `make setup`)."""
    from embedding_pipeline.offline_model import build_minilm_onnx

    path = Path(os.environ.get("EMBEDDING_PIPELINE_TEST_MODEL", REPO / "data" / "models" / "all-MiniLM-L6-v2"))
    return build_minilm_onnx(path)


@pytest.fixture(scope="session")
def encoder() -> str | None:
    """The dense encoder class of the tier's pipelines (QDRANT_ENCODER): None for the real model."""
    return None


@pytest.fixture
def pipeline(tmp_path, model_dir, monkeypatch, encoder):
    """A fresh pipeline on the sample data, nothing materialized yet."""
    from embedding_pipeline.resources.qdrant import close_query_stores
    from embedding_pipeline_tests.support.helpers import Pipeline

    yield Pipeline(tmp_path, model_dir, monkeypatch, encoder)
    close_query_stores()  # a search kept the store open: its folder goes with the test (pyproject.toml)


@pytest.fixture(scope="module")
def embedded_pipeline(tmp_path_factory, model_dir, encoder):
    """A pipeline with every partition materialized once, shared by a module's read-only tests."""
    from embedding_pipeline_tests.support.helpers import Pipeline

    with pytest.MonkeyPatch.context() as monkeypatch:
        pipeline = Pipeline(tmp_path_factory.mktemp("embedded"), model_dir, monkeypatch, encoder)
        pipeline.results = pipeline.materialize_all()
        yield pipeline
