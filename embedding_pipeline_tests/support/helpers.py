"""What the Dagster and end-to-end tiers share: a pipeline on its own data folder with the real engine and
Dagster, and the real model or the Dagster tier's deterministic one; Dagster's CLI and daemon; a process that
holds the embedded store."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from embedding_pipeline.assets.embed import embed_partition
from embedding_pipeline.content import tables
from embedding_pipeline.content.tables import PREFIX as T
from embedding_pipeline.model_identity import PROBE_TEXT
from embedding_pipeline.partitions import PARTITIONS
from embedding_pipeline.resources import build_resources
from embedding_pipeline.resources.encoders.base import SparseEncoderBase
from embedding_pipeline.sample_data import complete, load_sample_data
from embedding_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
ASSETS = [embed_partition]


def unavailable(reason: str) -> None:
    """Skip a test whose server or browser is missing here; CI (which provides them all) fails instead."""
    if os.environ.get("EMBEDDING_PIPELINE_TEST_REQUIRE_ALL"):
        pytest.fail(f"{reason} (EMBEDDING_PIPELINE_TEST_REQUIRE_ALL is set)")
    pytest.skip(reason)


# The daemon's tests let the sensor tick every 5 s (the daemon's own loop) instead of 30.
QUICK_SENSOR = {"EMBEDDING_PIPELINE_SENSOR_INTERVAL_SECONDS": "5"}


def pipeline_env(data_dir: Path, model_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a pipeline whose data (content db, Qdrant, Dagster home) lives in `data_dir`, with the
    real model in `model_dir` unless `extra` chooses another encoder (`encoder_env`).

    The Dagster home links to the project's dagster.yaml, as `embedding-pipeline setup` links it (a command run
    with DAGSTER_POSTGRES_* set writes it for PostgreSQL instead).
    """
    env = {
        "EMBEDDING_PIPELINE_DATA_DIR": str(data_dir),
        "QDRANT_DENSE_MODEL_PATH": str(model_dir),
        "DAGSTER_HOME": str(data_dir / "dagster_home"),
        **extra,
    }
    (data_dir / "dagster_home").mkdir(parents=True, exist_ok=True)
    (data_dir / "dagster_home" / "dagster.yaml").symlink_to(REPO / "dagster.yaml")
    return env


def run_dagster(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Dagster's own CLI, as a user runs it from the project folder."""
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.run(
        [str(dagster), *args], env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, timeout=600
    )


@contextlib.contextmanager
def dagster_daemon(env: dict, log: Path) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the project's workspace, as deployed, its errors in `log`; stopped with every
    process it started (its code server can outlive a SIGTERM to the daemon alone)."""
    with open(log, "w") as errors:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(REPO / "workspace.yaml")],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True,
        )  # fmt: skip
    try:
        yield daemon
    finally:
        stop_session(daemon)


def stop_session(process: subprocess.Popen) -> None:
    """SIGTERM to a Dagster process started with `start_new_session=True`, then SIGKILL to what is left of its
    session: the code server (`dagster api grpc`) and run workers it started."""
    process.terminate()
    try:
        process.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def resource(name: str, **changes):
    """One of the pipeline's resources as the default settings build it, with `changes` to its fields."""
    built = build_resources(Settings())[name]
    return type(built)(**{**built.model_dump(), **changes})


def chunker(**changes):
    """The chunking the default settings configure (`embedding_pipeline.chunking.Chunker`)."""
    return resource("chunker", **changes).get_chunker()


# Another process with the embedded store open (a run, a search), until the test says so: it gives the
# store up once another process waits for it ("waited"), or holds it until it is killed ("killed").
HOLD = """
import sys, time
from pathlib import Path
from embedding_pipeline.vector_store.edge import EdgeStore
store = EdgeStore(sys.argv[1], purpose="holding test")
print("open", flush=True)
waiters = Path(sys.argv[1]) / "waiters"
while sys.argv[2] == "killed" or not any(waiters.iterdir()):
    time.sleep(0.05)
store.close()
"""


def hold_store(path, until: str = "waited") -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), until], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    return holder


def encoder_env(encoder: str | None) -> dict[str, str]:
    """The settings that choose the dense encoder: the real model (None), or a test encoder class, which
    the commands the tests start import from this repository."""
    return {} if encoder is None else {"QDRANT_ENCODER": encoder, "PYTHONPATH": str(REPO)}


DENSE_RECEIVED: list[str] = []  # the texts the pipeline's dense encoder was asked to embed (Dagster copies resources)
SPARSE_RECEIVED: list[str] = []


