"""What a run does, decided before it writes: which records are new, changed, unchanged or deleted;
which points do not match their heads (damage); whether it may delete that much; and afterwards,
whether Qdrant holds exactly what the source lists (verification)."""

import random
from dataclasses import dataclass, field

from embedding_pipeline.errors import PermanentError
from embedding_pipeline.mit_learn import OWN
from embedding_pipeline.partition.heads import Head, of_type, stored_heads
from embedding_pipeline.partition.records import Listing, Record, point_ids, resource_of
from embedding_pipeline.vector_store import VectorStore


@dataclass(frozen=True)
class RunOptions:
    """What a run is asked to do (the old command's flags, and the sizes of its work)."""

    batch_size: int = 100  # records per batch (QDRANT_CHUNK_SIZE)
    upload_batch_size: int = 1000  # points per upsert request (QDRANT_POINT_UPLOAD_BATCH_SIZE)
    force: bool = False  # embed every text again and write every point (--overwrite)
    resource_ids: frozenset[int] = frozenset()  # only these resources and their files; empty: all
    content_files: bool = True  # False: resources only, content-file points left as they are
    max_delete_share: float | None = None  # a run that would delete more of the partition's points fails
    recreate_collections: bool = False  # drop the collections first (--recreate-collections)

    @property
    def scoped(self) -> bool:
        """The run covers only part of the partition."""
        return bool(self.resource_ids) or not self.content_files

    def in_scope(self, record: Record) -> bool:
        if record.kind == "content_file" and not self.content_files:
            return False
        return not self.resource_ids or resource_of(record) in self.resource_ids

    def scope(self) -> str:
        """What a run limited to part of the partition embeds, in words; empty for a whole run."""
        which = f"resources {', '.join(map(str, sorted(self.resource_ids)))}" if self.resource_ids else ""
        if not self.content_files:
            return f"{which or 'the learning resources'}, content files left as they are"
        return f"{which} and their content files" if which else ""


@dataclass
class Damage:
    """Points that do not match the heads: a run cut short between two writes, or a hand in Qdrant."""

    records: set[str] = field(default_factory=set)  # record ids with a point missing or too many
    strays: dict[str, set[str]] = field(default_factory=dict)  # listed record id → its points its head does not count
    orphans: dict[str, list[str]] = field(default_factory=dict)  # collection → points no listed record owns
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
        if not full and store.count(name, of_type(resource_type)) == sum(h.chunk_count for h in mine):
            continue
        expected: dict[str, str] = {}  # point id → record id
        for head in mine:
            record = records.get(head.record_id) or head.record()
            expected.update(dict.fromkeys(point_ids(record, head.chunk_count), head.record_id))
        present = {pid: payload.get(OWN, {}) for pid, payload in store.scroll(name, of_type(resource_type), [OWN])}
        for pid in expected.keys() - present.keys():
            damage.records.add(expected[pid])
            damage.missing.append(pid)
        for pid in present.keys() - expected.keys():
            damage.extra.append(pid)
            record_id = present[pid].get("record_id")
            if record_id in records:  # written again: its stray points go with that write, never before it
                damage.records.add(record_id)
                damage.strays.setdefault(record_id, set()).add(pid)
            else:
                damage.orphans.setdefault(name, []).append(pid)
    return damage


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
        files in source order (their chunks are mostly full-sized), then course information; a batch holds one kind."""
        return sorted(self.new + self.changed, key=lambda r: (r.kind != "resource", r.kind, r.size, r.source_id))

    @property
    def touches_qdrant(self) -> bool:
        return bool(self.todo or self.deleted or any(self.damage.orphans.values()))


def make_plan(listing: Listing, heads: dict[str, Head], damage: Damage, options: RunOptions | None = None) -> Plan:
    """What a run does: with `options` scoped, records out of scope are left alone, and a run
    limited to some resources deletes nothing (it cannot tell a deleted record from one out of scope)."""
    force = options is not None and options.force
    new, changed, unchanged = [], [], []
    for record_id, record in listing.records.items():
        head = heads.get(record_id)
        if options is not None and not options.in_scope(record):
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
        deleted = [] if options.resource_ids else [h for h in deleted if h.kind != "content_file"]
    return Plan(listing, heads, new, changed, unchanged, deleted, damage)


class MassDeletion(PermanentError):
    """A run would delete more of a partition's points than it may."""


