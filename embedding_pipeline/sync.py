"""Keeping Qdrant in step with one partition, batch by batch: plain functions and one class, no Dagster.

Qdrant itself is the state. Every point carries its record's id, its text's hash and a hash of
its text, payload and the vectors' version; a record's first point (its head) also carries the
record's fingerprint and number of points. A run therefore:
  1. lists the partition's records (cheap columns only) and the heads Qdrant holds (or is known to
     hold: see `partition_state`), and compares fingerprints: new, changed, unchanged, deleted;
  2. reads, chunks, embeds and writes only the new and changed records, `batch_size` records at a
     time; a text whose vectors Qdrant already holds (same text hash) is not embedded again, and a
     point whose hash did not change is not written again. A batch's heads are written last, so a
     record counts as done only once all its points are there: a run that dies resumes after the
     last finished batch;
  3. deletes the points of deleted records, then builds the indexes.
A record that cannot be read or embedded keeps the points it had, and is tried again next run.
"""

import hashlib
import json
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from embedding_pipeline.points import (
    Record,
    RecordError,
    content_file_points,
    content_file_record,
    point_hash,
    point_ids,
    resource_points,
    resource_record,
)
from embedding_pipeline.resources.content_source import UNREADABLE
from embedding_pipeline.vector_store import COLLECTION_KINDS, CollectionSpec, Point, VectorStore

log = logging.getLogger(__name__)

LISTED_FAILURES = 50  # in logs and metadata; counts cover all
HEAD_FIELDS = ["record_id", "record_key", "record_fingerprint", "chunk_count"]
# Texts repeat (boilerplate paragraphs, one file in several course runs): the vectors of the last
# texts a run saw are kept at hand, which spares a Qdrant lookup (about 10 KB each as Python lists).
RECENT_VECTORS = 2000
LOOKUP_BATCH = 1000  # ids or text hashes per filter of a Qdrant lookup or delete
HEADS_SAMPLED = 100  # heads saved by the last run that a run compares with Qdrant's before it trusts the rest


@dataclass(frozen=True)
class Head:
    """What Qdrant holds of a record: its fingerprint when last written, and how many points it has."""

    record_id: str
    record_key: str
    fingerprint: str
    chunk_count: int
    collection: str  # "resources" or "content_files"

    @property
    def kind(self) -> str:
        return "resource" if self.collection == "resources" else "content_file"


@dataclass
class Listing:
    """The partition's records as the source lists them now."""

    records: dict[str, Record] = field(default_factory=dict)  # by record id
    failed: dict[str, str] = field(default_factory=dict)  # who → why (records that cannot even be listed)
    duplicates: list[str] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)  # ids of records that failed to be listed: their points stay


def list_records(reader) -> Listing:
    """Every published record of the partition, from the source's cheap columns.

    Two rows with one record key (possible where the source's unique constraint has NULLs): the
    row with the highest id is the record, the others are named.
    """
    listing = Listing()
    resources: dict[int, Record] = {}
    chosen: dict[str, Record] = {}

    def add(record: Record) -> None:
        other = chosen.get(record.record_id)
        if other is not None:
            keep, drop = (record, other) if record.source_id > other.source_id else (other, record)
            table = "learning_resources" if record.kind == "resource" else "content_files"
            listing.duplicates.append(
                f"{record.record_key}: {table} id={drop.source_id} ignored, id={keep.source_id} used"
            )
            record = keep
        chosen[record.record_id] = record

    for row in reader.list_resources():
        if UNREADABLE in row:
            _unreadable(listing, row, f"learning_resources id={row['id']}", resource_record)
            continue
        try:
            record = resource_record(row)
        except RecordError as error:
            listing.failed[f"learning_resources id={row['id']}"] = str(error)
            continue
        add(record)
        resources[record.source_id] = chosen[record.record_id]
    for row in reader.list_content_files():
        resource = resources.get(row.get("resource_id"))
        if UNREADABLE in row:
            _unreadable(listing, row, f"content_files id={row['id']}", partial(content_file_record, resource=resource))
            continue
        try:
            if resource is None:
                raise RecordError(
                    f"content_files id={row['id']}", "resource_id", "names no published resource of this type"
                )
            add(content_file_record(row, resource))
        except RecordError as error:
            listing.failed[f"content_files id={row['id']}"] = str(error)
    listing.records = chosen
    return listing


