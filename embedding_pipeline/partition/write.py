"""Writing a plan: its new and changed records, `batch_size` at a time, from rows to texts to vectors to points.

A text whose vectors Qdrant already holds (same text hash) is not embedded again, and a point whose
hash did not change is not written again. A batch's heads are written last, so a record counts as
done only once all its points are there: a run that dies resumes after the last finished batch. A
record that cannot be read or embedded keeps the points it had, and is tried again next run.

A remote encoder works while the run reads, chunks and writes: a batch's new texts are embedded in a
worker thread (the encoder sends at most `concurrency` requests at once, whatever the process's runs ask),
while this thread reads the next batch and writes the last one whose vectors are ready. Batches are written
in order, and at most `concurrency + 1` are read but not yet written, so memory does not grow with the
partition. A local model (`concurrency` 1) already uses every core: a batch is read, embedded and written
before the next is read, as overlapping them only made both slower (docs/benchmarks.md, issue 39).
"""

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from cachetools import LRUCache

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.content import UNREADABLE
from embedding_pipeline.embedding import DenseModel, SparseModel
from embedding_pipeline.interrupts import stop_if_asked
from embedding_pipeline.mit_learn import OWN, RESOURCE_TYPES, STORED_TEXT_FIELDS, own, stored_text
from embedding_pipeline.partition.heads import of_type
from embedding_pipeline.partition.plan import Plan, RunOptions
from embedding_pipeline.partition.points import PlannedPoint, point_hash, record_points
from embedding_pipeline.partition.records import Record, RecordError, could_not_read, kind_of, point_ids
from embedding_pipeline.partition.report import SAMPLES, Report
from embedding_pipeline.vector_store import CollectionSpec, Point, VectorStore
from embedding_pipeline.vector_store.aliases import ensure_collections

# Texts repeat (boilerplate paragraphs, one file in several course runs): the vectors of the last
# texts a run saw are kept at hand, which spares a Qdrant lookup (about 10 KB each as Python lists, 1.5 KB as
# the arrays the encoder made).
RECENT_VECTORS = 2000
LOOKUP_BATCH = 1000  # ids or text hashes per filter of a Qdrant lookup or delete


@contextmanager
def timed(owner: "Report | Embedded", step: str) -> Iterator[None]:
    """Adds the block's seconds to `owner.seconds[step]` (the run's report, or one batch's embedding)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        owner.seconds[step] += time.perf_counter() - started


def batches(records: list[Record], size: int) -> Iterator[list[Record]]:
    """Consecutive batches of at most `size` records, never mixing resources and content files."""
    batch: list[Record] = []
    for record in records:
        if batch and (len(batch) == size or batch[0].kind != record.kind):
            yield batch
            batch = []
        batch.append(record)
    if batch:
        yield batch


class TextsInFlight:
    """The texts being embedded in this process, by vectors version and text hash: a batch that holds one (of
    the same run, or of a partition embedded beside it) waits for that embedding instead of sending the text
    again. A text is let go once the batch that embeds it is written, so that whoever looks next finds it in
    Qdrant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[tuple[str, str], Future] = {}

    def pending(self, version: str, hashes) -> dict[str, Future]:
        with self._lock:
            return self._pending(version, hashes)

    def claim(self, version: str, hashes, future: Future) -> dict[str, Future]:
        """`future` embeds the texts nobody embeds yet; returns the others (hash → the embedding that makes it)."""
        with self._lock:
            others = self._pending(version, hashes)
            self._futures.update({(version, h): future for h in hashes if h not in others})
            return others

    def _pending(self, version: str, hashes) -> dict[str, Future]:
        return {h: self._futures[version, h] for h in hashes if (version, h) in self._futures}

    def release(self, version: str, claimed: dict[str, Future]) -> None:
        """Lets go of these texts (hash → the embedding that claimed it), where nobody claimed them since."""
        with self._lock:
            for h, future in claimed.items():
                if self._futures.get((version, h)) is future:
                    del self._futures[version, h]


TEXTS_IN_FLIGHT = TextsInFlight()


@dataclass
class Embedded:
    """What one batch's encoding made, in a worker thread; the run's report takes it in when the batch is written."""

    vectors: dict[str, dict] = field(default_factory=dict)  # text hash → vectors
    rejected: dict[str, str] = field(default_factory=dict)  # text hash → why the model refused it
    stats: Counter = field(default_factory=Counter)  # the encoder's counters (requests, retries, ...)
    seconds: Counter = field(default_factory=Counter)  # dense, sparse
    dimension: int = 0


