"""Rebuilding damaged collections of the embedded store: every point that can still be read, and is the
point its id names, is copied into a fresh collection, which then takes the damaged one's place (the
aliases stay as they are). The points that could not be read are missing afterwards, and the next run
writes them again like any missing point, reusing stored vectors wherever the same text is kept."""

from collections.abc import Callable, Iterator

from embedding_pipeline.mit_learn import OWN, chunk_id
from embedding_pipeline.vector_store import CollectionSpec, Point, StoreDamaged
from embedding_pipeline.vector_store.edge import EdgeStore

PAGE = 256  # points read, checked and copied at a time


def points_lost(store, names: list[str]) -> dict[str, tuple[int | None, int]]:
    """Physical collection → (points it holds, or None if it is gone; points the last run left), for those of
    `names` that hold fewer than the last run left: deleted segments, a damaged id map, a deleted folder."""
    left = store.points_left()
    if not any(name in left for name in names):
        return {}  # a server store keeps no such count; nothing to compare
    physical, lost = set(store.collections()), {}
    for name in names:
        if name not in left:
            continue
        try:
            held = store.count(name) if name in physical else None
        except StoreDamaged:
            continue  # files the engine cannot read: `repair_collection` names and rebuilds them
        if held is None or held < left[name]:
            lost[name] = (held, left[name])
    return lost


def lost_line(name: str, held: int | None, left: int) -> str:
    if held is None:
        return f"{name}: the collection is gone (its folder deleted?); the last run left {left:,} points in it"
    return f"{name}: holds {held:,} of the {left:,} points the last run left (files deleted or cut short?)"


def repair_collection(store: EdgeStore, name: str, spec: CollectionSpec, report: Callable[[str], None]) -> int:
    """Rebuild `name` if any of its points cannot be read or is not the point its id names; the points lost."""
    lost = sum(lost for _, lost in _pages(store, name))
    if not lost:
        report(f"{name}: every point can be read")
        return 0
    staging = f"{name}.repairing"
    if store.collection_exists(staging):  # a repair cut short
        store.drop_collection(staging)
    store.create_collection(staging, spec)
    copied = lost = 0
    for points, lost_here in _pages(store, name):
        store.upsert(staging, points)
        copied, lost = copied + len(points), lost + lost_here
    store.finish_writes(staging)
    store.replace_collection(name, staging)
    report(f"{name}: rebuilt from {copied:,} points that could be read; {lost:,} could not, and are written again")
    return lost


def _pages(store: EdgeStore, name: str) -> Iterator[tuple[list[Point], int]]:
    """The collection's readable points, a page at a time, with how many of the page were lost. A listing of
    ids cut short by damage loses the rest (counted as one: how many is unknown)."""
    ids = []
    try:
        for point_id, _ in store.scroll(name, fields=[]):
            ids.append(point_id)
            if len(ids) == PAGE:
                yield _readable(store, name, ids)
                ids = []
    except StoreDamaged:
        yield [], 1
    if ids:
        yield _readable(store, name, ids)


def _readable(store: EdgeStore, name: str, ids: list[str]) -> tuple[list[Point], int]:
    """These points, read with their vectors; those that cannot be read (halves tried until one is left) or are
    not what their id names are left out and counted."""
    try:
        records = store.retrieve(name, ids, with_vectors=True)
    except StoreDamaged:
        if len(ids) == 1:
            return [], 1
        first, second = _readable(store, name, ids[: len(ids) // 2]), _readable(store, name, ids[len(ids) // 2 :])
        return first[0] + second[0], first[1] + second[1]
    points = [Point(pid, vectors, payload) for pid, payload, vectors in records if _is_its_point(pid, payload)]
    return points, len(ids) - len(points)


def _is_its_point(point_id: str, payload: dict) -> bool:
    """Does the payload belong under this id (damaged id mappings hand out another point's)? Checked from our
    bookkeeping: a head's id is its record's, a chunk's is made of its record's key and its number."""
    own = payload.get(OWN)
    if not own:
        return True  # a point mit-learn wrote, not yet taken over: nothing to check it against
    if own.get("role") == "head":
        return point_id == own.get("record_id")
    number = payload.get("chunk_number")
    return number is None or point_id == chunk_id(own.get("record_key", ""), number)
