"""The project's dagster.yaml: SQLite in DAGSTER_HOME by default, PostgreSQL when its settings are set.

The PostgreSQL side runs against a real server in test_postgres.py.
"""

import shutil
import subprocess
import sys
import threading

import dagster as dg
import pytest
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

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
        assert isinstance(instance.run_storage, SqliteRunStorage)
        result = dg.materialize([one], instance=instance)
    assert (dagster_home / "history" / "runs.db").exists()
    with dg.DagsterInstance.get() as instance:  # a new instance from the same file finds the run
        assert [run.run_id for run in instance.get_runs()] == [result.run_id]


def test_the_events_of_a_run_in_progress_reach_a_process_that_follows_it(dagster_home):
    """What the UI's run page does: the webserver watches the run's SQLite file while another process
    (the run's) writes to it. The storage keeps its connections open; the events must still show."""
    seen = threading.Event()

    def on_event(entry, cursor):
        if entry.dagster_event.message == "halfway":
            seen.set()

    with dg.DagsterInstance.get() as runner, dg.DagsterInstance.get() as webserver:
        run = runner.create_run_for_job(dg.GraphDefinition("nothing").to_job())
        runner.report_engine_event("started", run)  # the run's file exists: it can be watched
        webserver.watch_event_logs(run.run_id, None, on_event)
        runner.report_engine_event("halfway", run)
        assert seen.wait(timeout=10), "the follower never saw the event written by the run"


WRITER = """
import dagster as dg

@dg.asset
def one() -> int:
    return 1

with dg.DagsterInstance.get() as instance:
    for _ in range(10):
        assert dg.materialize([one], instance=instance).success
"""


def test_processes_writing_runs_at_once_lose_nothing(dagster_home):
    """The CLI, the daemon's runs and the webserver share the SQLite files, each process keeping its
    connections open: every run and every materialization of three processes at once is recorded."""
    dg.DagsterInstance.get().dispose()  # the home is made first, as `embedding-pipeline setup` does
    writers = [subprocess.Popen([sys.executable, "-c", WRITER], stderr=subprocess.PIPE) for _ in range(3)]
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read().decode()[-2000:]
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 30 and {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
        assert len(instance.fetch_materializations(dg.AssetKey("one"), limit=100).records) == 30


def test_an_incomplete_postgres_setting_is_named(dagster_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("DAGSTER_POSTGRES_USER", "dagster")
    with pytest.raises(dg.DagsterInvariantViolationError, match="these are not: DAGSTER_POSTGRES_DB"):
        dg.DagsterInstance.get()