@dataclass
class ReadBatch:
    """A batch read, chunked and looked up in Qdrant, waiting for the vectors of its new texts."""

    records: list[Record]
    points: list[PlannedPoint]  # its records' points
    todo: list[PlannedPoint]  # those to write (hash changed, or forced)
    found: dict[str, dict]  # text hash → vectors Qdrant or this run already had
    embedding: Future  # → Embedded: the texts it sent to the encoder
    earlier: dict[str, Future] = field(default_factory=dict)  # text hash → an earlier batch's embedding that makes it

    def ready(self) -> bool:
        return self.embedding.done() and all(future.done() for future in self.earlier.values())


class PartitionWriter:
    """One run's writes into the collections `names` (kind → physical name) for one resource type."""

    def __init__(
        self, store: VectorStore, reader, chunker: Chunker, dense: DenseModel, sparse: SparseModel,
        names: dict[str, str], version: str, resource_type: str, options: RunOptions, report: Report,
        progress: Callable[[str], None], legacy: dict[str, str] | None = None,
        read_all: Callable[[], None] = lambda: None,
    ):  # fmt: skip
        self.store, self.reader, self.chunker, self.dense, self.sparse = store, reader, chunker, dense, sparse
        self.names, self.version, self.resource_type, self.options = names, version, resource_type, options
        self.report, self.progress, self.legacy, self.read_all = report, progress, legacy or {}, read_all
        self._recent: LRUCache = LRUCache(maxsize=RECENT_VECTORS)  # text hash → vectors
        self._orphans: set[str] = set()  # points no listed record owned when the run planned
        self._owned: set[str] = set()  # of those, points a record this run wrote turned out to own: they stay
        self._claimed: dict[str, Future] = {}  # text hash → this run's embedding of it, until its batch is written
        self._read_ahead = dense.concurrency + 1 if dense.concurrency > 1 else 0  # batches read and not yet written

    def write(self, plan: Plan, spec: Callable[[str], CollectionSpec]) -> None:
        """Write the plan, delete what it deletes, and build the indexes; `spec(kind)` makes missing collections."""
        todo = plan.todo
        self._orphans = {pid for ids in plan.damage.orphans.values() for pid in ids}
        self.report.points_unchanged = sum(plan.heads[r.record_id].chunk_count for r in plan.unchanged)
        if todo:
            ensure_collections(self.store, self.names, spec)
        started, done = time.perf_counter(), 0
        read: deque[ReadBatch] = deque()  # in order, each waiting for its vectors
        try:
            for batch in batches(todo, self.options.batch_size):
                stop_if_asked()  # Ctrl-C, for a run in a thread of its own
                self.store.pause_for_waiters()  # a search waiting for the embedded store goes first
                read.append(self._read(batch, plan))
                while read and (len(read) > self._read_ahead or read[0].ready()):
                    done += self._write_batch(read.popleft(), plan)
                    self._progress(done, len(todo), started)
            self.read_all()  # what is left is waiting for the encoder's last answers, writing and verifying
            while read:
                done += self._write_batch(read.popleft(), plan)
                self._progress(done, len(todo), started)
        finally:  # a run that fails lets its texts go: the next to need them embeds them
            TEXTS_IN_FLIGHT.release(self.version, self._claimed)
        self._delete(plan)
        self._finish()

    def _finish(self) -> None:
        """Indexes built where points changed; the counts and the dimension the metadata reports."""
        for kind, name in self.names.items():
            if not self.store.collection_exists(name):
                continue
            if self.report.points_upserted or self.report.points_deleted:
                with timed(self.report, "index"):
                    self.store.finish_writes(name)
            self.report.collection_points[kind] = self.store.count(name)
            self.report.partition_points[kind] = self.store.count(name, of_type(self.resource_type))
            sizes = self.store.dense_sizes(name)
            self.report.dimension = self.report.dimension or sizes.get(self.dense.vector_name, 0)

    def _progress(self, done: int, total: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        rate = done / elapsed if elapsed else 0.0
        left = f", about {(total - done) / rate:.0f}s left" if rate and done < total else ""
        self.progress(
            f"{self.resource_type}: {done}/{total} records ({100 * done / total:.0f}%), "
            f"{self.report.texts_embedded} texts embedded, {self.report.texts_reused} reused, "
            f"{rate:.1f} records/s{left}"
        )

    def _read(self, records: list[Record], plan: Plan) -> ReadBatch:
        """Read and chunk a batch, look its points and texts up in Qdrant, and start embedding its new texts."""
        points = self._points(records)
        stored = self._stored(points)
        points = self._keys_of_this_type(points, stored)
        todo = [p for p in points if self.options.force or stored.get(p.point_id, {}).get("point_hash") != p.point_hash]
        found, earlier, missing = self._vectors(todo)
        embedding: Future = Future()
        earlier.update(TEXTS_IN_FLIGHT.claim(self.version, missing, embedding))  # claimed meanwhile by another
        missing = {h: p for h, p in missing.items() if h not in earlier}
        self._claimed.update(dict.fromkeys(missing, embedding))
        self._start_embedding(missing, embedding)
        return ReadBatch(records, points, todo, found, embedding, earlier)

    def _write_batch(self, batch: ReadBatch, plan: Plan) -> int:
        """Write a read batch once its vectors are made (waiting for them); returns its count of records."""
        embedded = batch.embedding.result()
        self._take_in(embedded)
        vectors, rejected = {**batch.found, **embedded.vectors}, dict(embedded.rejected)
        for text_hash, future in batch.earlier.items():
            made = future.result()
            if text_hash in made.vectors:
                vectors[text_hash] = made.vectors[text_hash]
            else:
                rejected[text_hash] = made.rejected.get(text_hash, "no vector")
        self._recent.update(vectors)

        points, todo = batch.points, batch.todo
        refused = {p.record_id for p in todo if p.text_hash not in vectors}
        for point in todo:
            if point.text_hash not in vectors:
                reason = self.report.rejected[point.record_key] = rejected.get(point.text_hash, "no vector")
                record = Record(_kind(point), 0, point.record_id, point.record_key, "")
                self.report.fail(record, f"{point.record_key}: {reason}")
        kept = [p for p in points if p.record_id not in refused]
        writes = [p for p in todo if p.record_id not in refused]
        self.report.points_unchanged += len(kept) - len(writes)
        counts = Counter(p.record_id for p in kept)
        self._owned.update(p.point_id for p in kept if p.point_id in self._orphans)
        stale = [  # the chunks a shortened file no longer has, and stray points of the records written
            pid
            for record in batch.records
            if record.record_id in counts
            for pid in sorted(_old_points(record, plan) - set(point_ids(record, counts[record.record_id])))
        ]
        for point in writes:
            point.vectors = vectors[point.text_hash]
        self._write(writes, stale)
        made = {h: self._claimed.pop(h) for h in (*embedded.vectors, *embedded.rejected)}
        TEXTS_IN_FLIGHT.release(self.version, made)  # written: later batches find them in `_recent` or Qdrant
        self.report.batches += 1
        return len(batch.records)

    def _rows(self, records: list[Record]) -> tuple[dict[int, dict], dict[int, dict]]:
        """The full rows of these records, and of their resources (for content files), by id."""
        with timed(self.report, "fetch"):
            ids = [r.source_id for r in records]
            if records[0].kind in ("resource", "course_information"):  # course information is made of its resource
                return self.reader.resources(ids), {}
            if records[0].kind == "topic":
                return self.reader.topics(ids), {}
            return self.reader.content_files(ids), self.reader.resources({r.resource_id for r in records})

    def _points(self, records: list[Record]) -> list[PlannedPoint]:
        """The points of these records, read and chunked; records that fail are reported and left out."""
        rows, parents = self._rows(records)
        points = []
        with timed(self.report, "chunk"):
            for record in records:
                row = rows.get(record.source_id)
                if row is None:
                    continue  # deleted or unpublished since the listing: the next run deletes its points
                made = self._record_points(record, row, parents)
                if made is not None:
                    self.report.records_done[record.kind] += 1
                    self.report.empty_texts += sum(1 for p in made if not p.text.strip())
                    points.extend(made)
            for point in points:
                point.point_hash = point.payload[OWN]["point_hash"] = point_hash(self.version, point)
                self.report.tokens += point.tokens
                if point.collection == "content_files":
                    self.report.chunks += 1
                    self.report.max_chunk_tokens = max(self.report.max_chunk_tokens, point.tokens)
            self.report.samples.extend(points[: SAMPLES - len(self.report.samples)])
        return points

    def _record_points(self, record: Record, row: dict, parents: dict[int, dict]) -> list[PlannedPoint] | None:
        """One record's points, or None with the reason in the report (a record must not sink the partition)."""
        if UNREADABLE in row:
            self.report.fail(record, could_not_read(record.record_key, row))
            return None
        try:
            return record_points(record, row, parents.get(record.resource_id), self.chunker)
        except RecordError as error:
            self.report.fail(record, str(error))
        except Exception as error:  # noqa: BLE001 (a record the chunker chokes on must not sink the partition)
            self.report.fail(record, f"{record.record_key}: {type(error).__name__}: {error}")
        return None

    def _stored(self, points: list[PlannedPoint]) -> dict[str, dict]:
        """Point id → our bookkeeping of the point Qdrant holds under that id (its hash, its resource type)."""
        stored = {}
        for kind in {p.collection for p in points}:
            ids = [p.point_id for p in points if p.collection == kind]
            for pid, payload, _ in self.store.retrieve(self.names[kind], ids, fields=[OWN]):
                stored[pid] = payload.get(OWN, {})
        return stored

    def _keys_of_this_type(self, points: list[PlannedPoint], stored: dict[str, dict]) -> list[PlannedPoint]:
        """The points, but those of records whose key is also a record's of another resource type: mit-learn's
        point key is platform and readable id, whatever the type, so the two records would share one point.
        The type listed first (course, program, ...) keeps it, every run the same way; the other is named."""
        mine = RESOURCE_TYPES.index(self.resource_type) if self.resource_type in RESOURCE_TYPES else len(RESOURCE_TYPES)
        lost, won = {}, {}
        for point in points:
            other = stored.get(point.point_id, {}).get("resource_type", self.resource_type)
            if other != self.resource_type and other in RESOURCE_TYPES:
                (lost if RESOURCE_TYPES.index(other) < mine else won).setdefault(point.record_key, other)
        for key, other in won.items():
            self.report.shared_keys.append(
                f"{key}: also the key of a {other} record; this {self.resource_type} is used"
            )
        for key, other in lost.items():
            self.report.shared_keys.append(f"{key}: also the key of a {other} record, which is used")
        return [point for point in points if point.record_key not in lost]

    def _vectors(
        self, points: list[PlannedPoint]
    ) -> tuple[dict[str, dict], dict[str, Future], dict[str, PlannedPoint]]:
        """For these points' texts: the vectors Qdrant (or this run) holds already, by text hash; the texts an
        earlier batch is embedding (its embedding); and the texts to embed (a point of each)."""
        needed = {p.text_hash: p for p in points}
        self.report.texts_needed += len(needed)
        found: dict[str, dict] = {}
        earlier: dict[str, Future] = {}

        def unknown() -> dict[str, PlannedPoint]:
            return {h: p for h, p in needed.items() if h not in found and h not in earlier}

        if not self.options.force:
            found = {h: self._recent[h] for h in needed if h in self._recent}
            earlier = TEXTS_IN_FLIGHT.pending(self.version, unknown())
            for kind in {p.collection for p in points}:
                found.update(self._stored_vectors(self.names[kind], list(unknown())))
            taken = self._taken_over(unknown())
            self.report.texts_taken_over += len(taken)
            found.update(taken)
        self.report.texts_reused += len(found) + len(earlier)
        return found, earlier, unknown()

    def _taken_over(self, points: dict[str, PlannedPoint]) -> dict[str, dict]:
        """Text hash → vectors of points mit-learn wrote into the collection this deployment takes over
        (`legacy`: kind → `{base}.{kind}` while it is a collection of its own): same id, same text as ours,
        both our vector names. Read until the aliases replace those collections."""
        found = {}
        wanted = (self.dense.vector_name, self.sparse.vector_name)
        for kind, legacy in self.legacy.items():
            mine = [p for p in points.values() if p.collection == kind]
            for start in range(0, len(mine), LOOKUP_BATCH):
                by_id = {p.point_id: p for p in mine[start : start + LOOKUP_BATCH]}
                for pid, payload, vectors in self.store.retrieve(
                    legacy, list(by_id), with_vectors=True, fields=STORED_TEXT_FIELDS
                ):
                    point = by_id[pid]
                    if stored_text(kind, payload, self.chunker.fit_to_model) == point.text and all(
                        name in vectors for name in wanted
                    ):
                        found[point.text_hash] = {name: vectors[name] for name in wanted}
        return found

    def _stored_vectors(self, name: str, hashes: list[str]) -> dict[str, dict]:
        found = {}
        for start in range(0, len(hashes), LOOKUP_BATCH):
            for _, payload, vectors in self.store.scroll_vectors(
                name, {own("text_hash"): hashes[start : start + LOOKUP_BATCH]}, [OWN]
            ):
                if self.dense.vector_name in vectors and self.sparse.vector_name in vectors:
                    found[payload[OWN]["text_hash"]] = vectors
        return found

    def _start_embedding(self, points: dict[str, PlannedPoint], future: Future) -> None:
        """Embeds these points' texts into `future`: for a remote encoder in a daemon thread (a run interrupted
        does not wait for it), for a local model at once (in a new thread per batch it ran 12% slower)."""
        if not points or not self._read_ahead:  # a local model: here and now, as ONNX Runtime runs best
            future.set_result(self._embed(points) if points else Embedded())
            return

        def embed() -> None:
            try:
                future.set_result(self._embed(points))  # the encoder holds its requests to `concurrency` at once
            except BaseException as error:  # noqa: BLE001 (handed to the run's thread, which raises it)
                future.set_exception(error)

        threading.Thread(target=embed, name=f"embed-{self.resource_type}", daemon=True).start()

    def _embed(self, points: dict[str, PlannedPoint]) -> Embedded:
        """Dense and sparse vectors of these points' texts, by text hash; texts the model refused are absent."""
        made, texts = Embedded(), [p.text for p in points.values()]
        with timed(made, "dense"):
            dense = self.dense.embed_documents(texts)
        made.stats.update(dense.stats)
        with timed(made, "sparse"):
            sparse = self.sparse.embed_documents(texts)
        for (text_hash, point), d, s in zip(points.items(), dense.vectors, sparse):
            if point.text in dense.rejected or np.isnan(d).any():
                made.rejected[text_hash] = dense.rejected.get(point.text, "no vector")
                continue
            made.vectors[text_hash] = {self.dense.vector_name: d, self.sparse.vector_name: s}  # a list when written
            made.dimension = len(d)
        return made

    def _take_in(self, embedded: Embedded) -> None:
        """A batch's embedding, counted in the report (in the run's thread)."""
        self.report.texts_embedded += len(embedded.vectors)
        self.report.encoder_stats.update(embedded.stats)
        self.report.seconds.update(embedded.seconds)
        self.report.dimension = embedded.dimension or self.report.dimension

    def _write(self, points: list[PlannedPoint], stale: list[str]) -> None:
        """Chunks first, then stale points, then heads: a record's head appears only once it is complete."""
        with timed(self.report, "upsert"):
            for heads_now in (False, True):
                for kind in self.names:
                    batch = [
                        Point(p.point_id, _lists(p.vectors), p.payload)
                        for p in points
                        if p.head == heads_now and p.collection == kind
                    ]
                    size = self.options.upload_batch_size
                    self.store.upsert_all(self.names[kind], [batch[i : i + size] for i in range(0, len(batch), size)])
                if not heads_now and stale:
                    self.store.delete(self.names["content_files"], stale)
        self.report.points_upserted += len(points)
        self.report.points_deleted += len(stale)
        self.report.records_written |= {p.record_id for p in points}

    def _delete(self, plan: Plan) -> None:
        """The points of records the source no longer has, and points no record owns."""
        with timed(self.report, "upsert"):
            for kind, name in self.names.items():
                gone = [h for h in plan.deleted if h.collection == kind]
                for start in range(0, len(gone), LOOKUP_BATCH):
                    part = gone[start : start + LOOKUP_BATCH]
                    self.store.delete_where(name, {own("record_id"): [h.record_id for h in part]})
                    self.report.points_deleted += sum(h.chunk_count for h in part)
                orphans = self._still_orphans(name, plan)
                if orphans:
                    self.store.delete(name, orphans)
                    self.report.points_deleted += len(orphans)

    def _still_orphans(self, name: str, plan: Plan) -> list[str]:
        """The points the plan found no listed record owned, read again before they go: one that a record this
        run wrote turned out to own, or that names a listed record, stays (a head may refer to it)."""
        found = [pid for pid in plan.damage.orphans.get(name, []) if pid not in self._owned]
        listed = plan.listing.records
        doomed = []
        for start in range(0, len(found), LOOKUP_BATCH):
            for pid, payload, _ in self.store.retrieve(name, found[start : start + LOOKUP_BATCH], fields=[OWN]):
                if payload.get(OWN, {}).get("record_id") not in listed:
                    doomed.append(pid)
        return doomed


def _old_points(record: Record, plan: Plan) -> set[str]:
    """The points Qdrant may hold of a record: those its head counts, and strays the plan found."""
    head = plan.heads.get(record.record_id)
    counted = set(point_ids(record, head.chunk_count)) if head else set()
    return counted | plan.damage.strays.get(record.record_id, set())


def _lists(vectors: dict) -> dict:
    """Vectors as the stores take them: a run keeps new dense vectors as arrays (an eighth of a list's memory)."""
    return {name: v.tolist() if isinstance(v, np.ndarray) else v for name, v in vectors.items()}


def _kind(point: dict) -> str:
    return kind_of(point.collection, point.record_key)
