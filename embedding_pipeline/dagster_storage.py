"""Dagster's own storage (runs, event logs, schedules and sensor state), chosen by the environment.

`dagster.yaml` names `PostgresOrSqliteStorage`, so one static file serves both set-ups: PostgreSQL
(dagster-postgres) when `DAGSTER_POSTGRES_URL` or `DAGSTER_POSTGRES_HOST` is set, SQLite in
`DAGSTER_HOME` otherwise. The webserver, the daemon, the CLI and every run read the same file and
the same environment, so they always agree on where runs are recorded.

With SQLite, the storage keeps each file's connection open between statements. Dagster's own opens
and closes the file for every statement (a new engine each time, and with its WAL journal a
checkpoint at every close): about 0.15 s of every run here, most of a run with nothing to do.
It also reads alembic's migration scripts once per process, not twice for every new run's file
(20 ms a run). Everything else is Dagster's SQLite storage as it is (dagster is pinned: the classes
below extend its private ones).
"""

import os
import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, cached_property

import dagster as dg
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cachetools import LRUCache
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqlEventLogStorageMetadata,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import get_alembic_config
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DatabaseError

from embedding_pipeline.settings import Settings


def postgres_config() -> dict | None:
    """dagster-postgres config from the environment, or None when PostgreSQL is not asked for."""
    settings = Settings.from_env()
    if settings.dagster_postgres_url is not None:
        return {"postgres_url": settings.dagster_postgres_url.get_secret_value()}
    if not settings.dagster_postgres_host:
        return None
    required = {
        "DAGSTER_POSTGRES_USER": settings.dagster_postgres_user,
        "DAGSTER_POSTGRES_DB": settings.dagster_postgres_db,
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise dg.DagsterInvariantViolationError(
            f"DAGSTER_POSTGRES_HOST is set, so Dagster's storage is PostgreSQL, but these are not: "
            f"{', '.join(missing)} (or set DAGSTER_POSTGRES_URL instead)"
        )
    password = settings.dagster_postgres_password
    return {
        "postgres_db": {
            "hostname": settings.dagster_postgres_host,
            "port": settings.dagster_postgres_port,
            "username": settings.dagster_postgres_user,
            "password": password.get_secret_value() if password else "",
            "db_name": settings.dagster_postgres_db,
        }
    }


class PostgresOrSqliteStorage(DagsterStorage, ConfigurableClass):
    """Never instantiated: loading it from `dagster.yaml` hands back the PostgreSQL or SQLite storage.

    The connection settings stay in the environment: the serialized instance reference that
    Dagster passes to run workers holds only this class's config, never a password.
    """

    @classmethod
    def config_type(cls):
        return {"sqlite_base_dir": dg.Field(dg.StringSource, description="Where SQLite storage lives.")}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value) -> DagsterStorage:
        postgres = postgres_config()
        if postgres is not None:
            from dagster_postgres import DagsterPostgresStorage

            return DagsterPostgresStorage.from_config_value(inst_data, postgres)
        return KeptSqliteStorage.from_local(config_value["sqlite_base_dir"], inst_data=inst_data)


ENGINES_KEPT = 16  # per event log: the index and the runs being written or followed, each one open file
_live_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def _kept_engine(conn_string: str, **kwargs) -> Engine:
    """An engine with SQLAlchemy's default pool for a SQLite file: its connection stays open."""
    engine = create_engine(conn_string, **kwargs)
    _live_engines.add(engine)
    return engine


def _forget_parents_connections() -> None:
    """A forked child must not use the connections it inherited (SQLite's rule); it opens its own."""
    for engine in list(_live_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parents_connections)


class _KeptConnection:
    """For the storages held in one SQLite file (runs; schedules and sensor ticks)."""

    _conn_string: str

    @cached_property
    def _engine(self) -> Engine:
        return _kept_engine(self._conn_string)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engine.dispose()


class KeptSqliteRunStorage(_KeptConnection, SqliteRunStorage):
    pass


class KeptSqliteScheduleStorage(_KeptConnection, SqliteScheduleStorage):
    pass


@cache
def _event_log_migrations() -> ScriptDirectory:
    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


class _Engines(LRUCache):
    """Engines by connection string; the least recently used goes, with its open file, past ENGINES_KEPT."""

    def popitem(self):
        key, engine = super().popitem()
        engine.dispose()
        return key, engine


class KeptSqliteEventLogStorage(SqliteEventLogStorage):
    """One file per run plus an index: the engines of the last ENGINES_KEPT files are kept."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines = _Engines(maxsize=ENGINES_KEPT)
        super().__init__(base_dir, inst_data)

    def _engine(self, shard: str) -> Engine:
        conn_string = self.conn_string_for_shard(shard)
        if conn_string not in self._engines:  # under the lock: an engine evicted now is not in use
            self._engines[conn_string] = _kept_engine(
                conn_string, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
            )
        return self._engines[conn_string]

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """A new run's file as Dagster's `_initdb` makes it (its tables, WAL journal and alembic stamp), with
        the migration scripts read once per process. The index, and a file that another process is creating
        at the same moment, are left to Dagster's own, which waits for that process."""
        if not for_index_shard:
            try:
                with engine.connect() as conn:
                    migrations = MigrationContext.configure(conn)
                    if migrations.get_current_revision() is None:
                        SqlEventLogStorageMetadata.create_all(conn)
                        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                        migrations.stamp(_event_log_migrations(), "head")
                        conn.commit()
                return
            except (DatabaseError, sqlite3.Error):
                pass
        super()._initdb(engine, for_index_shard)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME:
                    # The webserver follows a run's events by watching the run's file: move them from the
                    # journal into it, as closing the connection did.
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _forget_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()  # each disposed as it goes

    def wipe(self) -> None:
        self._forget_engines()  # before the run files are removed
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._forget_engines()


class KeptSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage with the three storages above."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self.base_dir = base_dir
        self._run_storage = KeptSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = KeptSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = KeptSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()  # what DagsterSqliteStorage.__init__ ends with