def _unreadable(listing: Listing, row: dict, who: str, record_of: Callable[[dict], Record]) -> None:
    """A listed row the database could not read: named, and its points kept when its key could be read."""
    try:
        record = record_of(row)
    except (RecordError, KeyError, AttributeError, TypeError):
        listing.failed[who] = _could_not_read(who, row)
        return
    listing.failed[record.record_key] = _could_not_read(record.record_key, row)
    listing.kept.add(record.record_id)


def _could_not_read(who: str, row: dict) -> str:
    return f"{who}: the database could not read it: {row[UNREADABLE]}"


def stored_heads(store: VectorStore, names: dict[str, str], resource_type: str) -> dict[str, Head]:
    """The heads of this resource type's records in the current collections, by record id."""
    heads = {}
    for kind, name in names.items():
        if not store.collection_exists(name):
            continue
        for _, payload in store.scroll(name, {"resource_type": resource_type, "role": "head"}, HEAD_FIELDS):
            heads[payload["record_id"]] = _head(payload, kind)
    return heads


def refresh_heads(
    store: VectorStore, names: dict[str, str], heads: dict[str, Head], written: list[Record], deleted: list[Head]
) -> dict[str, Head]:
    """The heads after a run that wrote (some of) `written` and deleted `deleted`: those read again from
    Qdrant, the rest as they were, so that a run reads back what it touched, not the whole partition."""
    gone = {head.record_id for head in deleted} | {record.record_id for record in written}
    fresh = {record_id: head for record_id, head in heads.items() if record_id not in gone}
    for kind, name in names.items():
        fresh.update(_read_heads(store, name, kind, [r for r in written if r.collection == kind]))
    return fresh


def partition_state(store: VectorStore, names: dict[str, str], resource_type: str, where: str) -> str:
    """Where Qdrant is, its collections and how many points of this resource type each holds: a run that
    finds the state a whole run left may take that run's heads as they were (`run_state.saved_heads`)."""
    points = {
        name: store.count(name, {"resource_type": resource_type}) if store.collection_exists(name) else None
        for name in names.values()
    }
    where = hashlib.sha256(where.encode()).hexdigest()[:16]  # a server URL may carry a password
    return json.dumps({"where": where, "points": points}, sort_keys=True)


def heads_agree(store: VectorStore, names: dict[str, str], heads: dict[str, Head], sample: int = HEADS_SAMPLED) -> bool:
    """Do `sample` heads picked at random match Qdrant's? Counts alone miss a Qdrant restored from a backup
    taken before records were edited (as many points, older texts); a spot check catches most of those."""
    picked = random.sample(list(heads.values()), min(sample, len(heads)))
    for kind, name in names.items():
        mine = [head for head in picked if head.collection == kind]
        stored = _read_heads(store, name, kind, [_record_of(head) for head in mine])
        if any(stored.get(head.record_id) != head for head in mine):
            return False
    return True


def _read_heads(store: VectorStore, name: str, kind: str, records: list[Record]) -> dict[str, Head]:
    """The heads Qdrant holds of these records in collection `name` (of `kind`), by record id."""
    heads: dict[str, Head] = {}
    if not records or not store.collection_exists(name):
        return heads
    for start in range(0, len(records), LOOKUP_BATCH):
        ids = [point_ids(record, 1)[0] for record in records[start : start + LOOKUP_BATCH]]  # a head is point 0
        for _, payload, _ in store.retrieve(name, ids, fields=HEAD_FIELDS):
            heads[payload["record_id"]] = _head(payload, kind)
    return heads


