"""Settings as users have them: an old system's `.env` works as is, and a value that cannot work stops
every command at start, naming the variable and its value."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from embedding_pipeline.cli import main
from embedding_pipeline.content import tables
from embedding_pipeline.sample_data import complete, load_sample_data
from embedding_pipeline.settings import VECTOR_SETTINGS, SettingError, Settings, settings_table
from embedding_pipeline_tests.support.helpers import REPO, chunker, resource

# A production-like `.env` of the system this replaces, written from its settings' names: the
# pipeline's settings among the old application's others, which are ignored.
OLD_ENV = """\
# vector search
QDRANT_HOST=
QDRANT_API_KEY=
QDRANT_COLLECTION_NAME=learn_prod_embeddings
QDRANT_ENCODER=vector_search.encoders.fastembed.FastEmbedEncoder
QDRANT_DENSE_MODEL=sentence-transformers/all-MiniLM-L6-v2
QDRANT_SPARSE_ENCODER_V2=vector_search.encoders.fastembed.FastEmbedEncoder
QDRANT_SPARSE_MODEL_V2=Qdrant/bm25
QDRANT_CHUNK_SIZE=10
QDRANT_POINT_UPLOAD_BATCH_SIZE=1000
QDRANT_CLIENT_TIMEOUT=10
CONTENT_FILE_EMBEDDING_CHUNK_SIZE=512
CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP=51
CONTENT_FILE_EMBEDDING_SEMANTIC_CHUNKING_ENABLED=False
EMBEDDING_SCHEDULE_MINUTES=60
LITELLM_TOKEN_ENCODING_NAME=cl100k_base
LITELLM_CUSTOM_PROVIDER=openai
OPENAI_API_KEY=sk-old-system-key-never-shown
# the rest of the application
CELERY_BROKER_URL=redis://redis:6379/4
MITOL_SECURE_SSL_REDIRECT=True
"""
OLD_ENV_NAMES = [line.split("=")[0] for line in OLD_ENV.splitlines() if "=" in line and not line.startswith("#")]


def test_an_old_env_file_works_as_is(tmp_path, model_dir, monkeypatch):
    """Records in batches of QDRANT_CHUNK_SIZE=10, chunks of up to 512 tokens, the old collection prefix."""
    for name in [*OLD_ENV_NAMES, "QDRANT_BASE_COLLECTION_NAME", "EMBEDDING_PIPELINE_DATA_DIR", "CONTENT_DATABASE_URL"]:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(OLD_ENV)
    database = f"sqlite:///{tmp_path / 'data' / 'content.db'}"  # the default data folder, under the current one
    (tmp_path / "data").mkdir()
    load_sample_data(database)
    engine = sa.create_engine(database)
    with engine.begin() as conn:  # 30 documents: three batches of resources, then one of content files
        conn.execute(
            tables.learning_resource.insert(),
            [
                complete(tables.learning_resource, {
                    "readable_id": f"doc-generated-{i}", "platform_id": "library", "resource_type": "document",
                    "title": f"Generated handbook {i}", "description": "A generated handbook.",
                })
                for i in range(25)
            ],
        )  # fmt: skip
    engine.dispose()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "QDRANT_DENSE_MODEL_PATH": str(model_dir),  # this machine's copy of the model; the rest is the file's
    }
    command = [str(Path(sys.executable).with_name("embedding-pipeline")), "embed", "--documents"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    # batches of 10 records: 30 resources, their course information, 5 files
    assert [f"{n}/65 records" in output for n in (10, 20, 30, 65)] == [True] * 4

    qdrant = resource("qdrant", path=str(tmp_path / "data" / "qdrant"), base_collection_name="learn_prod_embeddings")
    with qdrant.get_store() as store:
        assert qdrant.alias("content_files") == "learn_prod_embeddings.content_files"
        chunks = [p["chunk_content"] for _, p in store.scroll(qdrant.alias("content_files"))]
        assert store.count(qdrant.alias("resources")) == 30
        names = store.collections()
    count_tokens = chunker().count_tokens  # built once: a chunker is built from every resource
    tokens = [count_tokens(chunk) for chunk in chunks]
    assert 200 < max(tokens) <= 512  # chunks of up to 512 tokens (QDRANT_CHUNK_SIZE=10 is no text size)
    assert all(name.startswith("learn_prod_embeddings.") for name in names)
    leaked = [p for p in (tmp_path / "dagster_home").rglob("*") if p.is_file() and b"sk-old" in p.read_bytes()]
    assert "sk-old-system-key" not in output and not leaked


def test_the_old_names_and_the_seeds_names_are_both_read(monkeypatch):
    monkeypatch.setenv("QDRANT_SPARSE_MODEL_V2", "prithivida/Splade_PP_en_v1")
    monkeypatch.setenv("QDRANT_BASE_COLLECTION_NAME", "seed_name")
    settings = Settings.from_env()
    assert (settings.qdrant_sparse_model, settings.qdrant_base_collection_name) == (
        "prithivida/Splade_PP_en_v1",
        "seed_name",
    )
    monkeypatch.setenv("QDRANT_COLLECTION_NAME", "seed_name")  # both, agreeing: fine
    assert Settings.from_env().qdrant_base_collection_name == "seed_name"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QDRANT_CHUNK_SIZE": "ten"}, "QDRANT_CHUNK_SIZE='ten': Input should be a valid integer"),
        ({"QDRANT_CHUNK_SIZE": "0"}, "QDRANT_CHUNK_SIZE='0': Input should be greater than 0"),
        ({"QDRANT_CLIENT_TIMEOUT": "10s"}, "QDRANT_CLIENT_TIMEOUT='10s'"),
        (
            {"CONTENT_FILE_EMBEDDING_CHUNK_SIZE": "256", "CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP": "256"},
            "CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP=256 must be smaller than CONTENT_FILE_EMBEDDING_CHUNK_SIZE=256",
        ),
        (
            {"QDRANT_COLLECTION_NAME": "learn", "QDRANT_BASE_COLLECTION_NAME": "other"},
            "QDRANT_COLLECTION_NAME='learn' and QDRANT_BASE_COLLECTION_NAME='other' name the same setting",
        ),
        (
            {"QDRANT_ENCODER": "vector_search.encoders.qdrant_cloud.QdrantCloudEncoder"},
            "QDRANT_ENCODER=vector_search.encoders.qdrant_cloud.QdrantCloudEncoder needs QDRANT_DENSE_MODEL",
        ),
        ({"QDRANT_PORT": "6334"}, "QDRANT_PORT=6334 needs QDRANT_HOST"),
        (
            {"QDRANT_HOST": "http://qdrant:6333", "QDRANT_PORT": "6334"},
            "QDRANT_PORT=6334 and the port of QDRANT_HOST=http://qdrant:6333 differ",
        ),
        (
            {"QDRANT_SPARSE_ENCODER_V2": "vector_search.encoders.litellm.LiteLLMEncoder"},
            "QDRANT_SPARSE_ENCODER_V2='vector_search.encoders.litellm.LiteLLMEncoder' is a class",
        ),
    ],
)
def test_a_setting_that_cannot_work_stops_the_command_at_start_naming_it(pipeline, env, message):
    for name, value in env.items():
        pipeline.monkeypatch.setenv(name, value)
    sys.modules.pop("embedding_pipeline.definitions", None)  # loaded anew, as in a new process
    with pytest.raises(SystemExit) as stopped:
        main(["embed", "--documents"])
    assert message in str(stopped.value.code)
    with pytest.raises(SystemExit):
        main(["search", "bees"])
    assert not (pipeline.settings.qdrant_path).exists()  # nothing ran


def test_a_secret_is_never_shown_in_an_error_or_the_settings_list(monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_POSTGRES_PORT", "five-four-three-two")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-shown-nowhere")
    with pytest.raises(SystemExit, match="DAGSTER_POSTGRES_PORT='five-four-three-two'"):
        main(["settings"])
    monkeypatch.delenv("DAGSTER_POSTGRES_PORT")
    main(["settings"])
    out = capsys.readouterr().out
    assert "openai_api_key = **********" in out and "sk-shown-nowhere" not in out


def test_a_password_in_any_url_is_masked_in_the_settings_list_and_in_errors(monkeypatch, capsys):
    monkeypatch.setenv("CONTENT_DATABASE_URL", "postgresql://reader:pg-pass-shown-nowhere@db:5432/mitlearn")
    monkeypatch.setenv("QDRANT_HOST", "https://qdrant.example.org:6333/?api_key=key-shown-nowhere")
    monkeypatch.setenv("LITELLM_API_BASE", "http://me:llm-pass-shown-nowhere@ollama:11434")
    main(["settings"])
    out = capsys.readouterr().out
    assert "content_database_url = postgresql://reader:***@db:5432/mitlearn" in out
    assert "qdrant_host = https://qdrant.example.org:6333/?api_key=***" in out
    assert "litellm_api_base = http://me:***@ollama:11434" in out
    monkeypatch.setenv("QDRANT_PORT", "1")
    with pytest.raises(SystemExit) as stopped:
        main(["settings"])
    assert "QDRANT_HOST=https://qdrant.example.org:6333/?api_key=***" in str(stopped.value.code)
    assert "shown-nowhere" not in out + str(stopped.value.code)


def test_a_port_given_apart_from_the_host_is_the_servers_port(monkeypatch):
    """mit-learn reads no QDRANT_PORT; qdrant-client's meaning: the port of a URL that gives none."""
    monkeypatch.setenv("QDRANT_HOST", "http://qdrant")
    monkeypatch.setenv("QDRANT_PORT", "6334")
    assert Settings.from_env().qdrant_host == "http://qdrant:6334"
    monkeypatch.setenv("QDRANT_HOST", "https://user:pw@qdrant:6334/prefix")  # the same port twice: fine
    assert Settings.from_env().qdrant_host == "https://user:pw@qdrant:6334/prefix"


