"""One partition's run, start to end, in the order it must happen; and the checks alone.

A run lists the partition's records and the heads Qdrant holds (or the copy its last whole run
saved), plans, writes what is new or changed, deletes what the source no longer lists, verifies
Qdrant against the listing, keeps the heads for the next run, and moves the aliases once a
re-embed is complete. It returns what it did; the caller (an asset, a test) reports it.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.content import NO_RESOURCES, ContentReader, ContentSourceError
from embedding_pipeline.content.queries import TOPICS_PARTITION
from embedding_pipeline.embedding import DenseModel, SparseModel
from embedding_pipeline.partition.heads import (
    Head,
    HeadsFile,
    heads_agree,
    partition_state,
    refresh_heads,
    stored_heads,
)
from embedding_pipeline.partition.plan import (
    Plan,
    RunOptions,
    Verification,
    check_deletions,
    find_damage,
    make_plan,
    verify,
)
from embedding_pipeline.partition.records import list_records
from embedding_pipeline.partition.report import LISTED_FAILURES, Report
from embedding_pipeline.partition.write import PartitionWriter, timed
from embedding_pipeline.vector_store import VectorStore, collection_spec
from embedding_pipeline.vector_store.aliases import AliasSwitch, CollectionNames, recreate_collections, switch_aliases
from embedding_pipeline.vector_store.repair import lost_line, points_lost

SAVED_HEADS = "the last whole run (Qdrant unchanged since)"
LOG = logging.getLogger(__name__)


class Log(Protocol):
    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...


@dataclass
class Partition:
    """Where one partition's records come from and go, and the models that embed them."""

    resource_type: str
    reader: ContentReader
    store: VectorStore
    chunker: Chunker
    dense: DenseModel
    sparse: SparseModel
    names: CollectionNames
    location: str  # which Qdrant (a server's URL, the embedded store's folder): saved heads describe one
    log: Log = LOG
    read_all: Callable[[], None] = lambda: None  # called once the last batch is read: a range run begins the next
    models: dict | None = None  # which models make the vectors (ModelIdentity.kept()), kept with what a run makes

    @property
    def collections(self) -> dict[str, str]:
        """kind → the physical collection this version writes: the topics partition writes `topics`, a
        resource type's `resources` and `content_files`."""
        kinds = ("topics",) if self.resource_type == TOPICS_PARTITION else ("resources", "content_files")
        return {kind: self.names.physical(kind) for kind in kinds}

    def legacy_collections(self) -> dict[str, str]:
        """kind → `{base}.{kind}` where that name is a collection of its own, not our alias: a deployment of
        mit-learn's own embedding tasks, taken over (its vectors are reused, then the aliases replace it)."""
        physical = set(self.store.collections())
        return {kind: self.names.alias(kind) for kind in self.collections if self.names.alias(kind) in physical}

    def dense_sizes(self) -> dict[str, int | None]:
        """Physical collection → the dimension of its dense vector named after the encoder."""
        return {
            name: self.store.dense_sizes(name).get(self.dense.vector_name)
            for name in self.collections.values()
            if self.store.collection_exists(name)
        }


@dataclass
class Outcome:
    names: CollectionNames
    plan: Plan
    report: Report
    verification: Verification
    dense_sizes: dict[str, int | None]
    switch: AliasSwitch | None = None  # what `move_aliases` did after the run


def run_partition(
    part: Partition, options: RunOptions, heads_file: HeadsFile, verify_every_point: bool = False
) -> Outcome:
    """Bring Qdrant in step with the partition's records (as far as `options` scope the run).

    `verify_every_point` lists every point instead of trusting counts (a failed check asked for it). The aliases
    are `move_aliases`' business, once the caller knows whether every partition holds this version.
    """
    part.reader.blocklisted()  # a course blocklist that cannot be read stops the run before anything changes
    if options.recreate_collections:
        heads_file.forget()
        for name in recreate_collections(part.store, part.collections):
            part.log.warning(f"Dropped {name} (recreate_collections)")
    report = Report()
    verify_every_point = _points_lost(part) or verify_every_point
    saved = None if verify_every_point else _saved_heads(part, heads_file, report)
    plan = _plan(part, options, saved, verify_every_point, report)
    check_deletions(plan, part.resource_type, options.max_delete_share)
    if plan.touches_qdrant:
        heads_file.forget()  # saved again below, once Qdrant is checked
        for name in part.collections.values():
            part.store.begin_writes(name)
    PartitionWriter(
        part.store, part.reader, part.chunker, part.dense, part.sparse, part.collections, part.names.version,
        part.resource_type, options, report, part.log.info, legacy=part.legacy_collections(), read_all=part.read_all,
    ).write(plan, _spec(part))  # fmt: skip
    verification = _verify_and_keep_heads(part, plan, report, options, heads_file, saved, verify_every_point)
    _log_outcome(part, plan, report)
    return Outcome(part.names, plan, report, verification, part.dense_sizes())


