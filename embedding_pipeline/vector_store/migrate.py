"""Moving an embedded store written by qdrant-client's local mode (before qdrant-edge) to the Qdrant engine.

The points are copied with their vectors and payloads, so nothing is embedded again. The copy is
made beside the old folder and swapped in at the end; the old folder is kept as `<path>.local-mode`.
"""

import shutil
from collections.abc import Callable
from pathlib import Path

from embedding_pipeline.vector_store import PAYLOAD_INDEXES, CollectionSpec, Point, SparseVector
from embedding_pipeline.vector_store.edge import EdgeStore, is_local_mode_store
from embedding_pipeline.vector_store.server import ServerStore

BATCH = 1000


def migrate_local_mode_store(path: Path, report: Callable[[str], None] = print) -> dict[str, int]:
    """Copy every collection and alias of the local-mode store in `path` into the engine; collection → points."""
    from qdrant_client import QdrantClient

    path = Path(path)
    if not is_local_mode_store(path):
        raise ValueError(f"{path} holds no store written by qdrant-client's local mode: nothing to migrate")
    backup, staging = path.with_name(path.name + ".local-mode"), path.with_name(path.name + ".migrating")
    if backup.exists():
        raise FileExistsError(f"{backup} exists: a migration already ran; move it away to migrate again")
    shutil.rmtree(staging, ignore_errors=True)  # an earlier migration cut short
    old = ServerStore(QdrantClient(path=str(path)))
    new = EdgeStore(staging, purpose="migrate-store")
    copied = {}
    try:
        for name in old.collections():
            params = old.client.get_collection(name).config.params
            ((dense_name, dense),) = params.vectors.items()
            ((sparse_name, sparse),) = (params.sparse_vectors or {}).items()
            kind = name.split(".")[-2] if name.count(".") >= 2 else ""
            spec = CollectionSpec(
                dense_name, dense.size, sparse_name, sparse.modifier is not None, PAYLOAD_INDEXES.get(kind, {})
            )
            new.create_collection(name, spec)
            offset, copied[name] = None, 0
            while True:
                records, offset = old.client.scroll(
                    name, limit=BATCH, offset=offset, with_payload=True, with_vectors=True
                )
                points = [Point(str(r.id), {}, r.payload or {}) for r in records]
                for point, record in zip(points, records):
                    point.vectors = {k: _plain(v) for k, v in record.vector.items()}
                new.upsert(name, points)
                copied[name] += len(points)
                if offset is None:
                    break
            new.finish_writes(name)
            report(f"{name}: {copied[name]} points copied")
        new.set_aliases(old.aliases())
    finally:
        old.close()
        new.close()
    path.rename(backup)
    staging.rename(path)
    report(f"The old store is kept in {backup}; remove it once searches work")
    return copied


def _plain(vector):
    return SparseVector(list(vector.indices), list(vector.values)) if hasattr(vector, "indices") else list(vector)