def _head(payload: dict, collection: str) -> Head:
    return Head(
        payload["record_id"], payload.get("record_key", ""), payload.get("record_fingerprint", ""),
        int(payload.get("chunk_count") or 1), collection,
    )  # fmt: skip


@dataclass
class Damage:
    """Points that do not match the heads: a run cut short between two writes, or a hand in Qdrant."""

    records: set[str] = field(default_factory=set)  # record ids with a point missing or too many
    orphans: dict[str, list[str]] = field(default_factory=dict)  # collection → points whose record has no head
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)


def find_damage(
    store: VectorStore,
    names: dict[str, str],
    resource_type: str,
    heads: dict[str, Head],
    records: dict[str, Record],
    full: bool = False,
) -> Damage:
    """Compare the points with what the heads say they should be.

    A count per collection decides whether the points are listed at all (`full` forces it): a
    partition in step costs one count query per collection.
    """
    damage = Damage()
    for kind, name in names.items():
        if not store.collection_exists(name):
            continue
        mine = [head for head in heads.values() if head.collection == kind]
        if not full and store.count(name, {"resource_type": resource_type}) == sum(h.chunk_count for h in mine):
            continue
        expected: dict[str, str] = {}  # point id → record id
        for head in mine:
            record = records.get(head.record_id) or _record_of(head)
            expected.update(dict.fromkeys(point_ids(record, head.chunk_count), head.record_id))
        present = dict(store.scroll(name, {"resource_type": resource_type}, ["record_id"]))
        for pid in expected.keys() - present.keys():
            damage.records.add(expected[pid])
            damage.missing.append(pid)
        for pid in present.keys() - expected.keys():
            record_id = present[pid].get("record_id")
            damage.extra.append(pid)
            if record_id in heads:
                damage.records.add(record_id)
            damage.orphans.setdefault(name, []).append(pid)
    return damage


@dataclass
class Verification:
    """Does Qdrant hold exactly the partition's records, as the source has them now?"""

    expected_points: int
    points_in_qdrant: int
    missing: list[str]  # point ids, or the keys of records never written
    extra: list[str]  # point ids, or deleted records with their point counts
    out_of_date: list[str]  # keys of records whose stored fingerprint is not the source's
    every_point_listed: bool

    @property
    def passed(self) -> bool:
        """Also the counts: two records that claimed one point would match every id and still be one point short."""
        counts_match = self.expected_points == self.points_in_qdrant
        return counts_match and not self.missing and not self.extra and not self.out_of_date


def verify(
    store: VectorStore,
    names: dict[str, str],
    resource_type: str,
    listing: Listing,
    exempt: set[str],
    full: bool = True,
    heads: dict[str, Head] | None = None,
    damage: Damage | None = None,
) -> Verification:
    """Compare Qdrant with the listing; records in `exempt` (they failed, and keep what they had) are not held against it.

    `full` lists every point; otherwise a count per collection stands in for the list. `heads` and
    `damage` may be passed when the caller has them and nothing was written since.
    """
    if heads is None:
        heads = stored_heads(store, names, resource_type)
    if damage is None:
        damage = find_damage(store, names, resource_type, heads, listing.records, full)
    plan = make_plan(listing, heads, damage)
    unwritten = [r for r in plan.new if r.record_id not in exempt]
    stale = [r for r in plan.changed if r.record_id not in exempt and r.record_id not in damage.records]
    in_qdrant = sum(
        store.count(name, {"resource_type": resource_type}) for name in names.values() if store.collection_exists(name)
    )
    deleted = {h.record_id for h in plan.deleted}
    return Verification(
        expected_points=sum(h.chunk_count for h in heads.values() if h.record_id not in deleted) + len(unwritten),
        points_in_qdrant=in_qdrant,
        missing=damage.missing + [f"{r.record_key} (not written)" for r in unwritten],
        extra=damage.extra + [f"{h.record_key} ({h.chunk_count} points)" for h in plan.deleted],
        out_of_date=[r.record_key for r in stale],
        every_point_listed=full,
    )


