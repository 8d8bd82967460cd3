"""The vector store: everything the pipeline, its checks, the sensor, search and the CLI ask of Qdrant.

Two implementations stand behind it: the Qdrant engine embedded in-process (`edge.py`, the
default) and a Qdrant server through qdrant-client (`server.py`). Nothing outside this package
knows which one it talks to, nor imports either library; the Dagster resource that hands a store
out is `embedding_pipeline.resources.qdrant`.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from embedding_pipeline import mit_learn
from embedding_pipeline.errors import PermanentError

# Qdrant's own default for reciprocal rank fusion (the server's and qdrant-client's): both
# implementations fuse with it, so hybrid scores agree.
RRF_K = 2
SCROLL_PAGE = 10_000  # the engine re-filters from the offset each page: large pages scroll faster
SEARCH_WAIT_SECONDS = 60  # a search waits this long for a run that holds the embedded store

COLLECTION_KINDS = ("resources", "content_files", "topics")

# Payload indexes per collection kind: mit-learn's (its readers filter, facet and sort on them) and
# those the pipeline finds its points by. "keyword" for the fields searches filter on (with payload-aware
# HNSW links, which keep filtered searches exact), "lookup" for keywords with a value per record or
# text (links would not help), "bool", "integer", "datetime".
PAYLOAD_INDEXES = {
    "resources": {**mit_learn.RESOURCE_INDEXES, **mit_learn.OWN_INDEXES},
    "content_files": {**mit_learn.CONTENT_FILE_INDEXES, **mit_learn.CONTENT_FILE_FACETS, **mit_learn.OWN_INDEXES},
    "topics": {**mit_learn.TOPIC_INDEXES, **mit_learn.OWN_INDEXES},
}

Filters = dict[str, Any]  # payload field → value that must match (a list: any of its values)


class StoreBusy(PermanentError, TimeoutError):
    """Another process kept the embedded store longer than we were willing to wait (QDRANT_LOCK_WAIT_SECONDS):
    a run does not try again, which would wait as long again."""


class MissingCollection(LookupError):
    """A collection or alias that does not exist (yet): nothing has been embedded into it."""


class UnknownResource(LookupError):
    """No point in `{base}.resources` has the platform and readable id asked for."""


class CollectionMismatch(PermanentError):
    """An existing collection's vectors do not fit the encoder: a setting is wrong, retrying won't help."""


class StoreDamaged(PermanentError):
    """A collection whose files the engine cannot read: named with its folder, and how to rebuild it."""


class StoreFull(PermanentError):
    """The disk holding the embedded store has too little room for the next write: stopped before it, cleanly."""


class StoreUnavailable(PermanentError):
    """The store named by QDRANT_HOST or QDRANT_PATH cannot be used (no answer, not a writable folder)."""


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection is made with: a named dense vector (cosine), a named sparse vector, payload indexes."""

    dense_name: str
    dense_dim: int
    sparse_name: str
    sparse_idf: bool
    payload_indexes: dict[str, str] = field(default_factory=dict)  # field → kind of index (PAYLOAD_INDEXES)
    models: dict | None = field(default=None, compare=False)  # kept with it: which models make its vectors


@dataclass(frozen=True)
class ServerCollections:
    """How collections are made on a server: mit-learn's `create_qdrant_collection` by default (vector_search/utils.py),
    so that the collections a run or a re-embed makes keep a cluster's shards, replicas and quantization."""

    shard_number: int = 6
    replication_factor: int = 2
    strict_mode: bool = True  # filters only on indexed fields (unindexed_filtering_retrieve/update=False)
    default_segment_number: int = 2
    prevent_unoptimized: bool = True
    binary_quantization: bool = True  # kept in RAM (always_ram=True)
    hnsw_on_disk: bool = False
    on_disk_payload: bool = True
    sparse_index_on_disk: bool = True
    tune_optimizer: bool = True  # tune_qdrant_collections: indexing threshold and flush interval by points per shard


def collection_spec(kind: str, dense_name: str, dense_dim: int, sparse_name: str, sparse_idf: bool) -> CollectionSpec:
    """The spec of one of the pipeline's collection kinds, with the payload indexes its searches use."""
    return CollectionSpec(dense_name, dense_dim, sparse_name, sparse_idf, PAYLOAD_INDEXES[kind])


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@dataclass
class Point:
    """A point to write: `vectors` maps vector names to a dense list of floats or a SparseVector."""

    id: str
    vectors: dict[str, Sequence[float] | SparseVector]
    payload: dict


@dataclass
class Hit:
    id: str
    score: float
    payload: dict


