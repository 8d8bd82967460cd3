"""The production storage path on a real PostgreSQL server: content source, Dagster storage, sensor.

CI starts the server (.ci/run); elsewhere the tests skip, saying why, when none answers at
EMBEDDING_PIPELINE_TEST_POSTGRES_URL (default postgresql://embedding:embedding@127.0.0.1:5432/postgres).
"""

import os
import uuid

import dagster as dg
import pytest
import sqlalchemy as sa

from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.sample_data import load_sample_data
from embedding_pipeline.sensors import new_content_sensor

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
        pytest.skip(f"no PostgreSQL server at {SERVER_URL} ({str(error).splitlines()[0]}); CI starts one")
    url = sa.engine.make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with server.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    server.dispose()


def test_the_sample_content_loads_into_and_reads_from_postgresql(postgres_database):
    assert load_sample_data(postgres_database) == (44, 14)
    resources, files = ContentSource(database_url=postgres_database).fetch("document")
    assert len(resources) == 5 and len(files) == 5
    assert list(resources.loc[resources["readable_id"] == "doc-urban-beekeeping", "topics"].iloc[0]) == [
        "Agriculture",
        "Ecology",
    ]


def test_a_partition_materializes_with_content_and_dagster_storage_in_postgresql(
    postgres_database, pipeline, monkeypatch
):
    load_sample_data(postgres_database)
    pipeline.resources["content_source"] = ContentSource(database_url=postgres_database)
    overrides = {"storage": {"postgres": {"postgres_url": postgres_database}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        pipeline.instance = instance
        result = pipeline.materialize("document")
        assert result.success
        assert pipeline.metadata(result, "qdrant_points")["points"] > 80
    engine = sa.create_engine(postgres_database)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT run_id, status FROM runs")).all()
        events = conn.execute(
            sa.text(
                "SELECT count(*) FROM event_logs WHERE run_id = :r AND dagster_event_type = 'ASSET_MATERIALIZATION'"
            ),
            {"r": result.run_id},
        ).scalar()
    engine.dispose()
    assert runs == [(result.run_id, "SUCCESS")] and events == 5


def test_the_sensor_reads_a_postgresql_content_database_and_its_run_succeeds(postgres_database, pipeline):
    from embedding_pipeline.definitions import defs

    load_sample_data(postgres_database)
    source = ContentSource(database_url=postgres_database)
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
