"""Qdrant: a server when `QDRANT_HOST` is set, otherwise an embedded on-disk store."""

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field
from qdrant_client import QdrantClient, models

log = logging.getLogger(__name__)

COLLECTION_KINDS = ("resources", "content_files")

# The fields searches filter on, per collection kind.
PAYLOAD_INDEXES = {
    "resources": {
        "resource_type": models.PayloadSchemaType.KEYWORD,
        "platform": models.PayloadSchemaType.KEYWORD,
        "readable_id": models.PayloadSchemaType.KEYWORD,
        "topics": models.PayloadSchemaType.KEYWORD,
        "published": models.PayloadSchemaType.BOOL,
    },
    "content_files": {
        "resource_type": models.PayloadSchemaType.KEYWORD,
        "platform": models.PayloadSchemaType.KEYWORD,
        "resource_readable_id": models.PayloadSchemaType.KEYWORD,
        "run_readable_id": models.PayloadSchemaType.KEYWORD,
        "key": models.PayloadSchemaType.KEYWORD,
        "published": models.PayloadSchemaType.BOOL,
    },
}


class CollectionMismatch(ValueError):
    """An existing collection's vectors do not fit the encoder: a setting is wrong, retrying won't help."""


class QdrantResource(dg.ConfigurableResource):
    """Hands out a Qdrant client for the length of one `with` block.

    The embedded store allows one open client per folder across processes, so a client is
    opened only while a step needs it and closed right after.
    """

    host: str = Field(default="", description="Qdrant server URL; empty for the embedded store.")
    api_key: str | None = Field(default=None, description="API key of the Qdrant server.")
    path: str = Field(default="", description="Folder of the embedded store (when host is empty).")
    base_collection_name: str = Field(
        default="resource_embeddings", description="Collections are {base}.resources and {base}.content_files."
    )
    keep_old_collections: bool = Field(
        default=False, description="Keep the physical collections of earlier settings after the aliases move."
    )

    lock_wait_seconds: float = Field(
        default=600, description="How long to wait for an embedded store that another process has open."
    )

    @contextmanager
    def get_client(self) -> Iterator[QdrantClient]:
        if self.host:
            client = QdrantClient(url=self.host, api_key=self.api_key or None, timeout=60)
        elif self.path:
            client = self._open_embedded()
        else:
            raise ValueError("Qdrant needs either a server URL (QDRANT_HOST) or an embedded store path")
        try:
            yield client
        finally:
            client.close()

    def _open_embedded(self) -> QdrantClient:
        """The embedded store, waiting while another process (a run, a search) holds its folder."""
        deadline = time.monotonic() + self.lock_wait_seconds
        delay = 0.2
        while True:
            try:
                return QdrantClient(path=self.path)
            except RuntimeError as error:
                if "already accessed" not in str(error) or time.monotonic() + delay > deadline:
                    raise
                if delay == 0.2:
                    log.info("Waiting for the embedded Qdrant in %s: another process has it open", self.path)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def alias(self, kind: str) -> str:
        """The name searches use: an alias of the physical collection."""
        return f"{self.base_collection_name}.{kind}"

    def physical_name(self, kind: str, version: str) -> str:
        """The physical collection for one set of models and chunking settings."""
        return f"{self.base_collection_name}.{kind}.{version}"


def ensure_collection(
    client: QdrantClient,
    name: str,
    kind: str,
    dense_name: str,
    dense_dim: int,
    sparse_name: str,
    sparse_idf: bool,
) -> bool:
    """Create the collection and its payload indexes unless present; True if it was created.

    An existing collection must hold a dense vector of the same name and dimension.
    """
    if client.collection_exists(name):
        vectors = client.get_collection(name).config.params.vectors
        existing = vectors.get(dense_name) if isinstance(vectors, dict) else None
        if existing is None or existing.size != dense_dim:
            found = {k: v.size for k, v in vectors.items()} if isinstance(vectors, dict) else vectors
            raise CollectionMismatch(
                f"Qdrant collection {name} has dense vectors {found}, but the encoder makes "
                f"{dense_name!r} of dimension {dense_dim}"
            )
        return False
    client.create_collection(
        name,
        vectors_config={dense_name: models.VectorParams(size=dense_dim, distance=models.Distance.COSINE)},
        sparse_vectors_config={
            sparse_name: models.SparseVectorParams(modifier=models.Modifier.IDF if sparse_idf else None)
        },
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Payload indexes have no effect in the local Qdrant")
        for field, schema in PAYLOAD_INDEXES[kind].items():
            client.create_payload_index(name, field_name=field, field_schema=schema)
    return True


def alias_target(client: QdrantClient, alias: str) -> str | None:
    return next((a.collection_name for a in client.get_aliases().aliases if a.alias_name == alias), None)