def move_aliases(part: Partition, outcome: Outcome, every_partition_done: bool, keep_old: bool) -> AliasSwitch:
    """After a run: make the aliases that do not exist yet; move them all to this version's collections once
    `every_partition_done` (a re-embed is then complete), then drop the old collections (unless `keep_old`)."""
    switch = switch_aliases(part.store, part.names.targets, every_partition_done, keep_old=keep_old)
    if switch.moved:
        part.log.info(f"Searches now use {sorted(switch.searches_use.values())}")
    if switch.removed:
        part.log.info(f"Removed old collections {switch.removed}")
    if switch.kept:
        part.log.info(f"Old collections kept (QDRANT_KEEP_OLD_COLLECTIONS): {switch.kept}")
    outcome.switch = switch
    return switch


def check_partition(part: Partition, exempt: set[str]) -> tuple[Verification, dict[str, int | None]]:
    """The checks alone, on what Qdrant holds now: every point listed. `exempt`: ids of records that
    failed in the last run (they keep their old points, or have none)."""
    verification = verify(part.store, part.collections, part.resource_type, list_records(part.reader), exempt)
    return verification, part.dense_sizes()


def _spec(part: Partition) -> Callable:
    def spec(kind: str):
        made = collection_spec(
            kind, part.dense.vector_name, part.dense.dim, part.sparse.vector_name, part.sparse.uses_idf
        )
        return replace(made, models=part.models)

    return spec


def _points_lost(part: Partition) -> bool:
    """Whether a collection of the run holds fewer points than the last run left (files deleted or cut short since),
    said in a line each: the run then compares every point, and writes the lost ones again."""
    lost = points_lost(part.store, list(part.collections.values()))
    for name, (held, left) in lost.items():
        part.log.warning(f"{part.resource_type}: {lost_line(name, held, left)}; every point is compared")
    return bool(lost)


def _saved_heads(part: Partition, heads_file: HeadsFile, report: Report) -> dict[str, Head] | None:
    """The heads the partition's last whole run saved, if Qdrant holds as many points as it left and a
    sample of them agrees with Qdrant's; else None (the run reads them from Qdrant)."""
    with timed(report, "heads"):
        state = partition_state(part.store, part.collections, part.resource_type, part.location)
        saved = heads_file.load(state)
        if saved is not None and not heads_agree(part.store, part.collections, saved):
            part.log.warning(
                f"{part.resource_type}: Qdrant's heads differ from those the last run left; all are read again"
            )
            return None
    if saved is not None:
        report.heads_from = SAVED_HEADS
    return saved


def _plan(part: Partition, options: RunOptions, heads, full: bool, report: Report) -> Plan:
    """List the records, take the heads (read from Qdrant unless given), find damage, and plan."""
    with timed(report, "fetch"):
        listing = list_records(part.reader)
    if heads is None:
        with timed(report, "heads"):
            heads = stored_heads(part.store, part.collections, part.resource_type)
    if not listing.records and not listing.failed and part.reader.holds_no_resources():
        raise ContentSourceError(part.reader.database.url, NO_RESOURCES)
    damage = find_damage(part.store, part.collections, part.resource_type, heads, listing.records, full)
    if damage.missing or damage.extra:
        part.log.info(
            f"{part.resource_type}: Qdrant was out of step ({len(damage.missing)} points missing, "
            f"{len(damage.extra)} extra): {len(damage.records)} records are written again"
        )
    report.records_listed.update(r.kind for r in listing.records.values())
    for who, reason in listing.failed.items():
        report.fail(who, reason)
    plan = make_plan(listing, heads, damage, options)
    part.log.info(
        f"{part.resource_type}: {len(listing.records)} records listed: {len(plan.new)} new, {len(plan.changed)} "
        f"changed, {len(plan.unchanged)} unchanged, {len(plan.deleted)} deleted"
    )
    return plan


def _verify_and_keep_heads(part, plan, report, options, heads_file, saved, full) -> Verification:
    """Verify Qdrant against the listing; keep the heads for the next run only if it passed."""
    names = part.collections
    touched = plan.touches_qdrant
    heads = refresh_heads(part.store, names, plan.heads, plan.todo, plan.deleted) if touched else plan.heads
    verification = verify(
        part.store, names, part.resource_type, plan.listing, report.failed_record_ids, full,
        heads=heads, damage=None if touched else plan.damage,
    )  # fmt: skip
    if not verification.passed:
        heads_file.forget()
    elif not options.scoped and (touched or saved is None):
        heads_file.save(heads, partition_state(part.store, names, part.resource_type, part.location))
    return verification


def _log_outcome(part: Partition, plan: Plan, report: Report) -> None:
    for reason in list(report.failures.values())[:LISTED_FAILURES]:
        part.log.warning(f"Not embedded: {reason}")
    for message in (plan.listing.duplicates + report.shared_keys)[:LISTED_FAILURES]:
        part.log.warning(f"Duplicate record key: {message}")
