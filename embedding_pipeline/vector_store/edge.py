"""The embedded default: the Qdrant engine in-process (qdrant-edge-py), one shard folder per collection.

Layout under `QDRANT_PATH`:
    collections/<physical name>/   one EdgeShard (segments, WAL, its config)
    aliases.json                   alias → physical collection, replaced atomically
    store.lock                     held (flock) by the one process that has the store open

qdrant-edge has no aliases and lets one process open a shard at a time, so this class keeps the
aliases itself and takes the whole folder with one lock: a second process (a search, another run)
waits for it, a bounded time, saying who holds it. The lock dies with its process (kill -9
included), and a shard's WAL replays every acknowledged write on the next open.
"""

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import qdrant_edge as edge

from embedding_pipeline.errors import PermanentError
from embedding_pipeline.files import atomic_folder, atomic_write
from embedding_pipeline.vector_store import (
    RRF_K,
    SCROLL_PAGE,
    CollectionSpec,
    Filters,
    Hit,
    MissingCollection,
    Point,
    SparseVector,
    StoreBusy,
    StoreDamaged,
    StoreFull,
    VectorStore,
)

log = logging.getLogger(__name__)

# Payload indexes live on disk (memory-mapped): opening a shard then loads no index, which halved
# the open time of a 100k-point collection here while filtered queries stayed at ~3 ms. Fields with
# a value per record get no payload-aware HNSW links (they would not help): a third off `optimize()`.
PAYLOAD_SCHEMAS = {
    "keyword": lambda: edge.KeywordIndexParams(memory=edge.Memory.Cold),
    "lookup": lambda: edge.KeywordIndexParams(memory=edge.Memory.Cold, enable_hnsw=False),
    "bool": lambda: edge.BoolIndexParams(memory=edge.Memory.Cold),
    "integer": lambda: edge.IntegerIndexParams(lookup=True, range=True, memory=edge.Memory.Cold),
    "datetime": lambda: edge.DatetimeIndexParams(memory=edge.Memory.Cold),
}
FLUSH_EVERY_SECONDS = 5.0  # segments to disk at most this far behind the WAL: reopening stays fast
# A shard keeps in the process's memory what was written to it since it was opened, even once indexed;
# indexing, closing and reopening it gives that back. It does so once it holds about this much, so
# what an open shard holds stays flat however large the partition. Each reindex makes a segment, and
# past SEGMENTS segments the optimizer merges them, rebuilding the merged segments' HNSW and payload
# indexes: the more often a shard is reindexed, the more often large segments are rebuilt (100,000
# content-file points with the collection's 19 payload indexes: 93.5 s reindexing every 5,000 points,
# each reindex 2.2 s at first and 7.4 s at the end; 51.9 s every 20,000, peaking at 195 MB of
# anonymous memory against 116; `benchmarks/bench_reindex.py`). 100 MB is about 20,000 such points.
REINDEX_EVERY_BYTES = 100_000_000


def held_bytes(point: Point) -> int:
    """About what an open shard holds of `point` until it is reindexed: 2,500 bytes and 45 per sparse term
    (10,000 points of 1,500 terms, a resource's text of 20,000 characters, peaked at 787 MB of anonymous
    memory reindexed every 20,000 points and 462 MB every 5,000)."""
    return 2_500 + 45 * sum(len(v.indices) for v in point.vectors.values() if isinstance(v, SparseVector))


