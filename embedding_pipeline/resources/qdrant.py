"""Qdrant as a Dagster resource: hands out the vector store (`embedding_pipeline.vector_store`)
for the length of one `with` block.

With `QDRANT_HOST` empty the store is the Qdrant engine embedded in-process (qdrant-edge) in
`QDRANT_PATH`; otherwise a Qdrant server through qdrant-client. Callers see only `VectorStore`.
"""

import atexit
import logging
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from embedding_pipeline.settings import masked, with_port
from embedding_pipeline.vector_store import ServerCollections, StoreUnavailable, VectorStore
from embedding_pipeline.vector_store.aliases import CollectionNames

log = logging.getLogger(__name__)

_kept: "dict[str, _Shared] | None" = None  # embedded stores kept open, by path, while keep_store_open() lasts
_kept_lock = threading.Lock()


@contextmanager
def keep_store_open() -> Iterator[None]:
    """Let the runs this process executes (the CLI's partitions, one after another or side by side) share one
    open embedded store: opening and warming its shards costs about 0.3 s at 50,000 points, more than a
    run with nothing to do spends on its own work; and the indexes are built once, when the store
    is closed or handed over, not after each run (at 50,000 points, 17 s over eight runs against 9 s
    once). A process waiting for the store still gets it at the next batch or the next run, indexed."""
    global _kept
    if _kept is not None:
        yield
        return
    _kept = {}
    try:
        yield
    finally:
        stores, _kept = _kept, None
        for shared in stores.values():
            shared.store.close()


class _Shared:
    """An embedded store kept open and lent to the runs of this process, several at once when `embed` runs
    partitions side by side: one call at a time reaches the engine (a scroll holds it until it ends), so one
    run's reindexing or pause for a waiting search never closes a shard under the other's feet."""

    def __init__(self, store: VectorStore):
        self.store, self.users, self.failed = store, 0, False
        self._lock = threading.RLock()

    def __getattr__(self, name: str):
        value = getattr(self.store, name)
        if not callable(value):
            return value

        def serialized(*args, **kwargs):
            with self._lock:
                result = value(*args, **kwargs)
            return self._iterate(result) if isinstance(result, types.GeneratorType) else result

        return serialized

    def _iterate(self, items: Iterator) -> Iterator:
        with self._lock:
            yield from items


def _say_lost_points(store: VectorStore) -> None:
    """A collection holding fewer points than the last run left answers without them: said as the store opens
    for queries (a count per collection, which grows with it: once per opening, not per query)."""
    from embedding_pipeline.vector_store.repair import lost_line, points_lost

    for name, (held, left) in points_lost(store, list(store.points_left())).items():
        log.warning(f"{lost_line(name, held, left)}: answers miss them until `embedding-pipeline repair` mends it")


class _QueryStore:
    """An embedded store kept open between one process's queries, with a lock its watcher takes to hand it over."""

    def __init__(self, store: VectorStore):
        self.store, self.lock = store, threading.Lock()


_query_stores: dict[str, _QueryStore] = {}  # by path
_query_stores_lock = threading.Lock()
_watching: list[threading.Thread] = []  # the one thread that hands kept query stores over


def _hand_over_to_waiters() -> None:
    """Give a kept query store up, between queries, to any process that waits for it (a run): it gets the store
    within a few tenths of a second, and the next query waits for it to finish."""
    while True:
        time.sleep(0.1)
        with _query_stores_lock:
            kept = list(_query_stores.values())
        for query_store in kept:
            if query_store.lock.acquire(blocking=False):
                try:
                    query_store.store.pause_for_waiters()
                except Exception as error:  # noqa: BLE001 (one store's trouble must not end the hand-over of all)
                    log.warning(f"Could not hand the store over to a waiting process: {error}")
                finally:
                    query_store.lock.release()


def close_query_stores(path: str | None = None) -> None:
    """Close the kept query stores (of `path`): at exit, before this process opens the store for writing, and when
    a test is done with its store."""
    with _query_stores_lock:
        closing = [_query_stores.pop(p) for p in list(_query_stores) if path is None or p == path]
    for query_store in closing:
        with query_store.lock:
            query_store.store.close()


