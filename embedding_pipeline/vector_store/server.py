"""A Qdrant server (or cluster) through qdrant-client: `QDRANT_HOST`, `QDRANT_API_KEY`.

The server keeps aliases, indexes and durability itself; this class translates the vector store's calls into
qdrant-client's, and makes collections as mit-learn's `create_qdrant_collection` makes them (shards, replicas,
strict mode, quantization), tuning their optimizer as its `tune_qdrant_collections` does.
"""

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse
from qdrant_client.local.qdrant_local import QdrantLocal

from embedding_pipeline.vector_store import (
    SCROLL_PAGE,
    CollectionSpec,
    Filters,
    Hit,
    MissingCollection,
    Point,
    ServerCollections,
    SparseVector,
    VectorStore,
)

log = logging.getLogger(__name__)

PAYLOAD_SCHEMAS = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "lookup": models.PayloadSchemaType.KEYWORD,
    "bool": models.PayloadSchemaType.BOOL,
    "integer": models.PayloadSchemaType.INTEGER,
    "datetime": models.PayloadSchemaType.DATETIME,
}


# Upsert requests a run keeps in flight to a server: a batch's parts go together, so that the server's time
# per request (a network round trip, its WAL) overlaps instead of adding up.
PARALLEL_UPSERTS = 4

# vector_search.constants: the optimizer's segment size and flush interval by points per shard (up to each
# threshold), and the share of a segment at which indexing starts.
OPTIMIZER_STEPS = [(50_000, 20_000, 15), (500_000, 60_000, 20), (2_000_000, 120_000, 25), (None, 250_000, 30)]
INDEXING_THRESHOLD_RATIO = 0.8
MODELS_KEY = "embedding_pipeline_models"  # in a collection's metadata: which models make its vectors