def counting(encoder):
    """The same encoder, recording every text it is asked to embed."""
    base = type(encoder)
    if isinstance(encoder, SparseEncoderBase):

        def embed_documents(self, texts):
            SPARSE_RECEIVED.extend(texts)
            return base.embed_documents(self, texts)

        return type(f"Counting{base.__name__}", (base,), {"embed_documents": embed_documents})(**encoder.model_dump())

    def embed_batch(self, texts, stats: Counter):
        DENSE_RECEIVED.extend(text for text in texts if text != PROBE_TEXT)  # what a run embeds, not which model
        return base.embed_batch(self, texts, stats)

    return type(f"Counting{base.__name__}", (base,), {"embed_batch": embed_batch})(**encoder.model_dump())


class Pipeline:
    """A pipeline on its own data directory: settings, resources, instance, and a way to run it."""

    def __init__(self, data_dir: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, encoder: str | None = None):
        self.monkeypatch = monkeypatch
        for name in ("QDRANT_HOST", "QDRANT_API_KEY", "CONTENT_DATABASE_URL", "QDRANT_ENCODER", "QDRANT_DENSE_MODEL"):
            monkeypatch.delenv(name, raising=False)
        for name, value in pipeline_env(data_dir, model_dir, **encoder_env(encoder)).items():
            monkeypatch.setenv(name, value)
        self._build()
        self.encoded()  # counts start with this pipeline (a test process runs many)
        self.instance = dg.DagsterInstance.ephemeral(tempdir=str(data_dir / "dagster_home"))
        load_sample_data(self.settings.content_database_url)

    def _build(self) -> None:
        """Settings and resources from the environment, as `definitions.py` builds them (encoders counting)."""
        self.settings = Settings.from_env()
        self.resources = build_resources(self.settings)
        self.resources["dense_encoder"] = counting(self.resources["dense_encoder"])
        self.resources["sparse_encoder"] = counting(self.resources["sparse_encoder"])

    def reconfigure(self, **env: str) -> None:
        """Change settings (environment variables) as a user would in `.env`, and rebuild the resources."""
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        self._build()

    def materialize(self, partition: str, **kwargs) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            ASSETS, partition_key=partition, resources=self.resources, instance=self.instance, **kwargs
        )

    def encoded(self) -> tuple[list[str], list[str]]:
        """Texts the dense and the sparse model received since the last call."""
        dense, sparse = list(DENSE_RECEIVED), list(SPARSE_RECEIVED)
        DENSE_RECEIVED.clear()
        SPARSE_RECEIVED.clear()
        return dense, sparse

    def execute(self, sql: str, **params) -> None:
        """Change the content database as mit-learn would (`{T}` stands for its tables' prefix)."""
        engine = sa.create_engine(self.settings.content_database_url)
        with engine.begin() as conn:
            conn.execute(sa.text(sql.replace("{T}", T)), params)
        engine.dispose()

    def insert(self, table: sa.Table, *rows: dict) -> None:
        """Add rows, their other columns as Django fills them."""
        engine = sa.create_engine(self.settings.content_database_url)
        with engine.begin() as conn:
            conn.execute(table.insert(), [complete(table, row) for row in rows])
        engine.dispose()

    def add_documents(self, count: int, resource_type: str = "document") -> None:
        """Resources (documents unless said) with a long text each, so that a run over them takes a while."""
        paragraph = "Bees forage within a few kilometres of the hive and communicate by dancing. " * 40
        self.insert(
            tables.learning_resource,
            *[
                {"readable_id": f"doc-long-{i}", "platform_id": "library", "resource_type": resource_type,
                 "title": f"Beekeeping notes {i}", "description": f"Notes {i}. {paragraph}"}
                for i in range(count)
            ],
        )  # fmt: skip

    def rows(self, sql: str) -> list[tuple]:
        """Read the content database."""
        engine = sa.create_engine(self.settings.content_database_url)
        with engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(sa.text(sql.replace("{T}", T)))]
        engine.dispose()
        return rows

    def materialize_all(self) -> dict[str, dg.ExecuteInProcessResult]:
        return {p: self.materialize(p) for p in PARTITIONS}

    @property
    def qdrant(self):
        return self.resources["qdrant"]

    def store(self):
        """The pipeline's vector store, for one `with` block (as a search opens it)."""
        return self.qdrant.get_store(purpose="test")

    def points(self, kind: str, **filters) -> dict[str, dict]:
        """id → payload of the points searches see in `{base}.{kind}` that match `filters`."""
        with self.store() as store:
            return dict(store.scroll(self.qdrant.alias(kind), filters or None))

    def count(self, kind: str, **filters) -> int:
        with self.store() as store:
            return store.count(self.qdrant.alias(kind), filters or None)

    def metadata(self, result: dg.ExecuteInProcessResult, asset: str) -> dict:
        (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]]
        return {k: v.value for k, v in event.materialization.metadata.items()}


def interrupt_at(process: subprocess.Popen, progress: str) -> tuple[str, float]:
    """Ctrl-C `process` once it prints a line holding `progress`: what it printed after, and how long it took to
    end."""
    for line in process.stdout:
        if progress in line:
            break
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=60)[0]
    return rest, time.monotonic() - sent