def _resource_of(record: Record) -> int:
    return record.source_id if record.kind == "resource" else record.resource_id


def _record_named(point: dict) -> Record:
    """The record a point belongs to, as far as a failure report needs it."""
    kind = "resource" if point["collection"] == "resources" else "content_file"
    return Record(kind, 0, point["record_id"], point["record_key"], "")


def _record_of(head: Head) -> Record:
    """A stored record the source no longer lists: enough of it to name its points."""
    return Record(head.kind, 0, head.record_id, head.record_key, "")


class MassDeletion(RuntimeError):
    """A run would delete more of a partition's points than it may."""


@dataclass(frozen=True)
class Options:
    batch_size: int  # records per batch (QDRANT_CHUNK_SIZE)
    upload_batch_size: int  # points per upsert request (QDRANT_POINT_UPLOAD_BATCH_SIZE)
    force: bool = False  # embed every text again and write every point
    resource_ids: frozenset[int] = frozenset()  # only these resources and their files; empty: all
    content_files: bool = True  # False: resources only, content-file points left as they are
    max_delete_share: float | None = None  # a run that would delete more of the partition's points fails

    @property
    def scoped(self) -> bool:
        return bool(self.resource_ids) or not self.content_files

    def in_scope(self, kind: str, resource_id: int) -> bool:
        """Whether this run touches a record of `kind` that belongs to resource `resource_id`."""
        if kind == "content_file" and not self.content_files:
            return False
        return not self.resource_ids or resource_id in self.resource_ids


@dataclass
class Plan:
    listing: Listing
    heads: dict[str, Head]
    new: list[Record]
    changed: list[Record]
    unchanged: list[Record]
    deleted: list[Head]
    damage: Damage

    @property
    def todo(self) -> list[Record]:
        """Resources first, by length (an encoder batch of texts of one length pads little), then content
        files in source order (their chunks are mostly full-sized); a batch holds one kind."""
        return sorted(self.new + self.changed, key=lambda r: (r.kind != "resource", r.size, r.source_id))


def make_plan(listing: Listing, heads: dict[str, Head], damage: Damage, options: Options | None = None) -> Plan:
    """What a run does: with `options` scoped, records out of scope are left alone, and a run
    limited to some resources deletes nothing (it cannot tell a deleted record from one out of scope)."""
    force = options is not None and options.force
    new, changed, unchanged = [], [], []
    for record_id, record in listing.records.items():
        head = heads.get(record_id)
        if options is not None and not options.in_scope(record.kind, _resource_of(record)):
            continue
        if head is None:
            new.append(record)
        elif force or head.fingerprint != record.fingerprint or record_id in damage.records:
            changed.append(record)
        else:
            unchanged.append(record)
    deleted = [
        h for record_id, h in heads.items() if record_id not in listing.records and record_id not in listing.kept
    ]
    if options is not None and options.scoped:  # without resource ids: the resources only
        deleted = [] if options.resource_ids else [h for h in deleted if h.kind == "resource"]
    return Plan(listing, heads, new, changed, unchanged, deleted, damage)