def optimizer_settings(point_count: int, shard_number: int) -> dict[str, int]:
    """vector_search.utils.compute_optimizer_settings."""
    per_shard = max(point_count // shard_number, 1)
    _, segment, flush = next(step for step in OPTIMIZER_STEPS if step[0] is None or per_shard < step[0])
    return {"indexing_threshold": int(segment * INDEXING_THRESHOLD_RATIO), "flush_interval_sec": flush}


def _filter(filters: Filters | None, exclude_ids: Sequence[str] = ()) -> models.Filter | None:
    must = [
        models.FieldCondition(
            key=key,
            match=models.MatchAny(any=list(value))
            if isinstance(value, (list, tuple))
            else models.MatchValue(value=value),
        )
        for key, value in (filters or {}).items()
    ]
    must_not = [models.HasIdCondition(has_id=list(exclude_ids))] if exclude_ids else None
    return models.Filter(must=must or None, must_not=must_not) if must or must_not else None


def _vector(value):
    if isinstance(value, SparseVector):
        return models.SparseVector(indices=list(value.indices), values=list(value.values))
    return list(value)


def _from_client_vector(value):
    if isinstance(value, models.SparseVector):
        return SparseVector(list(value.indices), list(value.values))
    return value


def _record(r) -> tuple[str, dict, dict]:
    return str(r.id), r.payload or {}, {k: _from_client_vector(v) for k, v in (r.vector or {}).items()}


def _hits(response) -> list[Hit]:
    return [Hit(str(p.id), p.score, p.payload or {}) for p in response.points]


class ServerStore(VectorStore):
    def __init__(self, client: QdrantClient, made: ServerCollections | None = None):
        self.client, self.made = client, made or ServerCollections()

    def _missing(self, name: str, error: Exception) -> Exception:
        """qdrant-client's "not found" (a 404 from a server, a ValueError in its local mode), named."""
        not_found = (isinstance(error, UnexpectedResponse) and error.status_code == 404) or (
            isinstance(error, ValueError) and "not found" in str(error)
        )
        return MissingCollection(f"Qdrant has no collection {name}: run the embed job first") if not_found else error

    def _call(self, name: str, method, *args, **kwargs):
        try:
            return method(name, *args, **kwargs)
        except (UnexpectedResponse, ValueError) as error:
            raise self._missing(name, error) from error

    # Collections and aliases

    def collections(self) -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections)

    def collection_exists(self, name: str) -> bool:
        return self.client.collection_exists(name)

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        made = self.made
        self.client.create_collection(
            name,
            vectors_config={spec.dense_name: models.VectorParams(size=spec.dense_dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={
                spec.sparse_name: models.SparseVectorParams(
                    index=models.SparseIndexParams(on_disk=made.sparse_index_on_disk),
                    modifier=models.Modifier.IDF if spec.sparse_idf else None,
                )
            },
            shard_number=made.shard_number,
            replication_factor=made.replication_factor,
            on_disk_payload=made.on_disk_payload,
            hnsw_config=models.HnswConfigDiff(on_disk=made.hnsw_on_disk),
            optimizers_config=models.OptimizersConfigDiff(
                default_segment_number=made.default_segment_number, prevent_unoptimized=made.prevent_unoptimized
            ),
            quantization_config=models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
            if made.binary_quantization
            else None,
            strict_mode_config=models.StrictModeConfig(
                enabled=True, unindexed_filtering_retrieve=False, unindexed_filtering_update=False
            )
            if made.strict_mode
            else None,
        )
        for field, schema in spec.payload_indexes.items():
            self.client.create_payload_index(name, field_name=field, field_schema=PAYLOAD_SCHEMAS[schema])

    def finish_writes(self, name: str) -> None:
        """After a run's writes: the optimizer tuned to the collection's points per shard (tune_collection)."""
        if not self.made.tune_optimizer:
            return
        info = self._call(name, self.client.get_collection)
        desired = optimizer_settings(info.points_count or 0, info.config.params.shard_number or 1)
        current = info.config.optimizer_config
        if (current.indexing_threshold, current.flush_interval_sec) != tuple(desired.values()):
            self._call(name, self.client.update_collection, optimizers_config=models.OptimizersConfigDiff(**desired))

    def drop_collection(self, name: str) -> None:
        self.client.delete_collection(name)

    def model_of(self, name: str) -> dict | None:
        return (self._call(name, self.client.get_collection).config.metadata or {}).get(MODELS_KEY)

    def keep_model(self, name: str, kept: dict) -> None:
        """In the collection's metadata (Qdrant 1.16 and later; an older server is said to lack it, not a fault)."""
        try:
            self.client.update_collection(name, metadata={MODELS_KEY: kept})
        except UnexpectedResponse as error:
            if error.status_code not in (400, 422):
                raise self._missing(name, error) from error
            log.warning(
                "Qdrant keeps no metadata with %s (a server before 1.16?): a model changed in place under the same "
                "name cannot be told from the one that made its vectors", name,
            )  # fmt: skip

    def dense_sizes(self, name: str) -> dict[str, int]:
        vectors = self._call(name, self.client.get_collection).config.params.vectors
        return {vector: params.size for vector, params in vectors.items()} if isinstance(vectors, dict) else {}

    def aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def set_aliases(self, targets: dict[str, str]) -> None:
        current = self.aliases()
        actions = [
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            for alias in targets
            if alias in current
        ] + [
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=alias))
            for alias, name in targets.items()
        ]
        self.client.update_collection_aliases(change_aliases_operations=actions)  # one atomic switch

    # Points

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        structs = [
            models.PointStruct(id=p.id, vector={k: _vector(v) for k, v in p.vectors.items()}, payload=p.payload)
            for p in points
        ]
        self._call(name, self.client.upsert, points=structs, wait=True)

    def upsert_all(self, name: str, parts: Sequence[Sequence[Point]]) -> None:
        """Up to PARALLEL_UPSERTS requests at once; qdrant-client's local mode (in this process, and not made for
        threads) takes them one at a time."""
        if len(parts) < 2 or isinstance(getattr(self.client, "_client", None), QdrantLocal):
            return super().upsert_all(name, parts)
        with ThreadPoolExecutor(min(PARALLEL_UPSERTS, len(parts)), thread_name_prefix="upsert") as pool:
            for _ in pool.map(lambda part: self.upsert(name, part), parts):
                pass  # each acknowledged; the first error is raised
        return None

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            self._call(name, self.client.delete, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    def scroll(
        self, name: str, filters: Filters | None = None, fields: Sequence[str] | None = None
    ) -> Iterator[tuple[str, dict]]:
        offset = None
        with_payload = list(fields) if fields is not None else True
        while True:
            records, offset = self._call(
                name, self.client.scroll, scroll_filter=_filter(filters), limit=SCROLL_PAGE, offset=offset,
                with_payload=with_payload,
            )  # fmt: skip
            for record in records:
                yield str(record.id), record.payload or {}
            if offset is None:
                return

    def count(self, name: str, filters: Filters | None = None) -> int:
        return self._call(name, self.client.count, count_filter=_filter(filters), exact=True).count

    def retrieve(self, name, ids, with_vectors=False, fields=None) -> list[tuple[str, dict, dict]]:
        with_payload = list(fields) if fields is not None else True
        records = self._call(
            name, self.client.retrieve, ids=list(ids), with_payload=with_payload, with_vectors=with_vectors
        )
        return [_record(r) for r in records]

    def scroll_vectors(self, name, filters, fields) -> Iterator[tuple[str, dict, dict]]:
        offset = None
        while True:
            records, offset = self._call(
                name, self.client.scroll, scroll_filter=_filter(filters), limit=SCROLL_PAGE, offset=offset,
                with_payload=list(fields), with_vectors=True,
            )  # fmt: skip
            yield from (_record(r) for r in records)
            if offset is None:
                return

    def delete_where(self, name: str, filters: Filters) -> None:
        self._call(name, self.client.delete, points_selector=models.FilterSelector(filter=_filter(filters)), wait=True)

    # Queries

    def query_nearest(self, name, vector, using, limit, filters=None, exclude_ids=()) -> list[Hit]:
        response = self._call(
            name, self.client.query_points, query=_vector(vector), using=using, limit=limit,
            query_filter=_filter(filters, exclude_ids), with_payload=True,
        )  # fmt: skip
        return _hits(response)

    def query_hybrid(self, name, dense, dense_name, sparse, sparse_name, limit, filters=None) -> list[Hit]:
        where = _filter(filters)
        candidates = self.candidates(limit)
        response = self._call(
            name,
            self.client.query_points,
            prefetch=[
                models.Prefetch(query=list(dense), using=dense_name, limit=candidates, filter=where),
                models.Prefetch(query=_vector(sparse), using=sparse_name, limit=candidates, filter=where),
            ],
            query=models.FusionQuery(fusion=models.Fusion.RRF),  # the server's RRF, k = RRF_K by default
            query_filter=where,
            limit=limit,
            with_payload=True,
        )
        return _hits(response)

    def close(self) -> None:
        self.client.close()
