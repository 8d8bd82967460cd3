"""The production storage path on a real PostgreSQL server: content source, Dagster storage, sensor.

CI starts the server (.ci/run); elsewhere the tests skip, saying why, when none answers at
EMBEDDING_PIPELINE_TEST_POSTGRES_URL (default postgresql://embedding:embedding@127.0.0.1:5432/postgres).
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from embedding_pipeline.assets.embed import PARTITIONS_TAG
from embedding_pipeline.content import ContentDatabase, ContentSourceError, tables
from embedding_pipeline.content.tables import PREFIX as T
from embedding_pipeline.mit_learn import OWN
from embedding_pipeline.partitions import PARTITIONS
from embedding_pipeline.resources.content_source import ContentSource
from embedding_pipeline.sample_data import EVERY_SAMPLE, complete, load_sample_data
from embedding_pipeline_tests.support.encoders import HASHING_ENCODER
from embedding_pipeline_tests.support.helpers import REPO, encoder_env, pipeline_env, resource, unavailable

MIT_LEARN_TABLES = Path(__file__).parents[1] / "fixtures" / "mit_learn_tables.sql"
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


@pytest.fixture
def mit_learn_database(postgres_database):
    """mit-learn's learning-resource tables made by the DDL of its migrations, holding both samples."""
    engine = sa.create_engine(postgres_database)
    with engine.begin() as conn:
        conn.exec_driver_sql(MIT_LEARN_TABLES.read_text())
    engine.dispose()
    assert load_sample_data(postgres_database, samples=EVERY_SAMPLE) == (52, 28)
    return postgres_database


def test_mit_learns_own_tables_are_read_with_their_joins_and_arrays(mit_learn_database):
    with ContentSource(batch_size=100, database_url=mit_learn_database).database().reader("course") as reader:
        resources = {r["readable_id"]: r for r in reader.list_resources()}
        files = {f["key"]: f for f in reader.list_content_files()}
    mechanics = resources["course-v1:MITxT+8.01x"]
    assert (mechanics["platform_name"], mechanics["offered_by_code"]) == ("MITx Online", "mitx")
    assert {t["name"] for t in mechanics["topics"]} == {"Physics", "Mechanics"}  # JSON, decoded by the driver
    assert {r["run_id"] for r in mechanics["runs"]} == {
        "course-v1:MITxT+8.01x+3T2025", "course-v1:MITxT+8.01x+3T2026", "course-v1:MITxT+8.01x+1T2019",
    }  # fmt: skip
    assert resources["SEE-LEAD-2026"]["prices"] == [Decimal("4100.00"), Decimal("3690.00")]  # numeric[]
    embedded = {key for key in files if "8.01x" in key}
    assert embedded == {  # not the welcome video (no text), nor the notes of the archived run
        "block-v1:MITxT+8.01x+3T2025+type@html+block@kinematics_notes",
        "block-v1:MITxT+8.01x+3T2025+type@problem+block@pset1",
    }
    with ContentSource(batch_size=100, database_url=mit_learn_database).database().reader("video") as reader:
        video = next(r for r in reader.list_resources() if r["readable_id"] == "PLnotYouTube123")
        full = reader.resources([video["id"]])[video["id"]]
    # its own file: listed by its stamp, read in full with the rows a run writes
    assert [(f["key"], f["size"]) for f in video["direct_content_stamp"]] == [("notYouTube123-notes", 160)]
    assert full["direct_content_files"][0]["content"].startswith("Lecture 1 notes.")


def test_dagster_postgres_host_and_friends_select_postgresql_too(postgres_database, tmp_path, monkeypatch):
    """Dagster's own PostgreSQL storage, configured by the variables' names: the instance configuration, and the
    reference Dagster hands to run workers, hold no password."""
    from embedding_pipeline.instance import ensure_dagster_home
    from embedding_pipeline.settings import Settings

    url = sa.engine.make_url(postgres_database)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)
    for name, value in {
        "HOST": url.host, "PORT": str(url.port or 5432), "USER": url.username, "PASSWORD": url.password,
        "DB": url.database,
    }.items():  # fmt: skip
        monkeypatch.setenv(f"DAGSTER_POSTGRES_{name}", value)
    ensure_dagster_home(Settings.from_env())
    by_name = {"env": "DAGSTER_POSTGRES_PASSWORD"}  # the password itself is in no file
    assert (
        yaml.safe_load((tmp_path / "dagster.yaml").read_text())["storage"]["postgres"]["postgres_db"]["password"]
        == by_name
    )
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert instance.get_runs() == []
        handed = yaml.safe_load(instance.get_ref().storage_data.config_yaml)  # what run workers are handed
        assert handed["postgres_db"]["password"] == by_name
    engine = sa.create_engine(postgres_database)
    with engine.connect() as conn:  # Dagster made its tables in the database the variables name
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert {"runs", "event_logs", "jobs", "job_ticks"} <= tables
    for name in ("HOST", "PORT", "USER", "PASSWORD", "DB"):  # the settings back to none: SQLite in DAGSTER_HOME
        monkeypatch.delenv(f"DAGSTER_POSTGRES_{name}")
    ensure_dagster_home(Settings.from_env())
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"


