"""A Qdrant server (or cluster) through qdrant-client: `QDRANT_HOST`, `QDRANT_API_KEY`.

The server keeps aliases, indexes and durability itself; this class only translates the vector
store's calls into qdrant-client's.
"""

from collections.abc import Iterator, Sequence

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from embedding_pipeline.vector_store import (
    SCROLL_PAGE,
    CollectionSpec,
    Filters,
    Hit,
    MissingCollection,
    Point,
    SparseVector,
    VectorStore,
)

PAYLOAD_SCHEMAS = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "lookup": models.PayloadSchemaType.KEYWORD,
    "bool": models.PayloadSchemaType.BOOL,
    "integer": models.PayloadSchemaType.INTEGER,
    "datetime": models.PayloadSchemaType.DATETIME,
}


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
    def __init__(self, client: QdrantClient):
        self.client = client

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
        self.client.create_collection(
            name,
            vectors_config={spec.dense_name: models.VectorParams(size=spec.dense_dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={
                spec.sparse_name: models.SparseVectorParams(modifier=models.Modifier.IDF if spec.sparse_idf else None)
            },
        )
        for field, schema in spec.payload_indexes.items():
            self.client.create_payload_index(name, field_name=field, field_schema=PAYLOAD_SCHEMAS[schema])

    def drop_collection(self, name: str) -> None:
        self.client.delete_collection(name)

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
