"""Which collections a deployment has, and moving searches from one version of them to the next.

Searches use `{base}.{kind}`, an alias; points are written into the physical `{base}.{kind}.{version}`,
where the version hashes what determines the vectors. A re-embed fills the new version while
searches stay on the old one; the aliases move together once every partition is done.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from embedding_pipeline.vector_store import COLLECTION_KINDS, CollectionSpec, VectorStore


@dataclass(frozen=True)
class CollectionNames:
    base: str  # QDRANT_COLLECTION_NAME
    version: str  # the vectors' version (settings.vectors_version)

    def alias(self, kind: str) -> str:
        """The name searches use."""
        return f"{self.base}.{kind}"

    def physical(self, kind: str) -> str:
        """The collection this version's points are written into."""
        return f"{self.base}.{kind}.{self.version}"

    @property
    def by_kind(self) -> dict[str, str]:
        """kind → physical collection, for every kind."""
        return {kind: self.physical(kind) for kind in COLLECTION_KINDS}

    @property
    def targets(self) -> dict[str, str]:
        """alias → physical collection, for every kind."""
        return {self.alias(kind): self.physical(kind) for kind in COLLECTION_KINDS}


def recreate_collections(store: VectorStore, names: dict[str, str]) -> list[str]:
    """Drop the collections that exist (the old `--recreate-collections`); returns what was dropped.

    They are made again, empty, when points are next written into them.
    """
    dropped = [name for name in names.values() if store.collection_exists(name)]
    for name in dropped:
        store.drop_collection(name)
    return dropped


def ensure_collections(store: VectorStore, names: dict[str, str], spec: Callable[[str], CollectionSpec]) -> None:
    """kind → physical name: create what is missing; an existing collection must fit `spec(kind)`."""
    for kind, name in names.items():
        store.ensure_collection(name, spec(kind))


@dataclass
class AliasSwitch:
    searches_use: dict[str, str]  # alias → physical collection, after the call
    moved: bool = False
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # old collections left in place (QDRANT_KEEP_OLD_COLLECTIONS)


def switch_aliases(
    store: VectorStore, targets: dict[str, str], every_partition_done: bool, keep_old: bool = False
) -> AliasSwitch:
    """Point the aliases at their new collections; then drop the old collections.

    An alias that does not exist yet is created at once (no search uses it). Aliases that exist
    move together, and only when `every_partition_done`: a re-embed is then complete, and
    searches never see a collection half filled with the new model. A collection of its own under an
    alias's name (mit-learn's embedding tasks made `{base}.resources` so) counts as an alias in use:
    searches keep reading it until every partition is done; then it is dropped and the alias made in
    its place at once, the only moment a search finds no collection by that name.
    """
    current, physical = store.aliases(), set(store.collections())
    wanted = {alias: name for alias, name in targets.items() if store.collection_exists(name)}
    taken_over = {alias: name for alias, name in wanted.items() if alias in physical}
    missing = {alias: name for alias, name in wanted.items() if alias not in current and alias not in taken_over}
    moving = {alias: name for alias, name in wanted.items() if alias in current and current[alias] != name}
    if (moving or taken_over) and not every_partition_done:
        moving, taken_over = {}, {}
    for alias in taken_over:
        store.drop_collection(alias)
    moving |= taken_over
    if missing or moving:
        store.set_aliases({**missing, **moving})
    after = store.aliases()
    old = _old_collections(store, targets, after)
    if not keep_old:
        for name in old:
            store.drop_collection(name)
    return AliasSwitch(
        {alias: after.get(alias, "") for alias in targets}, moved=bool(moving),
        removed=[] if keep_old else old, kept=old if keep_old else [],
    )  # fmt: skip


def _old_collections(store: VectorStore, targets: dict[str, str], aliases: dict[str, str]) -> list[str]:
    """Physical collections of this deployment (`{alias}.{version}`) that no alias points to, once every alias
    points to this version's collection: no re-embed is in progress then, so they are what earlier versions
    left (also when a run was killed between moving the aliases and dropping them)."""
    if any(aliases.get(alias, name) != name for alias, name in targets.items()):
        return []  # a re-embed in progress: the collections searches use stay
    prefixes = tuple(f"{alias}." for alias in targets)
    in_use = set(aliases.values()) | set(targets.values())
    return [name for name in store.collections() if name.startswith(prefixes) and name not in in_use]
