"""Dagster's own storage (runs, event logs, schedules and sensor state), chosen by the environment.

`dagster.yaml` names `PostgresOrSqliteStorage`, so one static file serves both set-ups: PostgreSQL
(dagster-postgres) when `DAGSTER_POSTGRES_URL` or `DAGSTER_POSTGRES_HOST` is set, SQLite in
`DAGSTER_HOME` otherwise. The webserver, the daemon, the CLI and every run read the same file and
the same environment, so they always agree on where runs are recorded.
"""

import os

import dagster as dg
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from embedding_pipeline.settings import env_int, env_text

REQUIRED_WITH_HOST = ("DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_DB")


def postgres_config() -> dict | None:
    """dagster-postgres config from the environment, or None when PostgreSQL is not asked for."""
    url = env_text("DAGSTER_POSTGRES_URL", "")
    if url:
        return {"postgres_url": url}
    host = env_text("DAGSTER_POSTGRES_HOST", "")
    if not host:
        return None
    missing = [name for name in REQUIRED_WITH_HOST if not env_text(name, "")]
    if missing:
        raise dg.DagsterInvariantViolationError(
            f"DAGSTER_POSTGRES_HOST is set, so Dagster's storage is PostgreSQL, but these are not: "
            f"{', '.join(missing)} (or set DAGSTER_POSTGRES_URL instead)"
        )
    return {
        "postgres_db": {
            "hostname": host,
            "port": env_int("DAGSTER_POSTGRES_PORT", 5432),
            "username": env_text("DAGSTER_POSTGRES_USER", ""),
            "password": os.environ.get("DAGSTER_POSTGRES_PASSWORD", ""),
            "db_name": env_text("DAGSTER_POSTGRES_DB", ""),
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
        return DagsterSqliteStorage.from_config_value(inst_data, {"base_dir": config_value["sqlite_base_dir"]})
