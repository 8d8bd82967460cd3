"""The production storage path on a real PostgreSQL server: content source, Dagster storage, sensor.

CI starts the server (.ci/run); elsewhere the tests skip, saying why, when none answers at
EMBEDDING_PIPELINE_TEST_POSTGRES_URL (default postgresql://embedding:embedding@127.0.0.1:5432/postgres).
"""

import json
import os
import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.sample_data import load_sample_data
from embedding_pipeline.sensors import new_content_sensor
from embedding_pipeline_tests.helpers import REPO, pipeline_env, resource, run_dagster, unavailable

SERVER_URL = os.environ.get(
    "EMBEDDING_PIPELINE_TEST_POSTGRES_URL", "postgresql://embedding:embedding@127.0.0.1:5432/postgres"
)


@pytest.fixture
def postgres_database():
    """A fresh database on the server, dropped afterwards."""
    server = sa.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            name = f"ep_test_{uuid.uuid4().hex[:10]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        unavailable(f"no PostgreSQL server at {SERVER_URL} ({str(error).splitlines()[0]}); CI starts one")
    url = sa.engine.make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with server.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    server.dispose()


def test_the_sample_content_loads_into_and_reads_from_postgresql(postgres_database):
    assert load_sample_data(postgres_database) == (44, 14)
    with ContentSource(batch_size=100, database_url=postgres_database).database().reader("document") as reader:
        resources, files = list(reader.list_resources()), list(reader.list_content_files())
        assert len(resources) == 5 and len(files) == 5
        rows = reader.resources([r["id"] for r in resources if r["readable_id"] == "doc-urban-beekeeping"])
    (bees,) = rows.values()
    assert list(bees["topics"]) == ["Agriculture", "Ecology"]


def test_dagster_yaml_stores_runs_and_events_in_postgresql_when_dagster_postgres_url_is_set(
    postgres_database, tmp_path, model_dir
):
    """The production set-up from the shell: content and Dagster's storage both in PostgreSQL."""
    load_sample_data(postgres_database)
    env = {
        **pipeline_env(tmp_path, model_dir),
        "DAGSTER_POSTGRES_URL": postgres_database,
        "CONTENT_DATABASE_URL": postgres_database,
    }
    home = Path(env["DAGSTER_HOME"])
    job = run_dagster(
        env, "job", "execute", "-m", "embedding_pipeline.definitions", "-j", "embed",
        "--tags", '{"dagster/partition": "document"}',
    )  # fmt: skip
    assert job.returncode == 0, job.stderr[-3000:]

    engine = sa.create_engine(postgres_database)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT run_id, status, partition FROM runs")).all()
        events = conn.execute(
            sa.text(
                "SELECT asset_key FROM event_logs WHERE run_id = :r AND dagster_event_type = 'ASSET_MATERIALIZATION'"
            ),
            {"r": runs[0].run_id},
        ).scalars()
        materialized = sorted(json.loads(key)[0] for key in events)  # keys are stored as JSON lists
    engine.dispose()
    assert [(status, partition) for _, status, partition in runs] == [("SUCCESS", "document")]
    assert materialized == ["dense_vectors", "qdrant_points", "source_content", "sparse_vectors", "text_chunks"]
    assert not (home / "history").exists()  # nothing went to SQLite
    qdrant = resource("qdrant", path=str(tmp_path / "qdrant"))
    with qdrant.get_store() as store:
        assert store.count(qdrant.alias("content_files")) > 80


def test_dagster_postgres_host_and_friends_select_postgresql_too(postgres_database, tmp_path, monkeypatch):
    url = sa.engine.make_url(postgres_database)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)
    for name, value in {
        "HOST": url.host, "PORT": str(url.port or 5432), "USER": url.username, "PASSWORD": url.password,
        "DB": url.database,
    }.items():  # fmt: skip
        monkeypatch.setenv(f"DAGSTER_POSTGRES_{name}", value)
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert instance.get_runs() == []
        # Run workers get the instance by reference: its storage part names our class, not the connection.
        storage = instance.get_ref().storage_data
        assert storage.class_name == "PostgresOrSqliteStorage" and url.password not in storage.config_yaml
    engine = sa.create_engine(postgres_database)
    with engine.connect() as conn:  # Dagster made its tables in the database the variables name
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert {"runs", "event_logs", "jobs", "job_ticks"} <= tables


def test_the_sensor_reads_a_postgresql_content_database_and_its_run_succeeds(postgres_database, pipeline):
    from embedding_pipeline.definitions import defs

    load_sample_data(postgres_database)
    source = ContentSource(batch_size=100, database_url=postgres_database)
    pipeline.resources["content_source"] = source

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=pipeline.instance, cursor=cursor, resources={"content_source": source}, definitions=defs
        )
        return new_content_sensor.evaluate_tick(context)

    first = tick(None)
    assert len(first.run_requests) == 8
    engine = sa.create_engine(postgres_database)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE learning_resources SET published = false, updated_on = now() WHERE readable_id = 'pl-spanish'"
            )
        )
    engine.dispose()
    (request,) = tick(first.cursor).run_requests
    assert request.partition_key == "video_playlist"
    result = pipeline.materialize(request.partition_key, tags=request.tags)
    assert result.success and pipeline.metadata(result, "source_content")["resources"] == 3