def test_the_sensor_reads_mit_learns_tables_and_sees_changes_of_joined_rows(mit_learn_database, pipeline):
    from embedding_pipeline.definitions import defs

    source = ContentSource(batch_size=100, database_url=mit_learn_database)
    pipeline.resources["content_source"] = source

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=pipeline.instance, cursor=cursor, resources={"content_source": source}, definitions=defs
        )
        return defs.resolve_sensor_def("new_content_sensor").evaluate_tick(context)

    first = tick(None)
    (everything,) = first.run_requests  # the types and the topics, in one run: a small database
    assert everything.tags[PARTITIONS_TAG] == ",".join(PARTITIONS)
    engine = sa.create_engine(mit_learn_database)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE {T}learningresource SET published = false, updated_on = now() WHERE readable_id = 'pl-spanish'"
            )
        )
    second = tick(first.cursor)
    (request,) = second.run_requests
    assert request.partition_key == "video_playlist"
    result = pipeline.materialize(request.partition_key, tags=request.tags)
    assert result.success and pipeline.metadata(result, "source_content")["resources"] == 3
    with engine.begin() as conn:  # a topic renamed, as mit-learn's admin does: only the topic's own row moves
        conn.execute(
            sa.text(
                f"UPDATE {T}learningresourcetopic SET name = 'Classical Mechanics', updated_on = now() WHERE name = 'Mechanics'"
            )
        )
    engine.dispose()
    # and the program whose course information lists a course with that topic: a small change, so one run for all
    (request,) = tick(second.cursor).run_requests
    assert request.partition_key is None and request.tags[PARTITIONS_TAG] == "course,program,topics"


def test_the_embedded_defaults_tables_are_mit_learns(mit_learn_database):
    """The SQLite sample is made from `content.schema`: the same tables, columns and nullability as the DDL of
    mit-learn's migrations."""
    from embedding_pipeline.content import tables

    engine = sa.create_engine(mit_learn_database)
    inspector = sa.inspect(engine)
    for table in tables.metadata.sorted_tables:
        theirs = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        ours = {c.name: c.nullable for c in table.columns}
        assert ours == theirs, table.name
    engine.dispose()


def test_every_document_on_postgresql_is_mit_learns(mit_learn_database):
    """The same documents from mit-learn's tables on PostgreSQL (arrays, JSONB, json_agg) as from the SQLite
    sample: each equal, key for key, to what mit-learn's own serializer made of the same rows."""
    from embedding_pipeline.chunking import Chunker
    from embedding_pipeline.content import ContentDatabase
    from embedding_pipeline_tests.core.test_mit_learn_points import EMBEDDED, GOLDEN, our_points, same_document

    ours = our_points(ContentDatabase(mit_learn_database, app_base_url=GOLDEN["app_base_url"]), Chunker(None, 512, 0))
    for golden in EMBEDDED:
        point = ours[golden["id"]]
        assert point.text == golden["text"], golden["key"]
        same_document(point.payload, dict(golden["payload"]), golden["key"])


