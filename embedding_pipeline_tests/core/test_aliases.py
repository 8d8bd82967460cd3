"""Collections by version, and searches moved from one version to the next only once it is complete."""

import pytest
from qdrant_client import QdrantClient

from embedding_pipeline.vector_store import CollectionSpec
from embedding_pipeline.vector_store.aliases import CollectionNames, recreate_collections, switch_aliases
from embedding_pipeline.vector_store.server import ServerStore


@pytest.fixture
def store():
    store = ServerStore(QdrantClient(location=":memory:"))
    yield store
    store.close()


def _collections(store, version: str) -> dict[str, str]:
    names = CollectionNames("base", version)
    for name in names.by_kind.values():
        store.ensure_collection(name, CollectionSpec("dense", 4, "bm25", True))
    return names.targets


def test_names_are_the_alias_searches_use_and_a_versioned_physical_collection():
    names = CollectionNames("learn", "abc123")
    assert names.alias("resources") == "learn.resources" and names.physical("resources") == "learn.resources.abc123"
    assert names.targets == {
        "learn.resources": "learn.resources.abc123",
        "learn.content_files": "learn.content_files.abc123",
        "learn.topics": "learn.topics.abc123",
    }


def test_aliases_are_set_at_once_on_first_set_up(store):
    switch = switch_aliases(store, _collections(store, "v1"), every_partition_done=False)
    assert switch.moved is False and store.aliases() == {
        "base.resources": "base.resources.v1",
        "base.content_files": "base.content_files.v1",
        "base.topics": "base.topics.v1",
    }


def test_aliases_move_together_only_when_every_partition_is_done_then_old_collections_go(store):
    switch_aliases(store, _collections(store, "v1"), every_partition_done=False)
    new = _collections(store, "v2")
    waiting = switch_aliases(store, new, every_partition_done=False)
    assert not waiting.moved and set(store.aliases().values()) == {
        "base.resources.v1", "base.content_files.v1", "base.topics.v1"
    }  # fmt: skip
    done = switch_aliases(store, new, every_partition_done=True)
    assert done.moved and store.aliases() == new
    assert sorted(done.removed) == ["base.content_files.v1", "base.resources.v1", "base.topics.v1"]
    assert sorted(store.collections()) == sorted(new.values())


def test_old_collections_are_kept_when_asked(store):
    switch_aliases(store, _collections(store, "v1"), every_partition_done=False)
    moved = switch_aliases(store, _collections(store, "v2"), every_partition_done=True, keep_old=True)
    assert moved.moved and moved.removed == [] and "base.resources.v1" in store.collections()
    assert sorted(moved.kept) == ["base.content_files.v1", "base.resources.v1", "base.topics.v1"]  # named


def test_old_collections_a_killed_switch_left_go_with_the_next_run_but_not_while_a_reembed_fills_new_ones(store):
    """Killed after the aliases moved and before the old collections were dropped: the next run drops them.
    A version the aliases do not point to yet is a re-embed in progress: nothing is dropped then."""
    switch_aliases(store, _collections(store, "v1"), every_partition_done=False)
    v2 = _collections(store, "v2")
    store.set_aliases(v2)  # the switch, cut short before it dropped v1
    v3 = _collections(store, "v3")
    filling = switch_aliases(store, v3, every_partition_done=False)  # a re-embed to v3 under way
    assert filling.removed == [] and len(store.collections()) == 9
    again = switch_aliases(store, v2, every_partition_done=False)  # a run of the live version
    assert sorted(again.removed) == sorted(
        [*v3.values(), "base.content_files.v1", "base.resources.v1", "base.topics.v1"]
    )
    assert sorted(store.collections()) == sorted(v2.values()) and not again.moved


def test_recreating_drops_only_this_versions_collections(store):
    _collections(store, "v1")
    assert sorted(recreate_collections(store, CollectionNames("base", "v1").by_kind)) == [
        "base.content_files.v1",
        "base.resources.v1",
        "base.topics.v1",
    ]
    assert store.collections() == [] and recreate_collections(store, CollectionNames("base", "v1").by_kind) == []


def test_a_reembed_moves_searches_when_its_last_partition_is_done(world):
    """Runs of a partition under another version fill new collections; searches stay until all are done."""
    for partition in ("video", "document"):
        world.run(partition)
    old = world.store.aliases()
    world.names = CollectionNames("test", "v2")
    assert not world.run("video").switch.moved and world.store.aliases() == old
    outcome = world.run("document", every_partition_done=True)
    moved = {alias: name for alias, name in world.names.targets.items() if not alias.endswith(".topics")}
    assert outcome.switch.moved and world.store.aliases() == moved  # no topics run here: no topics alias
    assert sorted(outcome.switch.removed) == sorted(old.values())
