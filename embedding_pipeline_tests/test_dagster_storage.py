"""The project's dagster.yaml: SQLite in DAGSTER_HOME by default, PostgreSQL when its settings are set.

The PostgreSQL side runs against a real server in test_postgres.py.
"""

import hashlib
import inspect
import multiprocessing
import shutil
import sqlite3
import subprocess
import sys
import threading

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

from embedding_pipeline.dagster_storage import KeptSqliteEventLogStorage
from embedding_pipeline_tests.helpers import REPO

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


def _run_file(folder) -> tuple:
    """What a run's event-log file holds besides events: its schema, migration stamp and journal mode."""
    db = sqlite3.connect(folder / "run-1.db")
    try:
        schema = sorted(db.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=str)
        return (
            schema,
            db.execute("SELECT * FROM alembic_version").fetchall(),
            db.execute("PRAGMA journal_mode").fetchall(),
        )
    finally:
        db.close()


def test_a_new_runs_file_is_the_one_dagster_makes(tmp_path):
    """The storage makes a run's file itself (alembic's scripts read once per process, not per run): the
    same tables, indexes, journal and migration stamp as Dagster's own, so Dagster's migrations apply."""
    made = {}
    for storage_class in (SqliteEventLogStorage, KeptSqliteEventLogStorage):
        folder = tmp_path / storage_class.__name__
        storage = storage_class(str(folder))
        with storage.run_connection("run-1"):
            pass
        storage.dispose()
        made[storage_class] = _run_file(folder)
    assert made[KeptSqliteEventLogStorage] == made[SqliteEventLogStorage]
    schema, stamp, journal = made[KeptSqliteEventLogStorage]
    assert "event_logs" in {name for _, name, _ in schema} and stamp and journal == [("wal",)]


def _open_run_file(folder: str, barrier) -> None:
    storage = KeptSqliteEventLogStorage(folder)
    barrier.wait()
    with storage.run_connection("run-1") as conn:
        conn.exec_driver_sql("SELECT count(*) FROM event_logs").fetchall()


def test_processes_that_make_one_runs_file_at_once_all_get_it(tmp_path):
    """A run's process and the webserver following it may make the run's file at the same moment: each
    gets the file, made once (the loser of the race waits, as in Dagster's own storage)."""
    KeptSqliteEventLogStorage(str(tmp_path)).dispose()  # the index exists, as in any used home
    fork = multiprocessing.get_context("fork")
    for _ in range(3):
        for leftover in tmp_path.glob("run-1.db*"):
            leftover.unlink()
        barrier = fork.Barrier(4, timeout=60)
        processes = [fork.Process(target=_open_run_file, args=(str(tmp_path), barrier)) for _ in range(4)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [process.exitcode for process in processes] == [0, 0, 0, 0]
        schema, stamp, _ = _run_file(tmp_path)
        assert len(stamp) == 1 and "event_logs" in {name for _, name, _ in schema}


def test_an_incomplete_postgres_setting_is_named(dagster_home, monkeypatch):
    monkeypatch.setenv("DAGSTER_POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("DAGSTER_POSTGRES_USER", "dagster")
    with pytest.raises(dg.DagsterInvariantViolationError, match="these are not: DAGSTER_POSTGRES_DB"):
        dg.DagsterInstance.get()


# What dagster_storage.py replaces or builds on in Dagster's private SQLite storage, as the pinned Dagster
# has it (a hash of each one's source). An upgrade that changes any of them fails here, by name: read the
# new code, carry the change into dagster_storage.py (or drop it: `storage: sqlite` in dagster.yaml), then
# record the new hash.
REPLACED = {
    (SqliteEventLogStorage, "__init__"): "264c15baa761",
    (SqliteEventLogStorage, "_connect"): "b8435f266568",
    (SqliteEventLogStorage, "_initdb"): "7a302d98eb61",
    (SqliteEventLogStorage, "dispose"): "df16dafbfa84",
    (SqliteEventLogStorage, "wipe"): "de02c63676e7",
    (SqliteRunStorage, "connect"): "d343abae6e9b",
    (SqliteScheduleStorage, "connect"): "d343abae6e9b",
    (DagsterSqliteStorage, "__init__"): "bcf5aa27a5dd",
}


def test_the_private_dagster_code_the_storage_replaces_is_the_code_it_was_written_against():
    changed = [
        f"{cls.__name__}.{name}"
        for (cls, name), expected in REPLACED.items()
        if hashlib.sha256(inspect.getsource(getattr(cls, name)).encode()).hexdigest()[:12] != expected
    ]
    assert not changed, (
        f"Dagster {dg.__version__} changed {', '.join(changed)}, which embedding_pipeline/dagster_storage.py "
        "replaces or extends: review it against the new code before trusting the SQLite storage"
    )
