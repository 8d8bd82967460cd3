"""The fast tier's world: the sample content in SQLite, qdrant-client's in-memory store standing in for
Qdrant, and small deterministic encoders, driving the plain-Python core (no Dagster, no ONNX model)."""

import re
import time
import zlib
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from qdrant_client import QdrantClient

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.content import ContentDatabase
from embedding_pipeline.embedding import EmbedResult, RejectedInput, embed_distinct
from embedding_pipeline.partition.heads import HeadsFile
from embedding_pipeline.partition.plan import RunOptions
from embedding_pipeline.partition.run import Outcome, Partition, move_aliases, run_partition
from embedding_pipeline.sample_data import TEAM_SAMPLE, complete, load_sample_data
from embedding_pipeline.vector_store import SparseVector
from embedding_pipeline.vector_store.aliases import CollectionNames
from embedding_pipeline.vector_store.server import ServerStore

DIM = 32
T = "learning_resources_"  # mit-learn's table prefix


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class HashingEncoder:
    """A dense "model": the text's words hashed into 32 dimensions, normalized. The same text always gets
    the same vector and texts sharing words similar ones. Records what it embeds; refuses texts holding
    one of `refuse`; raises `fail_with` once `fail_after` batches have been embedded; takes `delay` s a call."""

    model_name, vector_name, dim, stat_names, concurrency = "test/hashing-32", "hashing-32", DIM, (), 1

    def __init__(self):
        self.received: list[str] = []
        self.refuse: set[str] = set()
        self.fail_after: int | None = None
        self.fail_with: Exception = RuntimeError("the embedding service is unreachable")
        self.delay = 0.0  # seconds each call takes, as a model's or a service's would

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        time.sleep(self.delay)
        if self.fail_after is not None:
            if self.fail_after == 0:
                raise self.fail_with
            self.fail_after -= 1
        refused = [t for t in texts if any(word in t for word in self.refuse)]
        if refused:
            raise RejectedInput(f"refused by {self.model_name}: {refused[0][:30]}")
        self.received.extend(texts)
        return np.stack([self.vector(text) for text in texts])

    @staticmethod
    def vector(text: str) -> np.ndarray:
        vector = np.zeros(DIM, dtype=np.float32)
        for word in _words(text):
            vector[zlib.crc32(word.encode()) % DIM] += 1
        return vector / (np.linalg.norm(vector) or 1)

    def embed_documents(self, texts) -> EmbedResult:
        def in_eights(texts):
            return (texts[i : i + 8] for i in range(0, len(texts), 8))

        return embed_distinct(texts, self.embed_batch, in_eights, lambda: DIM, Counter(), self.vector_name)

    def embed_query(self, text: str) -> np.ndarray:
        return self.vector(text)


class WordCounts:
    """A sparse "model": word counts, indexed by the word's hash (Qdrant applies the IDF, as for BM25)."""

    model_name, vector_name, uses_idf = "test/word-counts", "bm25", True

    def embed_documents(self, texts) -> list[SparseVector]:
        return [self.embed_query(text) for text in texts]

    def embed_query(self, text: str) -> SparseVector:
        counts = Counter(zlib.crc32(word.encode()) % 2**20 for word in _words(text))
        indices = sorted(counts)
        return SparseVector(indices, [float(counts[i]) for i in indices])


class World:
    """A content database, a store and the models, and a way to run a partition over them."""

    def __init__(self, folder: Path, samples=(TEAM_SAMPLE,), sparse=None, chunker=None, base: str = "test"):
        self.folder = folder
        self.url = f"sqlite:///{folder / 'content.db'}"
        load_sample_data(self.url, samples=samples)
        self.database = ContentDatabase(self.url)
        self.store = ServerStore(QdrantClient(location=":memory:"))
        self.chunker = chunker or Chunker("cl100k_base", 512, 51)
        self.dense, self.sparse = HashingEncoder(), sparse or WordCounts()
        self.names = CollectionNames(base, "v1")

    @contextmanager
    def partition(self, resource_type: str):
        with self.database.reader(resource_type) as reader:
            yield Partition(
                resource_type, reader, self.store, self.chunker, self.dense, self.sparse, self.names, "memory"
            )

    def run(self, resource_type: str, every_partition_done: bool = False, **options) -> Outcome:
        """One run of the partition, as the embed asset makes it (the heads file kept between runs), then the aliases
        made, and moved when `every_partition_done`."""
        options = RunOptions(**{"max_delete_share": 0.5, **options})
        with self.partition(resource_type) as part:
            outcome = run_partition(part, options, self.heads_file(resource_type))
            move_aliases(part, outcome, every_partition_done and not options.scoped, keep_old=False)
            return outcome

    def heads_file(self, resource_type: str) -> HeadsFile:
        return HeadsFile(self.folder / "heads" / f"{resource_type}.parquet")

    def embedded(self) -> list[str]:
        """Texts the dense model embedded since the last call."""
        texts, self.dense.received = self.dense.received, []
        return texts

    def execute(self, sql: str, **params) -> None:
        """Change the content database as mit-learn would (`T` prefixes its tables' names)."""
        engine = sa.create_engine(self.url)
        with engine.begin() as conn:
            conn.execute(sa.text(sql.replace("{T}", T)), params)
        engine.dispose()

    def rows(self, sql: str, **params) -> list[tuple]:
        engine = sa.create_engine(self.url)
        with engine.connect() as conn:
            found = [tuple(row) for row in conn.execute(sa.text(sql.replace("{T}", T)), params)]
        engine.dispose()
        return found

    def insert(self, table: sa.Table, **row) -> None:
        """Add a row, its other columns as Django fills them."""
        engine = sa.create_engine(self.url)
        with engine.begin() as conn:
            conn.execute(table.insert(), [complete(table, row)])
        engine.dispose()

    def points(self, kind: str, **filters) -> dict[str, dict]:
        return dict(self.store.scroll(self.names.alias(kind), filters or None))


@pytest.fixture
def world(tmp_path) -> World:
    store_world = World(tmp_path)
    yield store_world
    store_world.store.close()
