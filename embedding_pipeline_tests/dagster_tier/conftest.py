"""The Dagster tier: every asset, sensor, check and command as a user runs them, on the real engine and
Dagster, with a deterministic encoder instead of the ONNX model (seconds a test). What needs the real
model (vectors equal to the torch model's, search quality) is in `e2e/`."""

import pytest

from embedding_pipeline_tests.support.dagster_warnings import ignore_dagster_previews
from embedding_pipeline_tests.support.encoders import HASHING_ENCODER


def pytest_configure(config):
    ignore_dagster_previews(config)


@pytest.fixture(scope="session")
def encoder() -> str:
    return HASHING_ENCODER