class VectorStore(ABC):
    """Collections addressed by physical name or by alias; points with a dense and a sparse vector."""

    # Collections and aliases

    @abstractmethod
    def collections(self) -> list[str]:
        """The physical collections."""

    @abstractmethod
    def create_collection(self, name: str, spec: CollectionSpec) -> None: ...

    @abstractmethod
    def drop_collection(self, name: str) -> None:
        """Remove the collection and every alias pointing at it."""

    @abstractmethod
    def dense_sizes(self, name: str) -> dict[str, int]:
        """Dense vector name → dimension, of an existing collection (or alias)."""

    @abstractmethod
    def aliases(self) -> dict[str, str]:
        """Alias → physical collection."""

    @abstractmethod
    def set_aliases(self, targets: dict[str, str]) -> None:
        """Point each alias at its collection, all in one atomic step."""

    @abstractmethod
    def model_of(self, name: str) -> dict | None:
        """Which models make the vectors of the collection (or alias), as kept with it; None if it keeps none."""

    @abstractmethod
    def keep_model(self, name: str, models: dict) -> None:
        """Keep with the collection which models make its vectors (`model_identity.ModelIdentity.kept()`)."""

    def collection_exists(self, name: str) -> bool:
        return name in self.collections()

    def resolve(self, name: str) -> str:
        """The physical collection behind `name` (an alias or a collection)."""
        return self.aliases().get(name, name)

    def ensure_collection(self, name: str, spec: CollectionSpec) -> bool:
        """Create the collection unless present; True if it was created.

        An existing collection must hold a dense vector of the same name and dimension.
        """
        if not self.collection_exists(name):
            self.create_collection(name, spec)
            if spec.models is not None:
                self.keep_model(name, spec.models)
            return True
        sizes = self.dense_sizes(name)
        if sizes.get(spec.dense_name) != spec.dense_dim:
            raise CollectionMismatch(
                f"Qdrant collection {name} has dense vectors {sizes}, but the encoder makes "
                f"{spec.dense_name!r} of dimension {spec.dense_dim}"
            )
        return False

    # Points

    @abstractmethod
    def upsert(self, name: str, points: Sequence[Point]) -> None:
        """Write the points (acknowledged when this returns)."""

    def upsert_all(self, name: str, parts: Sequence[Sequence[Point]]) -> None:
        """Write each part in a request of its own, every one acknowledged when this returns."""
        for part in parts:
            self.upsert(name, part)

    @abstractmethod
    def delete(self, name: str, ids: Sequence[str]) -> None: ...

    @abstractmethod
    def scroll(
        self, name: str, filters: Filters | None = None, fields: Sequence[str] | None = None
    ) -> Iterator[tuple[str, dict]]:
        """(id, payload) of every matching point, page by page; `fields` limits the payload."""

    @abstractmethod
    def count(self, name: str, filters: Filters | None = None) -> int: ...

    @abstractmethod
    def retrieve(
        self, name: str, ids: Sequence[str], with_vectors: bool = False, fields: Sequence[str] | None = None
    ) -> list[tuple[str, dict, dict]]:
        """(id, payload, vectors) of the points that exist among `ids`; `fields` limits the payload."""

    @abstractmethod
    def scroll_vectors(self, name: str, filters: Filters, fields: Sequence[str]) -> Iterator[tuple[str, dict, dict]]:
        """(id, payload, vectors) of every matching point."""

    @abstractmethod
    def delete_where(self, name: str, filters: Filters) -> None:
        """Delete every point that matches `filters` (in one operation)."""

    def begin_writes(self, name: str) -> None:
        """Before a run's writes: what the last run left (`points_left`) no longer describes the collection until
        they finish (a run killed half-way may have deleted points it meant to)."""

    def finish_writes(self, name: str) -> None:
        """After a run's writes: make them durable and build the indexes searches use."""

    def points_left(self) -> dict[str, int]:
        """Collection → how many points the last run that wrote it left there, where the store keeps that (the
        embedded one): a collection holding fewer, or gone, lost points since (deleted files, a damaged id map)."""
        return {}

    def pause_for_waiters(self) -> bool:
        """Between a run's batches: let a process that waits for the store in (True if one did).

        Only the embedded engine admits one process at a time; a server store never needs to.
        """
        return False

    # Queries

    @abstractmethod
    def query_nearest(
        self,
        name: str,
        vector: Sequence[float] | SparseVector,
        using: str,
        limit: int,
        filters: Filters | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Hit]:
        """The points nearest to a dense (cosine) or sparse vector, best first."""

    @abstractmethod
    def query_hybrid(
        self,
        name: str,
        dense: Sequence[float],
        dense_name: str,
        sparse: SparseVector,
        sparse_name: str,
        limit: int,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """Dense and sparse candidates fused by reciprocal rank (k = RRF_K)."""

    def query_similar(
        self, name: str, point_id: str, using: str, limit: int, filters: Filters | None = None
    ) -> list[Hit]:
        """The points nearest to a stored point's own vector, the point itself excluded."""
        found = self.retrieve(name, [point_id], with_vectors=True, fields=[])
        if not found:
            raise KeyError(point_id)
        (_, _, vectors) = found[0]
        return self.query_nearest(name, vectors[using], using, limit, filters, exclude_ids=[point_id])

    def close(self) -> None:
        """Release the store (the embedded engine's folder lock, a server connection)."""

    def __enter__(self) -> "VectorStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def candidates(limit: int) -> int:
        """How many candidates each side of a hybrid query brings to the fusion."""
        return max(limit * 4, 20)
