"""Dagster's own storage (runs, event logs, schedules and sensor state), chosen by the environment.

`dagster.yaml` names `PostgresOrSqliteStorage`, so one static file serves both set-ups: PostgreSQL
(dagster-postgres) when `DAGSTER_POSTGRES_URL` or `DAGSTER_POSTGRES_HOST` is set, SQLite in
`DAGSTER_HOME` otherwise. The webserver, the daemon, the CLI and every run read the same file and
the same environment, so they always agree on where runs are recorded.
"""

import dagster as dg
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData

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
        return DagsterSqliteStorage.from_config_value(inst_data, {"base_dir": config_value["sqlite_base_dir"]})