def test_one_list_of_the_settings_that_shape_the_vectors_feeds_code_versions_and_collection_version(monkeypatch):
    base = Settings.from_env()
    for name, value in {
        "QDRANT_DENSE_MODEL": "BAAI/bge-small-en-v1.5",
        "QDRANT_SPARSE_MODEL_V2": "prithivida/Splade_PP_en_v1",
        "CONTENT_FILE_EMBEDDING_CHUNK_SIZE": "256",
        "CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP": "20",
        "LITELLM_TOKEN_ENCODING_NAME": "o200k_base",
    }.items():
        with monkeypatch.context() as changed:
            changed.setenv(name, value)
            settings = Settings.from_env()
            assert settings.vectors_version() != base.vectors_version(), name
            assert [a for a in VECTOR_SETTINGS if settings.values_of(a) != base.values_of(a)], name
    monkeypatch.setenv("QDRANT_CHUNK_SIZE", "10")  # records per batch: the vectors stay the same
    assert Settings.from_env().vectors_version() == base.vectors_version()


def test_the_settings_table_in_the_docs_is_the_declaration():
    table = (REPO / "docs" / "settings.md").read_text()
    assert settings_table() in table, "docs/settings.md's table: paste `embedding-pipeline settings --table`"
    assert "docs/settings.md" in (REPO / "README.md").read_text()


def test_an_incomplete_postgres_setting_is_named(monkeypatch):
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)
    monkeypatch.setenv("DAGSTER_POSTGRES_HOST", "db")
    monkeypatch.setenv("DAGSTER_POSTGRES_USER", "dagster")
    with pytest.raises(SettingError, match="DAGSTER_POSTGRES_HOST is set.*DAGSTER_POSTGRES_DB"):
        Settings.from_env()