SEGMENTS = 8  # the optimizer's target number of segments per shard (the engine's: one per 2 CPUs, 2 to 8)
# Past SEGMENTS segments the optimizer merges them, and building a merged segment's index takes about
# 6 KB per point for a moment: with the engine's default cap (256 MB of vectors per indexing thread)
# writing a million points peaked at 1,217 MB and still rising. Segments of at most 50,000 KB of
# dense vectors (about 33,000 points of 384 floats) kept that write's peak within 429-481 MB from
# 200,000 points on, in half the time; 35 segments, a hybrid query 8.7 ms against 5.5
# (`bench_qdrant.py --segment-caps`).
MAX_SEGMENT_KB = 50_000
# A segment is searched exactly (no HNSW) until its dense vectors pass this size, about 13,000 points of
# 384 floats: building the index of such a segment, with mit-learn's payload indexes, took 3.6 s for
# the 1x benchmark's 13,153 content-file points, at every full run, to bring a query from 1.6 ms to
# 1.0 ms. Qdrant's default is 10,000 KB. A reindex of the usual points (about 20,000 of them, see
# REINDEX_EVERY_BYTES) still indexes just what it wrote: building an index maps the segment being
# built beside its source, so a build's moment of extra memory stays that of one reindex's points.
INDEXING_THRESHOLD_KB = 20_000
# qdrant-edge's WAL is a chain of 32 MB files, and a shard maps its open one, the next and the last
# closed one, and reads them all at every open: up to ~100 MB of the process's memory per collection
# once that much was written (117 MB for the two collections of a 55,000-point catalogue). 4 MB files
# bound that to ~12 MB, at the same write speed. qdrant-edge-py 0.9.0 takes WAL options only from
# the shard's persisted config (the engine's `EdgeConfig.wal_options`), so they are written there.
WAL_OPTIONS = {"segment_capacity": 4 * 1024 * 1024, "segment_queue_len": 0, "retain_closed": 1}
# Room on disk the engine's files may take beyond a batch's own bytes: newly touched pages of its sparse files
# (vectors, payloads and payload indexes grow in 32 MB and 4 MB files, filled as they are written), the WAL's
# files, and a reindex, which writes the new segment beside the one it replaces (REINDEX_EVERY_BYTES). The
# engine's files are memory-mapped: a write that finds the disk full kills the process (SIGBUS), so each write
# is checked first and refused in a line while the store is still consistent.
SPACE_MARGIN_BYTES = 2 * REINDEX_EVERY_BYTES
OPEN_MARGIN_BYTES = 64_000_000  # opening a shard replays its WAL into segments: at most a few WAL files' worth
# How many points each collection held when the last run that wrote it finished: a collection that holds
# fewer (segments or an id map deleted or cut short) or is gone lost points since, which a count finds cheaply.
POINTS_LEFT_FILE = "points_left.json"
MODELS_FILE = "models.json"  # which models make each collection's vectors (model_identity.py)
REPORT_EVERY_SECONDS = 5.0
# What the engine says (as a plain Exception) when a collection's files cannot be read: truncated vectors,
# payloads, id mappings or segment configurations. Other errors (a wrong vector name, a full disk) are not damage.
DAMAGE = re.compile(
    r"not readable|IO error|out of bounds|corrupt|unexpected end|failed to fill whole buffer|failed to load segment",
    re.IGNORECASE,
)


class FolderLock:
    """An exclusive lock on the store folder, with a note of who holds it for those who wait."""

    def __init__(self, root: Path, purpose: str, wait_seconds: float, report: Callable[[str], None]):
        self.file = open(root / "store.lock", "a+")  # noqa: SIM115 (held until release())
        started = time.monotonic()
        next_report = started
        waiting = root / "waiters" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # asks a run to pause
        try:
            while True:
                try:
                    fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waiting.touch()
                    waited = time.monotonic() - started
                    holder = self._holder()
                    if waited >= wait_seconds:
                        self.file.close()
                        raise StoreBusy(
                            f"The embedded Qdrant in {root} is still held by {holder} after {waited:.0f}s; "
                            "try again once it is done, or wait longer "
                            "(`search --wait SECONDS`; QDRANT_LOCK_WAIT_SECONDS for runs)"
                        ) from None
                    if time.monotonic() >= next_report:
                        report(
                            f"Waiting for the embedded Qdrant in {root}: held by {holder} "
                            f"(one process at a time; waited {waited:.0f}s of at most {wait_seconds:.0f}s)"
                        )
                        next_report += REPORT_EVERY_SECONDS
                    time.sleep(0.1)
        finally:
            waiting.unlink(missing_ok=True)
        self.note(purpose)

    def note(self, purpose: str) -> None:
        """Who holds the lock, for those who wait."""
        self.file.seek(0)
        self.file.truncate()
        self.file.write(
            json.dumps({"pid": os.getpid(), "purpose": purpose, "since": datetime.now().isoformat(timespec="seconds")})
        )
        self.file.flush()

    def _holder(self) -> str:
        try:
            with open(self.file.name) as f:
                note = json.loads(f.read() or "{}")
        except (OSError, ValueError):
            note = {}
        if not note:
            return "another process"
        return f"pid {note.get('pid')} ({note.get('purpose') or 'unnamed'}, since {note.get('since')})"

    def release(self) -> None:
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