def check_deletions(plan: Plan, resource_type: str, max_share: float | None) -> None:
    """A source that suddenly lists far fewer records (a wrong or emptied database) must not empty Qdrant."""
    doomed = sum(head.chunk_count for head in plan.deleted)
    stored = sum(head.chunk_count for head in plan.heads.values())
    if max_share is None or not doomed or (doomed < stored and doomed <= max_share * stored):
        return
    raise MassDeletion(
        f"{resource_type}: this run would delete {doomed} of the partition's {stored} points "
        f"({len(plan.deleted)} records the content source no longer lists; it lists {len(plan.listing.records)}), "
        f"more than QDRANT_MAX_DELETE_SHARE={max_share:g} allows. Nothing was written or deleted. If the content "
        "database is right, run again with `resources: {embed_options: {config: {allow_mass_deletion: true}}}` "
        "(embedding-pipeline embed --allow-mass-deletion); if not, check CONTENT_DATABASE_URL."
    )


PROBED = 10  # heads a verification reads back with their vectors, and searches for by their own vector


def probe(store: VectorStore, names: dict[str, str], heads: list[Head], sample: int = PROBED) -> list[str]:
    """Heads picked at random that Qdrant cannot give back as written: retrieved by id, each must be the
    record's own point, with its vectors, and a search by its dense vector must find a point that close.
    Counts and ids alone pass a store whose id mappings or vectors are damaged; a file that cannot be read
    at all raises `StoreDamaged` here, naming it."""
    problems = []
    for head in random.sample(heads, min(sample, len(heads))):
        name = names[head.collection]
        found = store.retrieve(name, [head.record_id], with_vectors=True, fields=[OWN])
        stored = found[0] if found else None
        if stored is None or stored[1].get(OWN, {}).get("record_id") != head.record_id:
            problems.append(f"{head.record_key}: Qdrant gives another point for its id {head.record_id}")
            continue
        dense = next(((using, v) for using, v in stored[2].items() if isinstance(v, list)), None)
        if dense is None:
            problems.append(f"{head.record_key}: its point has no dense vector")
        elif any(dense[1]) and not any(hit.score > 0.999 for hit in store.query_nearest(name, dense[1], dense[0], 10)):
            problems.append(f"{head.record_key}: a search by its own vector does not find it")
    return problems


@dataclass
class Verification:
    """Does Qdrant hold exactly the partition's records, as the source has them now?"""

    expected_points: int
    points_in_qdrant: int
    missing: list[str]  # point ids, or the keys of records never written
    extra: list[str]  # point ids, or deleted records with their point counts
    out_of_date: list[str]  # keys of records whose stored fingerprint is not the source's
    every_point_listed: bool
    unreadable: list[str] = field(default_factory=list)  # sampled points Qdrant answers wrongly for

    @property
    def passed(self) -> bool:
        """Also the counts: two records that claimed one point would match every id and still be one point short."""
        counts_match = self.expected_points == self.points_in_qdrant
        return counts_match and not self.missing and not self.extra and not self.out_of_date and not self.unreadable


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
        store.count(name, of_type(resource_type)) for name in names.values() if store.collection_exists(name)
    )
    deleted = {h.record_id for h in plan.deleted}
    return Verification(
        unreadable=probe(store, names, [h for h in heads.values() if h.record_id not in deleted]),
        expected_points=sum(h.chunk_count for h in heads.values() if h.record_id not in deleted) + len(unwritten),
        points_in_qdrant=in_qdrant,
        missing=damage.missing + [f"{r.record_key} (not written)" for r in unwritten],
        extra=damage.extra + [f"{h.record_key} ({h.chunk_count} points)" for h in plan.deleted],
        out_of_date=[r.record_key for r in stale],
        every_point_listed=full,
    )
