"""The project's dagster.yaml: SQLite in DAGSTER_HOME by default, PostgreSQL when its settings are set.

The PostgreSQL side runs against a real server in test_postgres.py.
"""

import shutil

import dagster as dg
import pytest

from embedding_pipeline_tests.conftest import REPO

POSTGRES_VARIABLES = [f"DAGSTER_POSTGRES_{name}" for name in ("URL", "HOST", "PORT", "USER", "PASSWORD", "DB")]


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    for name in POSTGRES_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    return tmp_path


def test_without_postgres_settings_runs_are_stored_in_sqlite_in_dagster_home(dagster_home):
    @dg.asset
    def one() -> int:
        return 1

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        result = dg.materialize([one], instance=instance)
    assert (dagster_home / "history" / "runs.db").exists()
    with dg.DagsterInstance.get() as instance:  # a new instance from the same file finds the run
        assert [run.run_id for run in instance.get_runs()] == [result.run_id]


def test_an_incomplete_postgres_setting_is_named(dagster_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("DAGSTER_POSTGRES_USER", "dagster")
    with pytest.raises(dg.DagsterInvariantViolationError, match="these are not: DAGSTER_POSTGRES_DB"):
        dg.DagsterInstance.get()