class QdrantResource(dg.ConfigurableResource):
    """The vector store, opened per use (or kept open between the runs of one process, `keep_store_open`):
    the embedded engine admits one process at a time."""

    host: str = Field(
        default="", description="Qdrant server URL; empty for the embedded engine (by name when it holds a password)."
    )
    port: int | None = Field(default=None, description="The server's port, where its URL gives none (QDRANT_PORT).")
    api_key: str | None = Field(default=None, description="API key of the Qdrant server.")
    path: str = Field(default="", description="Folder of the embedded engine (when host is empty).")
    base_collection_name: str = Field(description="Collections are {base}.resources and {base}.content_files.")
    vectors_version: str = Field(
        description="Hash of the settings that determine the vectors: names the physical collections."
    )
    keep_old_collections: bool = Field(
        description="Keep the physical collections of earlier settings after the aliases move."
    )
    lock_wait_seconds: float = Field(
        description="How long a run waits for an embedded store that another process has open."
    )
    timeout: int = Field(description="Seconds before a request to a Qdrant server gives up.")
    max_delete_share: float = Field(
        description="Largest share of a partition's points one run may delete (QDRANT_MAX_DELETE_SHARE)."
    )
    upload_batch_size: int = Field(description="Points per upsert request.")
    server_collections: dict[str, Any] = Field(
        default_factory=dict,
        description="How collections are made on a Qdrant server (QDRANT_SHARD_NUMBER, QDRANT_REPLICATION_FACTOR, ...): "
        "mit-learn's shards, replicas, strict mode and quantization where not set.",
    )

    @contextmanager
    def get_store(
        self, purpose: str = "", wait_seconds: float | None = None, report: Callable[[str], None] | None = None
    ) -> Iterator[VectorStore]:
        """The store; `purpose` tells processes waiting for the embedded engine who holds it."""
        wait_seconds = self.lock_wait_seconds if wait_seconds is None else wait_seconds
        if not self.host:
            close_query_stores(self.path)  # one process may hold the folder once
        if self.host or _kept is None:
            store = self._open(purpose, wait_seconds, report)
            try:
                yield store
            finally:
                store.close()
            return
        with _kept_lock:
            shared = _kept.get(self.path)
            if shared is None:
                shared = _kept[self.path] = _Shared(self._open(purpose, wait_seconds, report, index_on_release=True))
            else:
                shared.reuse(purpose, wait_seconds, report or log.info)
            shared.users += 1
        try:
            yield shared  # type: ignore[misc] (a VectorStore in all but name)
        except BaseException:
            shared.failed = True  # a store that failed is closed once no run holds it; the next run opens it anew
            raise
        finally:
            with _kept_lock:
                shared.users -= 1
                if shared.failed and not shared.users:
                    _kept.pop(self.path, None)
                    shared.store.close()

    @contextmanager
    def get_store_for_queries(self, purpose: str, wait_seconds: float) -> Iterator[VectorStore]:
        """The store for a search. The embedded one stays open between this process's queries (opening it took
        about 90 ms of a 110 ms search) and is given up between queries to a process that waits for it."""
        if self.host or (_kept is not None and self.path in _kept):
            with self.get_store(purpose=purpose, wait_seconds=wait_seconds) as store:
                yield store
            return
        with _query_stores_lock:
            query_store = _query_stores.get(self.path)
            if query_store is None:
                query_store = _query_stores[self.path] = _QueryStore(self._open(purpose, wait_seconds, log.info))
                _say_lost_points(query_store.store)
                if len(_query_stores) == 1 and not _watching:
                    _watching.append(threading.Thread(target=_hand_over_to_waiters, daemon=True))
                    _watching[0].start()
                    atexit.register(close_query_stores)
        with query_store.lock:
            try:
                query_store.store.reuse(purpose, wait_seconds, log.info)
                yield query_store.store
            except BaseException:  # a store that failed is not kept
                with _query_stores_lock:
                    _query_stores.pop(self.path, None)
                query_store.store.close()
                raise

    def get_store_for_step(self, context, partition: str, step: str):
        """The store for a run's step; those who wait for it are told which run and step hold it."""
        purpose = f"run {context.run.run_id[:8]}, {partition}, {step}"
        return self.get_store(purpose=purpose, report=context.log.info)

    def _open(
        self, purpose: str, wait_seconds: float, report: Callable[[str], None] | None, index_on_release: bool = False
    ) -> VectorStore:
        if self.host:
            from qdrant_client import QdrantClient
            from qdrant_client.http.exceptions import ApiException

            from embedding_pipeline.vector_store.server import ServerStore

            with warnings.catch_warnings():  # a server that does not answer is named below, in one line
                warnings.filterwarnings("ignore", message="Failed to obtain server version")
                client = QdrantClient(url=self.url, api_key=(self.api_key or "").strip() or None, timeout=self.timeout)
            store = ServerStore(client, ServerCollections(**self.server_collections))
            try:
                store.collections()  # a server that does not answer is named now, before a run spends anything
            except ApiException as error:  # no answer, or not a Qdrant server's
                store.close()
                raise StoreUnavailable(
                    f"QDRANT_HOST={masked(self.url)}: the Qdrant server does not answer: {str(error).splitlines()[0]}"
                ) from None
            return store
        if not self.path:
            raise ValueError("Qdrant needs either a server URL (QDRANT_HOST) or an embedded store path (QDRANT_PATH)")
        from embedding_pipeline.vector_store import StoreBusy
        from embedding_pipeline.vector_store.edge import EdgeStore

        try:
            return EdgeStore(
                self.path, purpose=purpose, wait_seconds=wait_seconds, report=report or log.info,
                index_on_release=index_on_release,
            )  # fmt: skip
        except StoreBusy:
            raise
        except OSError as error:  # not a folder, read-only, a full disk: named before a run spends anything
            raise StoreUnavailable(
                f"QDRANT_PATH={self.path}: the embedded Qdrant cannot use this folder: {error.strerror or error}"
            ) from None

    @property
    def url(self) -> str:
        return with_port(self.host.strip(), self.port)

    @property
    def location(self) -> str:
        """Which Qdrant: the server's URL, or the embedded store's folder."""
        return self.url or str(Path(self.path).resolve())

    def collection_names(self) -> CollectionNames:
        """The aliases searches use and the physical collections this version of the vectors fills."""
        return CollectionNames(self.base_collection_name, self.vectors_version)

    def alias(self, kind: str) -> str:
        """The name searches use: an alias of the physical collection."""
        return self.collection_names().alias(kind)