def _engine_options(config: dict) -> dict:
    """`config` (a shard's persisted one) with this version's WAL files, segment sizes and indexing threshold."""
    optimizers = {
        **config.get("optimizers", {}),
        "default_segment_number": SEGMENTS,
        "max_segment_size": MAX_SEGMENT_KB,
        "indexing_threshold": INDEXING_THRESHOLD_KB,
    }
    return {**config, "wal_options": WAL_OPTIONS, "optimizers": optimizers}


def _set_engine_options(folder: Path) -> None:
    """A new shard in `folder` takes the store's options (WAL files, segment sizes, indexing) at its first open."""
    path = folder / "edge_config.json"
    config = json.loads(path.read_text()) if path.exists() else None
    if config is not None and _engine_options(config) != config:
        with atomic_write(path) as file:
            json.dump(_engine_options(config), file)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _filter(filters: Filters | None, exclude_ids: Sequence[str] = ()) -> edge.Filter | None:
    for key, value in (filters or {}).items():
        if isinstance(value, bool):  # MatchValue(True) is read as the integer 1 and matches nothing
            raise ValueError(f"The embedded Qdrant (qdrant-edge-py 0.9.0) cannot filter on the boolean {key!r}")
    must = [
        edge.FieldCondition(
            key=key, match=edge.MatchAny(list(value)) if isinstance(value, (list, tuple)) else edge.MatchValue(value)
        )
        for key, value in (filters or {}).items()
    ]
    must_not = [edge.HasIdCondition(set(exclude_ids))] if exclude_ids else None
    return edge.Filter(must=must or None, must_not=must_not) if must or must_not else None


def _vector(value):
    if isinstance(value, SparseVector):
        return edge.SparseVector(list(value.indices), list(value.values))
    return list(value)


def _edge_point(point: Point) -> edge.Point:
    return edge.Point(point.id, {k: _vector(v) for k, v in point.vectors.items()}, point.payload)


def _from_edge_vector(value):
    if isinstance(value, edge.SparseVector):
        return SparseVector(list(value.indices), list(value.values))
    return value


def _record(r) -> tuple[str, dict, dict]:
    return str(r.id), r.payload or {}, {k: _from_edge_vector(v) for k, v in (r.vector or {}).items()}


def _hits(points) -> list[Hit]:
    return [Hit(str(p.id), p.score, p.payload or {}) for p in points]


