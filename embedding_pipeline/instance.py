"""Dagster's instance configuration: `$DAGSTER_HOME/dagster.yaml`, the project's file with Dagster's own storage.

SQLite in DAGSTER_HOME by default (Dagster's default storage: the project's `dagster.yaml` names none). With
`DAGSTER_POSTGRES_URL`, or `DAGSTER_POSTGRES_HOST` and its friends, set, Dagster's PostgreSQL storage
(dagster-postgres), configured from those variables by name: the file and the instance reference Dagster hands to
run workers hold no password. A Dagster home made here (a link to the project's file, or a file written here) is
made again when the settings ask for the other storage; a `dagster.yaml` of one's own is left as it is. On
Kubernetes the Helm chart writes the instance configuration (docs/deploy.md).
"""

import os
from pathlib import Path

import yaml

from embedding_pipeline.settings import Settings

PROJECT_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
WRITTEN_HERE = "# Written by embedding-pipeline from the project's dagster.yaml and DAGSTER_POSTGRES_* (by name).\n"
POSTGRES_PARTS = {"hostname": "HOST", "port": "PORT", "username": "USER", "password": "PASSWORD", "db_name": "DB"}


def postgres_storage(settings: Settings) -> dict | None:
    """Dagster's `storage: postgres:` section for the settings, its values read from the variables by name; None
    for SQLite."""
    if settings.dagster_postgres_url is not None:
        return {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}}
    if not settings.dagster_postgres_host:
        return None
    given = {key: f"DAGSTER_POSTGRES_{name}" for key, name in POSTGRES_PARTS.items()}
    return {"postgres": {"postgres_db": {key: {"env": name} for key, name in given.items() if os.environ.get(name)}}}


def ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME (default ./.dagster_home) exists and holds the instance configuration the settings ask for."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster_home"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    ours = config.is_symlink() or not config.exists() or config.read_text().startswith(WRITTEN_HERE)
    if not ours:
        return home
    storage = postgres_storage(settings)
    if storage is None:
        if not (config.is_symlink() and config.resolve() == PROJECT_DAGSTER_YAML):
            config.unlink(missing_ok=True)
            config.symlink_to(PROJECT_DAGSTER_YAML)
        return home
    wanted = WRITTEN_HERE + PROJECT_DAGSTER_YAML.read_text() + "\n" + yaml.safe_dump({"storage": storage})
    if config.is_symlink() or not config.exists() or config.read_text() != wanted:
        config.unlink(missing_ok=True)
        config.write_text(wanted)
    return home