@dataclass
class Report:
    """What a run did, for the assets' metadata."""

    records_listed: Counter = field(default_factory=Counter)  # kind → records
    failures: dict[str, str] = field(default_factory=dict)  # record key → reason
    failed_record_ids: set[str] = field(default_factory=set)
    records_done: Counter = field(default_factory=Counter)  # kind → records chunked and written
    chunks: int = 0
    empty_texts: int = 0
    tokens: int = 0
    max_chunk_tokens: int = 0
    samples: list[dict] = field(default_factory=list)
    texts_needed: int = 0
    texts_embedded: int = 0
    texts_reused: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # record key → reason
    encoder_stats: Counter = field(default_factory=Counter)
    dimension: int = 0
    points_upserted: int = 0
    points_unchanged: int = 0
    points_deleted: int = 0
    records_written: set[str] = field(default_factory=set)
    seconds: Counter = field(default_factory=Counter)  # fetch, heads, chunk, dense, sparse, upsert, index
    collection_points: dict[str, int] = field(default_factory=dict)  # kind → points of every type
    partition_points: dict[str, int] = field(default_factory=dict)  # kind → points of this resource type
    batches: int = 0
    heads_from: str = "Qdrant"  # or where the caller of `plan` had them from

    def fail(self, record: Record | str, reason: str) -> None:
        key = record.record_key if isinstance(record, Record) else record
        self.failures[key] = reason
        if isinstance(record, Record):
            self.failed_record_ids.add(record.record_id)


