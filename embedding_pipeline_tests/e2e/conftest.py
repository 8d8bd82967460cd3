"""The end-to-end tier: the real model, PostgreSQL, the daemon, faults and the browser."""

from embedding_pipeline_tests.support.dagster_warnings import ignore_dagster_previews


def pytest_configure(config):
    ignore_dagster_previews(config)