class EdgeStore(VectorStore):
    def __init__(
        self,
        root: str | Path,
        purpose: str = "",
        wait_seconds: float = 600,
        report: Callable[[str], None] = log.info,
        index_on_release: bool = False,
    ):
        """`index_on_release`: build the indexes of written collections once, when the store is closed or
        handed over, rather than after each run's writes (for runs that follow each other in one process)."""
        self.root = Path(root)
        for folder in ("collections", "waiters"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._open_lock = lambda: FolderLock(self.root, purpose, wait_seconds, report)
        self._lock: FolderLock | None = None
        self._shards: dict[str, edge.EdgeShard] = {}
        self._aliases: dict[str, str] | None = None  # read once: no one else writes while we hold the lock
        self._last_flush = time.monotonic()
        self._index_on_release = index_on_release
        self._unindexed: set[str] = set()  # collections written since their index was last built
        self._written: dict[str, list[int]] = {}  # points and held bytes written to each open shard since it opened
        self._hold()

    def _hold(self) -> None:
        """Take the store (again, after a pause), waiting for whoever has it."""
        if self._lock is None:
            self._lock = self._open_lock()
            for leftover in (self.root / "collections").glob(".*"):  # a create or drop cut short by a crash
                shutil.rmtree(leftover, ignore_errors=True)

    def reuse(self, purpose: str, wait_seconds: float, report: Callable[[str], None]) -> None:
        """Hand the open store to its next user in this process; a process waiting for it goes first."""
        self._open_lock = lambda: FolderLock(self.root, purpose, wait_seconds, report)
        self.pause_for_waiters()
        if self._lock is not None:
            self._lock.note(purpose)

    def pause_for_waiters(self) -> bool:
        """Close the store for a moment if another process waits for it (a search during a long run)."""
        try:
            waiters = [w for w in (self.root / "waiters").iterdir() if not w.name.startswith(f"{os.getpid()}-")]
        except FileNotFoundError:  # the store's folder was deleted under this process: nobody can wait for it
            return False
        alive = [w for w in waiters if _process_alive(int(w.name.split("-")[0]))]
        for stale in set(waiters) - set(alive):
            stale.unlink(missing_ok=True)
        if not alive or self._lock is None:
            return False
        self._release()
        deadline = time.monotonic() + 10
        while any(w.exists() for w in alive) and time.monotonic() < deadline:
            time.sleep(0.05)  # until they have it; the next call waits for them to finish
        return True

    # Collections and aliases

    def _folder(self, name: str) -> Path:
        return self.root / "collections" / name

    def _shard(self, name: str) -> edge.EdgeShard:
        self._hold()
        name = self.resolve(name)
        if name not in self._shards:
            if not self._folder(name).is_dir():
                raise MissingCollection(f"Qdrant has no collection {name}: run the embed job first")
            self._ensure_room(margin=OPEN_MARGIN_BYTES, doing="opening it")
            with self.reading(name):
                self._shards[name] = edge.EdgeShard.load(str(self._folder(name)))
        return self._shards[name]

    @contextlib.contextmanager
    def reading(self, name: str) -> Iterator[None]:
        """The engine's errors while it opens or reads `name`: damaged files are said in one line, with the folder."""
        try:
            yield
        except Exception as error:  # the engine raises plain Exceptions; only damage is renamed
            said = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if isinstance(error, (PermanentError, StoreBusy)) or not DAMAGE.search(said):
                raise
            physical = self.resolve(name)
            said = said.replace(f"{self._folder(physical)}/", "")  # the folder is named once, below
            raise StoreDamaged(
                f"The Qdrant collection {physical} in {self._folder(physical)} cannot be read ({said}). "
                "`embedding-pipeline repair` rebuilds it from every point it can read; the next run embeds the rest"
            ) from None

    def collections(self) -> list[str]:
        self._hold()
        return sorted(p.name for p in (self.root / "collections").iterdir() if not p.name.startswith("."))

    def create_collection(self, name: str, spec: CollectionSpec) -> None:
        """Built in a hidden folder and renamed into place: a crash never leaves half a collection."""
        self._hold()
        self._ensure_room()
        # Vectors and their indexes are memory-mapped, as the payloads: opening a shard loads none of
        # them into the process's own memory, which then does not grow with the catalogue (at 30,000
        # points, 50 MB less per shard opened, for 0.2 ms more per query).
        config = edge.EdgeConfig(
            vectors={
                spec.dense_name: edge.EdgeVectorParams(size=spec.dense_dim, distance=edge.Distance.Cosine, on_disk=True)
            },
            sparse_vectors={
                spec.sparse_name: edge.EdgeSparseVectorParams(
                    modifier=edge.Modifier.Idf if spec.sparse_idf else None, on_disk=True
                )
            },
            hnsw_config=edge.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000, on_disk=True),
        )
        with atomic_folder(self._folder(name)) as staging:
            edge.EdgeShard.create(str(staging), config).close()
            shutil.rmtree(staging / "wal")  # nothing written to it yet: made again, of small files, when loaded
            _set_engine_options(staging)
            shard = edge.EdgeShard.load(str(staging))
            for field, schema in spec.payload_indexes.items():
                shard.update(edge.UpdateOperation.create_field_index(field, PAYLOAD_SCHEMAS[schema]()))
            shard.flush()
            shard.close()

    def drop_collection(self, name: str) -> None:
        self._hold()
        if name in self._shards:
            self._shards.pop(name).close()
        self._written.pop(name, None)
        doomed = self._folder(f".drop-{name}")
        self._folder(name).rename(doomed)
        self._write_aliases({alias: target for alias, target in self.aliases().items() if target != name})
        self._keep_points_left(name, None)
        self._keep(MODELS_FILE, name, None)
        shutil.rmtree(doomed)

    def replace_collection(self, name: str, replacement: str) -> None:
        """`replacement`'s folder takes the place of collection `name` (aliases unchanged). A crash between the
        two renames leaves `name` missing, and the next run fills it again."""
        self._hold()
        for folder in (name, replacement):
            if folder in self._shards:
                with contextlib.suppress(Exception):  # a damaged shard may not even close cleanly
                    self._shards.pop(folder).close()
            self._written.pop(folder, None)
            self._unindexed.discard(folder)
        doomed = self._folder(f".drop-{name}")
        self._folder(name).rename(doomed)
        self._folder(replacement).rename(self._folder(name))
        self._keep_points_left(replacement, None)  # `name` keeps what the last run left: a repair may lose some
        shutil.rmtree(doomed)

    def dense_sizes(self, name: str) -> dict[str, int]:
        self._shard(name)  # the config file is the shard's own, written when it opens
        config = json.loads((self._folder(self.resolve(name)) / "edge_config.json").read_text())
        return {vector: params["size"] for vector, params in config.get("vectors", {}).items()}

    def aliases(self) -> dict[str, str]:
        self._hold()
        if self._aliases is None:
            path = self.root / "aliases.json"
            self._aliases = json.loads(path.read_text()) if path.exists() else {}
        return dict(self._aliases)

    def set_aliases(self, targets: dict[str, str]) -> None:
        missing = [name for name in targets.values() if not self.collection_exists(name)]
        if missing:
            raise MissingCollection(f"Cannot point an alias at {missing}: no such collection")
        self._write_aliases({**self.aliases(), **targets})

    def _write_aliases(self, aliases: dict[str, str]) -> None:
        """One rename: readers see the old map or the new one, never a mix."""
        with atomic_write(self.root / "aliases.json") as file:
            json.dump(aliases, file, indent=2, sort_keys=True)
        self._aliases = dict(aliases)

    # Points

    def _ensure_room(self, needed: int = 0, margin: int = SPACE_MARGIN_BYTES, doing: str = "writing on") -> None:
        """Refuse a write the disk may not have room for (see SPACE_MARGIN_BYTES), before it begins."""
        free = shutil.disk_usage(self.root).free
        if free < needed + margin:
            raise StoreFull(
                f"The disk holding the embedded Qdrant store {self.root} has {free / 1e6:,.0f} MB free, and {doing} "
                f"needs about {(needed + margin) / 1e6:,.0f} MB: free some space (or set QDRANT_PATH to a larger "
                "disk) and run again; what was written stays done"
            )

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        held = sum(held_bytes(point) for point in points)
        self._ensure_room(2 * held)
        shard = self._shard(name)
        shard.update(edge.UpdateOperation.upsert_points([_edge_point(p) for p in points]))
        name = self.resolve(name)
        written = self._written.setdefault(name, [0, 0])
        written[0] += len(points)
        written[1] += held
        if written[1] >= REINDEX_EVERY_BYTES:
            self._reopen_indexed(name)
        elif time.monotonic() - self._last_flush > FLUSH_EVERY_SECONDS:
            shard.flush()
            self._last_flush = time.monotonic()

    def _reopen_indexed(self, name: str) -> None:
        """Index what was written, then close and reopen the shard: the memory it held for those points goes."""
        started = time.perf_counter()
        shard = self._shards[name]
        shard.optimize()
        shard.flush()
        shard.close()
        del self._shards[name]
        points, held = self._written.pop(name, [0, 0])
        self._shard(name)
        log.info(
            f"{name}: indexed and reopened after {points:,} points written (about {held / 1e6:.0f} MB held), "
            f"in {time.perf_counter() - started:.1f}s"
        )

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            self._shard(name).update(edge.UpdateOperation.delete_points(list(ids)))

    def scroll(
        self, name: str, filters: Filters | None = None, fields: Sequence[str] | None = None
    ) -> Iterator[tuple[str, dict]]:
        shard, offset = self._shard(name), None
        with_payload = list(fields) if fields is not None else True
        while True:
            with self.reading(name):
                records, offset = shard.scroll(
                    edge.ScrollRequest(
                        offset=offset, limit=SCROLL_PAGE, filter=_filter(filters), with_payload=with_payload
                    )
                )
            for record in records:
                yield str(record.id), record.payload or {}
            if offset is None:
                return

    def count(self, name: str, filters: Filters | None = None) -> int:
        shard = self._shard(name)
        with self.reading(name):
            return shard.count(edge.CountRequest(exact=True, filter=_filter(filters)))

    def retrieve(self, name, ids, with_vectors=False, fields=None) -> list[tuple[str, dict, dict]]:
        with_payload = list(fields) if fields is not None else True
        shard = self._shard(name)
        with self.reading(name):
            records = shard.retrieve(list(ids), with_payload=with_payload, with_vector=with_vectors)
        return [_record(r) for r in records]

    def scroll_vectors(self, name, filters, fields) -> Iterator[tuple[str, dict, dict]]:
        shard, offset = self._shard(name), None
        while True:
            request = edge.ScrollRequest(
                offset=offset, limit=SCROLL_PAGE, filter=_filter(filters), with_payload=list(fields), with_vector=True
            )
            with self.reading(name):
                records, offset = shard.scroll(request)
            yield from (_record(r) for r in records)
            if offset is None:
                return

    def delete_where(self, name: str, filters: Filters) -> None:
        self._shard(name).update(edge.UpdateOperation.delete_points_by_filter(_filter(filters)))

    def points_left(self) -> dict[str, int]:
        return self._kept(POINTS_LEFT_FILE)

    def _keep_points_left(self, name: str, points: int | None) -> None:
        self._keep(POINTS_LEFT_FILE, name, points)

    def model_of(self, name: str) -> dict | None:
        return self._kept(MODELS_FILE).get(self.resolve(name))

    def keep_model(self, name: str, models: dict) -> None:
        self._keep(MODELS_FILE, self.resolve(name), models)

    def _kept(self, file: str) -> dict:
        """Collection → what `file` keeps for it (a few small JSON files beside the collections)."""
        try:
            return json.loads((self.root / file).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _keep(self, file: str, name: str, value) -> None:
        """Keep `value` for collection `name` in `file` (None: forget it)."""
        kept = self._kept(file)
        if value is None:
            kept.pop(name, None)
        else:
            kept[name] = value
        with atomic_write(self.root / file) as out:
            json.dump(kept, out, indent=1, sort_keys=True)

    def begin_writes(self, name: str) -> None:
        self._keep_points_left(self.resolve(name), None)

    def finish_writes(self, name: str) -> None:
        self._keep_points_left(self.resolve(name), self.count(name))
        if self._index_on_release:  # indexed and flushed when the store is closed or handed over
            self._unindexed.add(self.resolve(name))
            return
        shard = self._shard(name)
        self._ensure_room()
        shard.optimize()  # builds the HNSW and sparse indexes: until then a segment is scanned (exactly)
        shard.flush()

    def _build_indexes(self) -> None:
        """The deferred index builds, of every open shard: one a killed process wrote and never indexed is
        indexed now too (a shard already indexed takes 50 µs). One that fails stays scanned (exact, slower)."""
        if not self._index_on_release or not self._shards:
            return
        started = time.perf_counter()
        try:
            self._ensure_room(doing="building the indexes")  # short of it, the segments stay scanned (exact)
            for shard in self._shards.values():
                shard.optimize()
            if self._unindexed:
                log.info(f"Indexes of {sorted(self._unindexed)} built in {time.perf_counter() - started:.1f}s")
        except Exception as error:  # noqa: BLE001 (closing must go on: the lock is released after)
            log.warning(f"Building the indexes of {sorted(self._unindexed)} failed: {error}")
        self._unindexed.clear()

    # Queries

    def query_nearest(self, name, vector, using, limit, filters=None, exclude_ids=()) -> list[Hit]:
        request = edge.QueryRequest(
            limit=limit,
            query=edge.Query.Nearest(_vector(vector), using=using),
            filter=_filter(filters, exclude_ids),
            with_payload=True,
        )
        return self._query(name, request)

    def query_hybrid(self, name, dense, dense_name, sparse, sparse_name, limit, filters=None) -> list[Hit]:
        where = _filter(filters)
        candidates = self.candidates(limit)
        request = edge.QueryRequest(
            limit=limit,
            prefetches=[
                edge.Prefetch(limit=candidates, query=edge.Query.Nearest(list(dense), using=dense_name), filter=where),
                edge.Prefetch(
                    limit=candidates, query=edge.Query.Nearest(_vector(sparse), using=sparse_name), filter=where
                ),
            ],
            query=edge.Fusion.Rrf(k=RRF_K),
            filter=where,
            with_payload=True,
        )
        return self._query(name, request)

    def _query(self, name: str, request: edge.QueryRequest) -> list[Hit]:
        shard = self._shard(name)
        with self.reading(name):
            return _hits(shard.query(request))

    def close(self) -> None:
        self._release()

    def _release(self) -> None:
        try:
            self._build_indexes()  # before anyone else opens the store
            for shard in self._shards.values():
                with contextlib.suppress(Exception):
                    shard.flush()
                shard.close()
            self._shards.clear()
            self._written.clear()
            self._aliases = None
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