class PartitionSync:
    """One run's work on one partition, from the source to Qdrant."""

    def __init__(
        self, store, reader, chunker, dense, sparse, names, version, resource_type, options, progress=log.info
    ):
        self.store, self.reader, self.chunker, self.dense, self.sparse = store, reader, chunker, dense, sparse
        self.names, self.version, self.resource_type, self.options = names, version, resource_type, options
        self.progress = progress
        self.report = Report()
        self._ready: set[str] = set()  # collections known to exist with the right vectors
        self._recent: OrderedDict[str, dict] = OrderedDict()  # text hash → vectors, the last RECENT_VECTORS

    def plan(self, verify_every_point: bool = False, heads: dict[str, Head] | None = None) -> Plan:
        """What to do; `verify_every_point` lists every point (else a count per collection decides).
        `heads`: Qdrant's heads when the caller knows them (else they are read from Qdrant)."""
        started = time.perf_counter()
        listing = list_records(self.reader)
        self.report.seconds["fetch"] += time.perf_counter() - started
        if heads is None:
            started = time.perf_counter()
            heads = stored_heads(self.store, self.names, self.resource_type)
            self.report.seconds["heads"] += time.perf_counter() - started
        damage = find_damage(self.store, self.names, self.resource_type, heads, listing.records, verify_every_point)
        if damage.missing or damage.extra:
            self.progress(
                f"{self.resource_type}: Qdrant was out of step ({len(damage.missing)} points missing, "
                f"{len(damage.extra)} extra): {len(damage.records)} records are written again"
            )
        self.report.records_listed.update(r.kind for r in listing.records.values())
        for who, reason in listing.failed.items():
            self.report.fail(who, reason)
        return make_plan(listing, heads, damage, self.options)

    def run(self, plan: Plan, spec: Callable[[str], CollectionSpec]) -> Report:
        """Write the plan: `spec(kind)` gives the collection to create if it does not exist."""
        self._check_deletions(plan)
        todo = plan.todo
        self.report.points_unchanged = sum(plan.heads[r.record_id].chunk_count for r in plan.unchanged)
        if todo:
            for kind, name in self.names.items():
                self.store.ensure_collection(name, spec(kind))
        started, done = time.perf_counter(), 0
        for batch in _batches(todo, self.options.batch_size):
            self.store.pause_for_waiters()  # a search waiting for the embedded store goes first
            self._batch(batch, plan.heads)
            done += len(batch)
            self.report.batches += 1
            self._progress(done, len(todo), started)
        self._delete(plan)
        for kind, name in self.names.items():
            if self.store.collection_exists(name):
                if self.report.points_upserted or self.report.points_deleted:
                    started = time.perf_counter()
                    self.store.finish_writes(name)
                    self.report.seconds["index"] += time.perf_counter() - started
                self.report.collection_points[kind] = self.store.count(name)
                self.report.partition_points[kind] = self.store.count(name, {"resource_type": self.resource_type})
                self.report.dimension = self.report.dimension or self.store.dense_sizes(name).get(
                    self.dense.vector_name, 0
                )
        return self.report

    def _check_deletions(self, plan: Plan) -> None:
        """A source that suddenly lists far fewer records (a wrong or emptied database) must not empty Qdrant."""
        doomed = sum(head.chunk_count for head in plan.deleted)
        stored = sum(head.chunk_count for head in plan.heads.values())
        limit = self.options.max_delete_share
        if limit is None or not doomed or (doomed < stored and doomed <= limit * stored):
            return
        raise MassDeletion(
            f"{self.resource_type}: this run would delete {doomed} of the partition's {stored} points "
            f"({len(plan.deleted)} records the content source no longer lists; it lists {len(plan.listing.records)}), "
            f"more than QDRANT_MAX_DELETE_SHARE={limit:g} allows. Nothing was written or deleted. If the content "
            "database is right, run again with `resources: {embed_options: {config: {allow_mass_deletion: true}}}` "
            "(embedding-pipeline embed --allow-mass-deletion); if not, check CONTENT_DATABASE_URL."
        )

    def _progress(self, done: int, total: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        rate = done / elapsed if elapsed else 0.0
        left = f", about {(total - done) / rate:.0f}s left" if rate and done < total else ""
        self.progress(
            f"{self.resource_type}: {done}/{total} records ({100 * done / total:.0f}%), "
            f"{self.report.texts_embedded} texts embedded, {self.report.texts_reused} reused, "
            f"{rate:.1f} records/s{left}"
        )

    def _batch(self, records: list[Record], heads: dict[str, Head]) -> None:
        points = self._points(records)
        todo = points if self.options.force else self._changed_points(points)
        vectors = self._vectors(todo)
        refused = {p["record_id"] for p in todo if p["text_hash"] not in vectors}
        for point in todo:
            if point["text_hash"] not in vectors:
                reason = self.report.rejected[point["record_key"]]
                self.report.fail(_record_named(point), f"{point['record_key']}: {reason}")
        kept = [p for p in points if p["record_id"] not in refused]
        writes = [p for p in todo if p["record_id"] not in refused]
        self.report.points_unchanged += len(kept) - len(writes)
        counts = Counter(p["record_id"] for p in kept)
        stale = [
            pid
            for record in records
            if record.record_id in counts and record.record_id in heads
            for pid in point_ids(record, heads[record.record_id].chunk_count)[counts[record.record_id] :]
        ]
        for point in writes:
            point["vectors"] = vectors[point["text_hash"]]
        self._write(writes, stale)

    def _points(self, records: list[Record]) -> list[dict]:
        """The points of these records, read and chunked; records that fail are reported and left out."""
        started = time.perf_counter()
        ids = [r.source_id for r in records]
        if records[0].kind == "resource":
            rows, parents = self.reader.resources(ids), {}
        else:
            rows = self.reader.content_files(ids)
            parents = self.reader.resources({r.resource_id for r in records})
        self.report.seconds["fetch"] += time.perf_counter() - started
        started = time.perf_counter()
        points = []
        for record in records:
            row = rows.get(record.source_id)
            if row is None:
                continue  # deleted or unpublished since the listing: the next run deletes its points
            if UNREADABLE in row:
                self.report.fail(record, _could_not_read(record.record_key, row))
                continue
            try:
                if record.kind == "resource":
                    made = resource_points(record, row, self.chunker)
                else:
                    parent = parents.get(record.resource_id)
                    if parent is None:
                        raise RecordError(record.record_key, "resource_id", "names no published resource of this type")
                    made = content_file_points(record, row, parent, self.chunker)
            except RecordError as error:
                self.report.fail(record, str(error))
                continue
            except Exception as error:  # noqa: BLE001 (a record the chunker chokes on must not sink the partition)
                self.report.fail(record, f"{record.record_key}: {type(error).__name__}: {error}")
                continue
            self.report.records_done[record.kind] += 1
            self.report.empty_texts += sum(1 for p in made if not p["text"].strip())
            points.extend(made)
        for point in points:
            point["point_hash"] = point_hash(self.version, point)
            point["payload"]["point_hash"] = point["point_hash"]
            self.report.tokens += point["tokens"]
            if point["collection"] == "content_files":
                self.report.chunks += 1
                self.report.max_chunk_tokens = max(self.report.max_chunk_tokens, point["tokens"])
        self.report.samples.extend(points[: 5 - len(self.report.samples)])
        self.report.seconds["chunk"] += time.perf_counter() - started
        return points

    def _vectors(self, points: list[dict]) -> dict[str, dict]:
        """Text hash → vectors for these points: from Qdrant where it holds the text already, else embedded.

        A text the model refused has none (its reason is in the report).
        """
        needed = {p["text_hash"]: p for p in points}
        self.report.texts_needed += len(needed)
        found: dict[str, dict] = {}
        if not self.options.force:
            found = {h: self._recent[h] for h in needed if h in self._recent}
            for kind in {p["collection"] for p in points}:
                found.update(self._stored_vectors(self.names[kind], [h for h in needed if h not in found]))
        self.report.texts_reused += len(found)
        missing = {h: p for h, p in needed.items() if h not in found}
        if missing:
            found.update(self._embed(missing))
        for text_hash, vectors in found.items():
            self._recent[text_hash] = vectors
            self._recent.move_to_end(text_hash)
        while len(self._recent) > RECENT_VECTORS:
            self._recent.popitem(last=False)
        return found

    def _changed_points(self, points: list[dict]) -> list[dict]:
        """The points whose stored hash differs (or that Qdrant does not have)."""
        stored = {}
        for kind in {p["collection"] for p in points}:
            ids = [p["point_id"] for p in points if p["collection"] == kind]
            for pid, payload, _ in self.store.retrieve(self.names[kind], ids, fields=["point_hash"]):
                stored[pid] = payload.get("point_hash")
        return [p for p in points if stored.get(p["point_id"]) != p["point_hash"]]

    def _stored_vectors(self, name: str, hashes: list[str]) -> dict[str, dict]:
        found = {}
        for start in range(0, len(hashes), LOOKUP_BATCH):
            for _, payload, vectors in self.store.scroll_vectors(
                name, {"text_hash": hashes[start : start + LOOKUP_BATCH]}, ["text_hash"]
            ):
                if self.dense.vector_name in vectors and self.sparse.vector_name in vectors:
                    found[payload["text_hash"]] = vectors
        return found

    def _embed(self, points: dict[str, dict]) -> dict[str, dict]:
        """Dense and sparse vectors of these points' texts, by text hash; texts the model refused are absent."""
        texts = [p["text"] for p in points.values()]
        started = time.perf_counter()
        dense = self.dense.embed_documents(texts, progress=_Quiet())
        self.report.seconds["dense"] += time.perf_counter() - started
        self.report.encoder_stats.update(self.dense.stats)
        refused = self.dense.rejected
        started = time.perf_counter()
        sparse = self.sparse.embed_documents(texts)
        self.report.seconds["sparse"] += time.perf_counter() - started
        vectors = {}
        for (text_hash, point), d, s in zip(points.items(), dense, sparse):
            if point["text"] in refused or np.isnan(d).any():
                self.report.rejected[point["record_key"]] = refused.get(point["text"], "no vector")
                continue
            vectors[text_hash] = {self.dense.vector_name: d.tolist(), self.sparse.vector_name: s}
            self.report.dimension = len(d)
        self.report.texts_embedded += len(vectors)
        return vectors

    def _write(self, points: list[dict], stale: list[str]) -> None:
        """Chunks first, then stale points, then heads: a record's head appears only once it is complete."""
        started = time.perf_counter()
        for heads_now in (False, True):
            for kind in COLLECTION_KINDS:
                batch = [p for p in points if p["head"] == heads_now and p["collection"] == kind]
                for start in range(0, len(batch), self.options.upload_batch_size):
                    part = batch[start : start + self.options.upload_batch_size]
                    self.store.upsert(
                        self.names[kind], [Point(p["point_id"], p["vectors"], p["payload"]) for p in part]
                    )
            if not heads_now and stale:
                self.store.delete(self.names["content_files"], stale)
        self.report.points_upserted += len(points)
        self.report.points_deleted += len(stale)
        self.report.records_written |= {p["record_id"] for p in points}
        self.report.seconds["upsert"] += time.perf_counter() - started

    def _delete(self, plan: Plan) -> None:
        """The points of records the source no longer has, and points no record owns."""
        started = time.perf_counter()
        for kind, name in self.names.items():
            gone = [h for h in plan.deleted if h.collection == kind]
            for start in range(0, len(gone), LOOKUP_BATCH):
                part = gone[start : start + LOOKUP_BATCH]
                self.store.delete_where(name, {"record_id": [h.record_id for h in part]})
                self.report.points_deleted += sum(h.chunk_count for h in part)
            orphans = plan.damage.orphans.get(name, [])
            if orphans:
                self.store.delete(name, orphans)
                self.report.points_deleted += len(orphans)
        self.report.seconds["upsert"] += time.perf_counter() - started


class _Quiet:
    """The encoder's own progress lines are replaced by the run's per-batch ones."""

    def info(self, message: str) -> None:
        log.debug(message)


def _batches(records: list[Record], size: int) -> Iterator[list[Record]]:
    """Consecutive batches of at most `size` records, never mixing resources and content files."""
    batch: list[Record] = []
    for record in records:
        if batch and (len(batch) == size or batch[0].kind != record.kind):
            yield batch
            batch = []
        batch.append(record)
    if batch:
        yield batch


def ensure_collections(
    store: VectorStore, names: dict[str, str], spec: Callable[[str], CollectionSpec | None], recreate: bool = False
) -> list[str]:
    """kind → physical name: create what is missing (or everything, if `recreate`); returns what was dropped.

    `spec(kind)` is None when nothing is to be written (the dimension may then be unknown): such a
    collection is not created.
    """
    dropped = []
    for kind, name in names.items():
        if recreate and store.collection_exists(name):
            store.drop_collection(name)
            dropped.append(name)
        kind_spec = spec(kind)
        if kind_spec is not None:
            store.ensure_collection(name, kind_spec)
    return dropped


@dataclass
class AliasSwitch:
    searches_use: dict[str, str]  # alias → physical collection, after the call
    moved: bool = False
    removed: list[str] = field(default_factory=list)


def switch_aliases(
    store: VectorStore,
    targets: dict[str, str],
    every_partition_done: Callable[[], bool],
    keep_old: bool = False,
) -> AliasSwitch:
    """Point the aliases at their new collections; then drop the old collections.

    An alias that does not exist yet is created at once (no search uses it). Aliases that exist
    move together, and only when `every_partition_done()`: a re-embed is then complete, and
    searches never see a collection half filled with the new model.
    """
    current = store.aliases()
    wanted = {alias: name for alias, name in targets.items() if store.collection_exists(name)}
    missing = {alias: name for alias, name in wanted.items() if alias not in current}
    moving = {alias: name for alias, name in wanted.items() if alias in current and current[alias] != name}
    if moving and not every_partition_done():
        moving = {}
    if missing or moving:
        store.set_aliases({**missing, **moving})
    removed = []
    if moving and not keep_old:
        prefixes = tuple(f"{alias}." for alias in targets)
        in_use = set(store.aliases().values())
        removed = [n for n in store.collections() if n.startswith(prefixes) and n not in in_use]
        for name in removed:
            store.drop_collection(name)
    after = store.aliases()
    return AliasSwitch({alias: after.get(alias, "") for alias in targets}, moved=bool(moving), removed=removed)