def test_the_production_set_up_from_the_shell_then_a_new_machine_carries_on_from_dagsters_storage(
    mit_learn_database, tmp_path, model_dir, monkeypatch
):
    """Content and Dagster's storage both in PostgreSQL (mit-learn's tables), every partition from the shell; then
    machines with nothing else in common, sharing one Qdrant: a run on a machine whose DAGSTER_HOME holds only
    dagster.yaml (a Kubernetes run pod) carries on where the other machine stopped. It embeds only an edit, still
    knows the record that failed (its checks alone pass), and finishes a re-embed the other machine started,
    moving every alias. (The encoder is the deterministic one: the storage and the tables are what is tested.)"""
    from embedding_pipeline.definitions import defs
    from embedding_pipeline.partitions import resource_type_partitions
    from embedding_pipeline.resources import build_resources
    from embedding_pipeline.settings import Settings

    env = {
        **pipeline_env(tmp_path, model_dir, **encoder_env(HASHING_ENCODER)),
        "DAGSTER_POSTGRES_URL": mit_learn_database,
        "CONTENT_DATABASE_URL": mit_learn_database,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = Path(env["DAGSTER_HOME"])
    engine = sa.create_engine(mit_learn_database)
    with engine.begin() as conn:  # a document that cannot be embedded: it fails alone, and has no points
        broken = {"id": 900, "readable_id": "doc-broken", "platform_id": "ocw", "resource_type": "document",
                  "title": ""}  # fmt: skip
        conn.execute(tables.learning_resource.insert(), [complete(tables.learning_resource, broken)])

    def embed(*flags: str, **extra: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("embedding-pipeline")), "embed", *flags],
            env={**os.environ, **extra}, cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done

    def new_machine() -> None:
        for path in home.iterdir():
            if path.name != "dagster.yaml":
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    counted: set[str] = set()

    def texts_embedded() -> int:
        """Texts the runs since the last call embedded (the command runs one run per partition)."""
        total = 0
        with dg.DagsterInstance.get() as instance:
            for run in instance.get_run_records():
                if run.dagster_run.run_id in counted:
                    continue
                counted.add(run.dagster_run.run_id)
                for event in instance.get_records_for_run(run.dagster_run.run_id).records:
                    materialization = event.event_log_entry.asset_materialization
                    if materialization is not None and materialization.asset_key.path == ["dense_vectors"]:
                        total += materialization.metadata["texts_embedded"].value
        return total

    first = embed()
    assert [line.split(":")[0] for line in first.stdout.splitlines()] == PARTITIONS
    assert "doc-broken" in first.stderr and texts_embedded() > 100
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT run_id, status, partition FROM runs")).all()
        events = conn.execute(
            sa.text(
                "SELECT asset_key FROM event_logs WHERE run_id = :r AND dagster_event_type = 'ASSET_MATERIALIZATION'"
            ),
            {"r": runs[0].run_id},
        ).scalars()
        materialized = sorted(json.loads(key)[0] for key in events)  # keys are stored as JSON lists
    assert sorted(partition for _, _, partition in runs) == sorted(PARTITIONS)
    assert {status for _, status, _ in runs} == {"SUCCESS"}
    assert materialized == ["dense_vectors", "qdrant_points", "source_content", "sparse_vectors", "text_chunks"]
    assert not (home / "history").exists()  # nothing went to SQLite
    qdrant = resource("qdrant", path=str(tmp_path / "qdrant"))
    with qdrant.get_store() as store:
        guides = dict(store.scroll(qdrant.alias("resources"), {"readable_id": "unplatformed-guide"}))
        files = dict(
            store.scroll(
                qdrant.alias("content_files"),
                {"resource_readable_id": "episode-230-the-physics-of-ice", "file_type": "podcast_transcript"},
            )
        )
        # 53 with the broken one, which has no point, and one neither published nor in test mode
        assert store.count(qdrant.alias("resources")) == 51
    (guide,) = guides.values()
    assert guide["platform"] is None and guide[OWN]["record_key"] == ".unplatformed-guide"
    (transcript,) = files.values()
    assert transcript["run_readable_id"] == "episode-230-the-physics-of-ice"  # a run-less file: its resource's
    new_machine()
    checks = dg.define_asset_job(
        "checks",
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("qdrant_points"), "points_match_source")),
        partitions_def=resource_type_partitions,
    )
    resources = build_resources(Settings.from_env())  # of this test's settings, as a run pod builds them
    job = dg.Definitions(assets=defs.assets, jobs=[checks], resources=resources).resolve_job_def("checks")
    with dg.DagsterInstance.get() as instance:  # the failed record is exempt: it keeps what it had, which is nothing
        result = job.execute_in_process(instance=instance, tags={"dagster/partition": "document"})
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]
    with engine.begin() as conn:  # two resources edited
        conn.execute(
            sa.text(f"UPDATE {T}learningresource SET description = description || ' Revised.', updated_on = :u "
                    "WHERE readable_id IN ('yt-crispr', 'ocw-8.04')"), {"u": "2030-01-01"},
        )  # fmt: skip
    embed("--courses", "--videos")  # their partitions (a sensor would ask for them alone too)
    assert texts_embedded() == 4  # each one's text and its course information's
    new_machine()
    reembed = {"CONTENT_FILE_EMBEDDING_CHUNK_SIZE": "400"}  # new settings: a re-embed into new collections
    embed("--courses", "--programs", "--learning_paths", "--podcasts", **reembed)
    with qdrant.get_store() as store:
        before = store.aliases()
    new_machine()
    embed("--podcast_episodes", "--videos", "--video_playlists", "--documents", "--partition", "topics", **reembed)
    with qdrant.get_store() as store:
        after = store.aliases()
    assert len(set(before.values())) == len(set(after.values())) == 3
    assert before != after and all(
        name.endswith(after["resource_embeddings.resources"][-8:]) for name in after.values()
    )
    engine.dispose()


def _terminate(database_url: str, pid: int) -> None:
    server = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    server.dispose()


def test_a_dropped_connection_is_made_again_and_the_read_goes_on_while_a_wrong_password_fails_at_once(
    mit_learn_database, caplog
):
    """pg_terminate_backend between a run's reads, twice: the next read connects again (one line each) and
    returns every row; a refused password is not tried again."""
    database = ContentSource(batch_size=100, database_url=mit_learn_database).database()
    with database.reader("course") as reader:
        ids = [r["id"] for r in reader.list_resources()]
        for _ in range(2):
            _terminate(mit_learn_database, reader.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())
            assert sorted(reader.resources(ids)) == sorted(ids)
    said = [r.getMessage() for r in caplog.records if "dropped the connection" in r.getMessage()]
    assert len(said) == 2 and "server closed the connection" in said[0]

    wrong = sa.engine.make_url(mit_learn_database).set(password="not-the-password")
    started = time.monotonic()
    with pytest.raises(ContentSourceError, match="password authentication failed"):
        ContentDatabase(wrong.render_as_string(hide_password=False)).change_marker()
    assert time.monotonic() - started < 2  # not tried again
