"""The vector store: one conformance suite for every implementation, and what only the embedded engine does.

Implementations:
- `edge`: the Qdrant engine embedded in-process (qdrant-edge), the default;
- `client_memory_stand_in_for_server`: qdrant-client in `:memory:` mode, standing in for a Qdrant
  server. It exercises our qdrant-client calls and models, not HTTP and not the server's engine
  (no Qdrant server can be installed on these machines);
- `real_server`: a Qdrant server at EMBEDDING_PIPELINE_TEST_QDRANT_URL, when one is given.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from qdrant_client import QdrantClient

from embedding_pipeline.vector_store import (
    PAYLOAD_INDEXES,
    CollectionMismatch,
    CollectionSpec,
    MissingCollection,
    Point,
    SparseVector,
    StoreBusy,
)
from embedding_pipeline.vector_store.edge import EdgeStore
from embedding_pipeline.vector_store.server import ServerStore
from embedding_pipeline_tests.support.helpers import hold_store, resource

DIM = 16
SPEC = CollectionSpec("dense", DIM, "bm25", True, PAYLOAD_INDEXES["content_files"])
TYPES = ["course", "video", "document"]
SERVER_URL = os.environ.get("EMBEDDING_PIPELINE_TEST_QDRANT_URL", "")


def make_points(n: int, seed: int = 0, prefix: str = "p") -> list[Point]:
    """Points with clustered unit vectors, BM25-like sparse vectors and the payload fields searches filter on."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((8, DIM))
    points = []
    for i in range(n):
        dense = centers[i % 8] + 0.3 * rng.standard_normal(DIM)
        terms = sorted(set((rng.zipf(1.5, 12) % 3000).tolist()))
        points.append(
            Point(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}{i}")),
                vectors={
                    "dense": (dense / np.linalg.norm(dense)).tolist(),
                    "bm25": SparseVector(terms, rng.uniform(0.5, 3.0, len(terms)).round(3).tolist()),
                },
                payload={
                    "resource_type": TYPES[i % 3],
                    "platform": "ocw" if i % 2 else "mitx",
                    "record_key": f"{prefix}-record-{i // 2}",
                    "point_hash": f"h{i}",
                    "key": f"file-{i}.md",
                    "n": i,
                },
            )
        )
    return points


@pytest.fixture(params=["edge", "client_memory_stand_in_for_server", "real_server"])
def store(request, tmp_path):
    if request.param == "edge":
        store = EdgeStore(tmp_path / "qdrant")
    elif request.param == "client_memory_stand_in_for_server":
        store = ServerStore(QdrantClient(location=":memory:"))
    else:
        if not SERVER_URL:
            pytest.skip("No Qdrant server given (EMBEDDING_PIPELINE_TEST_QDRANT_URL); none can be installed here")
        store = ServerStore(QdrantClient(url=SERVER_URL, timeout=30))
        for name in store.collections():
            if name.startswith("conformance."):
                store.drop_collection(name)
    yield store
    store.close()


def filled(store, n: int = 60, name: str = "conformance.c.v1") -> tuple[str, list[Point]]:
    store.create_collection(name, SPEC)
    points = make_points(n)
    store.upsert(name, points)
    store.finish_writes(name)
    return name, points


# The conformance suite: each test runs against every implementation.


def test_collections_are_created_listed_and_dropped(store):
    assert not store.collection_exists("conformance.a.v1")
    assert store.ensure_collection("conformance.a.v1", SPEC) is True
    assert store.ensure_collection("conformance.a.v1", SPEC) is False
    assert "conformance.a.v1" in store.collections()
    assert store.dense_sizes("conformance.a.v1") == {"dense": DIM}
    store.drop_collection("conformance.a.v1")
    assert "conformance.a.v1" not in store.collections()


def test_a_collection_of_another_dimension_fails_with_both_named(store):
    store.create_collection("conformance.a.v1", SPEC)
    wider = CollectionSpec("dense", 768, "bm25", True)
    with pytest.raises(CollectionMismatch, match=r"'dense': 16.*'dense' of dimension 768"):
        store.ensure_collection("conformance.a.v1", wider)


def test_upsert_count_retrieve_delete(store):
    name, points = filled(store)
    assert store.count(name) == 60
    assert store.count(name, {"resource_type": "video"}) == 20
    assert store.count(name, {"resource_type": ["video", "course"]}) == 40
    ((pid, payload, vectors),) = store.retrieve(name, [points[5].id], with_vectors=True)
    assert pid == points[5].id and payload["n"] == 5
    assert np.allclose(vectors["dense"], points[5].vectors["dense"], atol=1e-6)
    assert vectors["bm25"].indices == points[5].vectors["bm25"].indices
    store.delete(name, [points[5].id, points[6].id])
    assert store.count(name) == 58 and store.retrieve(name, [points[5].id]) == []
    store.upsert(name, [Point(points[7].id, points[7].vectors, {**points[7].payload, "point_hash": "new"})])
    assert store.count(name) == 58 and store.retrieve(name, [points[7].id])[0][1]["point_hash"] == "new"


def test_scroll_pages_through_every_point_with_the_fields_asked_for(store):
    name = "conformance.c.v1"
    store.create_collection(name, SPEC)
    points = make_points(4500)  # more than two scroll pages
    for start in range(0, len(points), 1000):
        store.upsert(name, points[start : start + 1000])
    assert len(dict(store.scroll(name))) == 4500
    videos = dict(store.scroll(name, {"resource_type": "video"}, fields=["record_key", "point_hash"]))
    assert videos == {
        p.id: {"record_key": p.payload["record_key"], "point_hash": p.payload["point_hash"]}
        for p in points
        if p.payload["resource_type"] == "video"
    }
    only_keys = dict(store.scroll(name, {"platform": "ocw"}, fields=["key"]))
    assert len(only_keys) == 2250 and all(set(payload) == {"key"} for payload in only_keys.values())


def test_dense_query_ranks_by_cosine_and_filters(store):
    name, points = filled(store)
    query = points[10].vectors["dense"]
    hits = store.query_nearest(name, query, "dense", 5)
    assert hits[0].id == points[10].id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    filtered = store.query_nearest(name, query, "dense", 5, {"resource_type": "course", "platform": "mitx"})
    assert filtered and all(
        h.payload["resource_type"] == "course" and h.payload["platform"] == "mitx" for h in filtered
    )


def test_hybrid_query_fuses_dense_and_sparse(store):
    name, points = filled(store)
    target = points[20]
    hits = store.query_hybrid(name, target.vectors["dense"], "dense", target.vectors["bm25"], "bm25", 5)
    assert hits[0].id == target.id and len(hits) == 5
    assert hits[0].score == pytest.approx(1.0)  # first in both lists: 1/(1 + RRF_K - 1) twice, with k = 2
    filtered = store.query_hybrid(
        name, target.vectors["dense"], "dense", target.vectors["bm25"], "bm25", 5, {"resource_type": "video"}
    )
    assert all(h.payload["resource_type"] == "video" for h in filtered)


def test_similar_excludes_the_point_itself(store):
    name, points = filled(store)
    hits = store.query_similar(name, points[3].id, "dense", 5)
    assert len(hits) == 5 and points[3].id not in {h.id for h in hits}
    assert hits[0].payload["n"] % 8 == 3  # its own cluster
    with pytest.raises(KeyError):
        store.query_similar(name, str(uuid.uuid4()), "dense", 5)


def test_aliases_point_at_collections_and_move_together(store):
    name, _ = filled(store)
    store.create_collection("conformance.d.v1", SPEC)
    store.set_aliases({"conformance.c": name, "conformance.d": "conformance.d.v1"})
    assert store.aliases() == {"conformance.c": name, "conformance.d": "conformance.d.v1"}
    assert store.count("conformance.c") == 60 and store.resolve("conformance.c") == name
    store.create_collection("conformance.c.v2", SPEC)
    store.create_collection("conformance.d.v2", SPEC)
    store.set_aliases({"conformance.c": "conformance.c.v2", "conformance.d": "conformance.d.v2"})
    assert store.aliases() == {"conformance.c": "conformance.c.v2", "conformance.d": "conformance.d.v2"}
    assert store.count("conformance.c") == 0
    store.drop_collection("conformance.c.v2")  # its alias goes with it
    assert "conformance.c" not in store.aliases()


def test_a_missing_collection_is_named(store):
    with pytest.raises(MissingCollection, match="conformance.nothing"):
        store.query_nearest("conformance.nothing", [0.1] * DIM, "dense", 3)


# The differential test: the same points and queries give the same answers on both implementations.


def test_embedded_engine_and_client_agree_on_ids_and_scores(tmp_path):
    edge, client = EdgeStore(tmp_path / "qdrant"), ServerStore(QdrantClient(location=":memory:"))
    points = make_points(400, seed=3)
    queries = make_points(12, seed=4, prefix="q")
    try:
        for store in (edge, client):
            store.create_collection("c", SPEC)
            store.upsert("c", points)
            store.finish_writes("c")
        for query in queries:
            dense, sparse = query.vectors["dense"], query.vectors["bm25"]
            for filters in (
                None,
                {"resource_type": "video"},
                {"platform": "ocw", "resource_type": ["course", "document"]},
            ):
                a, b = (s.query_nearest("c", dense, "dense", 10, filters) for s in (edge, client))
                assert [h.id for h in a] == [h.id for h in b]
                assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
                a, b = (s.query_nearest("c", sparse, "bm25", 10, filters) for s in (edge, client))
                assert [h.id for h in a] == [h.id for h in b]  # BM25 with Qdrant's IDF
                assert np.allclose([h.score for h in a], [h.score for h in b], rtol=1e-4)
                a, b = (s.query_hybrid("c", dense, "dense", sparse, "bm25", 10, filters) for s in (edge, client))
                assert _same_but_ties(a, b)
    finally:
        edge.close()
        client.close()


def _same_but_ties(a, b) -> bool:
    """The same scores, and the same ids for each score; points that tie may come in another order,
    and of a tie cut by the limit, other members may make the list."""
    if not np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6):
        return False
    groups_a, groups_b = _by_score(a), _by_score(b)
    last = min(groups_a, default=None)
    return all(groups_a[score] == groups_b.get(score) for score in groups_a if score != last)


def _by_score(hits) -> dict[float, set[str]]:
    groups: dict[float, set[str]] = {}
    for hit in hits:
        groups.setdefault(round(hit.score, 6), set()).add(hit.id)
    return groups


# What only the embedded engine does: one process at a time, crash safety, and the old local mode.


def test_a_busy_embedded_store_is_waited_for_with_a_message_naming_the_holder(tmp_path):
    holder = hold_store(tmp_path)  # gives the store up once this process waits for it
    messages = []
    with resource("qdrant", path=str(tmp_path)).get_store(report=messages.append) as store:
        assert store.collections() == []
    assert f"held by pid {holder.pid} (holding test, since" in messages[0]
    assert holder.wait() == 0


def test_a_searching_process_hands_its_stores_over_though_one_was_deleted_under_it(tmp_path):
    """A process that searches keeps its embedded stores open between queries and gives each up to a process that
    waits for it; one store's folder deleted under it (a data folder wiped) must not end that for the others."""
    from embedding_pipeline.resources.qdrant import close_query_stores

    gone, kept = tmp_path / "gone", tmp_path / "kept"
    try:
        for path in (gone, kept):
            with resource("qdrant", path=str(path)).get_store_for_queries("search", wait_seconds=5) as store:
                assert store.collections() == []
        shutil.rmtree(gone)
        time.sleep(0.5)  # the hand-over meets the deleted folder
        opens = "import sys; from embedding_pipeline.vector_store.edge import EdgeStore as S; S(sys.argv[1], wait_seconds=20)"
        waiting = subprocess.run([sys.executable, "-c", opens, str(kept)], capture_output=True, text=True, timeout=60)
        assert waiting.returncode == 0, waiting.stderr[-2000:]
    finally:
        close_query_stores()


def test_waiting_has_a_limit_with_a_clear_error(tmp_path):
    holder = hold_store(tmp_path, until="killed")
    try:
        busy = pytest.raises(StoreBusy, match=f"still held by pid {holder.pid}")
        with busy, resource("qdrant", path=str(tmp_path), lock_wait_seconds=1).get_store():
            pass
    finally:
        holder.kill()


def test_a_killed_writer_leaves_no_lock_and_loses_no_acknowledged_point(tmp_path):
    write = (
        "import sys; from embedding_pipeline.vector_store.edge import EdgeStore; "
        "from embedding_pipeline_tests.e2e.test_vector_store import make_points, SPEC; "
        "s = EdgeStore(sys.argv[1]); s.create_collection('c', SPEC); points = make_points(3000); "
        "[s.upsert('c', points[i:i + 500]) for i in range(0, 3000, 500)]; print('written', flush=True); "
        "import time; time.sleep(60)"
    )
    writer = subprocess.Popen([sys.executable, "-c", write, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "written"
    writer.kill()  # kill -9: no flush, no close, the lock still taken
    writer.wait()
    with resource("qdrant", path=str(tmp_path), lock_wait_seconds=5).get_store() as store:
        assert store.count("c") == 3000


def test_a_long_write_is_indexed_and_reopened_on_the_way_and_loses_nothing(tmp_path, monkeypatch, caplog):
    """A full run writes a partition's points into the same shards: once a shard holds REINDEX_EVERY_BYTES
    of them, the store indexes and reopens it (which frees what it held). Points, queries and later
    writes go on as before; points written after a reopen are there too."""
    import embedding_pipeline.vector_store.edge as edge_store

    points = make_points(450)
    monkeypatch.setattr(edge_store, "REINDEX_EVERY_BYTES", sum(edge_store.held_bytes(p) for p in points[:100]))
    caplog.set_level("INFO", logger=edge_store.__name__)
    store = EdgeStore(tmp_path, index_on_release=True)
    store.create_collection("c", SPEC)
    for start in range(0, 450, 30):
        store.upsert("c", points[start : start + 30])
    store.delete("c", [points[0].id])
    assert len([r for r in caplog.records if "indexed and reopened" in r.message]) == 3  # about every 120 points
    assert store.count("c") == 449 and store.count("c", {"resource_type": "video"}) == 150
    hits = store.query_nearest("c", points[7].vectors["dense"], "dense", 1)
    assert hits[0].id == points[7].id
    store.close()
    reopened = EdgeStore(tmp_path)
    assert reopened.count("c") == 449 and reopened.retrieve("c", [points[449].id])[0][1]["n"] == 449
    reopened.close()


def test_each_reindex_indexes_the_points_written_since_the_last(tmp_path, monkeypatch):
    """At the pipeline's vector size, a reindex builds the index of the points written since the one
    before, not of twice as many every second time: a build's moment of extra memory is that of one
    reindex's points. Points written after it wait for the next (and are searched exactly meanwhile)."""
    import qdrant_edge as edge

    import embedding_pipeline.vector_store.edge as edge_store

    rng = np.random.default_rng(0)
    store = EdgeStore(tmp_path)
    store.create_collection("c", CollectionSpec("dense", 384, "bm25", True, PAYLOAD_INDEXES["content_files"]))
    every = 14_000  # points a reindex takes here: past the indexing threshold (about 13,000 such points)
    points = [
        Point(str(uuid.uuid5(uuid.NAMESPACE_URL, str(n))), {"dense": rng.standard_normal(384).tolist()}, {"n": n})
        for n in range(every + 300)
    ]
    monkeypatch.setattr(edge_store, "REINDEX_EVERY_BYTES", every * edge_store.held_bytes(points[0]))
    count = len(points)
    for start in range(0, count, 100):
        store.upsert("c", points[start : start + 100])
    store.close()
    shard = edge.EdgeShard.load(str(tmp_path / "collections" / "c"))
    info = shard.info()
    shard.close()
    assert (info.points_count, info.indexed_vectors_count, info.segments_count) == (count, every, 2)


def test_points_of_long_texts_are_reindexed_sooner_so_what_a_shard_holds_stays_bounded(tmp_path, monkeypatch, caplog):
    """A resource's text with its own files folded in takes up to 20,000 characters: some 1,500 sparse terms,
    held at about 45 bytes each until the shard is reindexed. The store counts what it holds, not points."""
    import embedding_pipeline.vector_store.edge as edge_store

    monkeypatch.setattr(edge_store, "REINDEX_EVERY_BYTES", 2_000_000)
    caplog.set_level("INFO", logger=edge_store.__name__)
    rng = np.random.default_rng(0)

    def points(terms: int, prefix: str) -> list[Point]:
        return [
            Point(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}{n}")), {
                "dense": rng.standard_normal(DIM).tolist(),
                "bm25": SparseVector(sorted(rng.choice(100_000, terms, replace=False).tolist()), [1.0] * terms),
            }, {"n": n})
            for n in range(100)
        ]  # fmt: skip

    store = EdgeStore(tmp_path)
    store.create_collection("c", SPEC)
    for batch in range(0, 100, 10):
        store.upsert("c", points(12, "short")[batch : batch + 10])
    assert not [r for r in caplog.records if "indexed and reopened" in r.message]  # 100 short texts: 0.3 MB
    long = points(1_500, "long")
    for batch in range(0, 100, 10):
        store.upsert("c", long[batch : batch + 10])
    assert len([r for r in caplog.records if "indexed and reopened" in r.message]) == 3  # 7 MB: every ~30 points
    assert store.count("c") == 200
    store.close()


def test_the_write_ahead_log_stays_small_however_much_is_written(tmp_path):
    """qdrant-edge's WAL files are 32 MB each by default (an open one, the next, a closed one kept), all
    mapped into the process and read at every open. The store's collections use 4 MB files: 14 MB
    written leave at most four of them, and every point is there after a reopen."""
    store = EdgeStore(tmp_path)
    store.create_collection("c", SPEC)
    points = make_points(600)
    for point in points:
        point.payload["text"] = f"{point.id} " + "lorem ipsum " * 2000  # 24 KB a point
    for start in range(0, 600, 50):
        store.upsert("c", points[start : start + 50])
    store.close()
    wal = list((tmp_path / "collections" / "c" / "wal").iterdir())
    assert sum(f.stat().st_size for f in wal) <= 4 * 4 * 1024 * 1024, sorted((f.name, f.stat().st_size) for f in wal)
    reopened = EdgeStore(tmp_path)
    assert reopened.count("c") == 600
    assert reopened.retrieve("c", [points[599].id])[0][1]["text"] == points[599].payload["text"]
    reopened.close()


def test_a_collection_the_embedded_store_makes_opens_with_its_options(tmp_path):
    """Small WAL files and capped, indexed segments: the engine reads them from the shard's own config at every open."""
    import embedding_pipeline.vector_store.edge as edge_store

    store = EdgeStore(tmp_path)
    store.create_collection("c", SPEC)
    points = make_points(40)
    store.upsert("c", points)
    store.close()
    persisted = json.loads((tmp_path / "collections" / "c" / "edge_config.json").read_text())
    assert persisted["wal_options"]["segment_capacity"] == 4 * 1024 * 1024
    assert persisted["optimizers"]["default_segment_number"] == edge_store.SEGMENTS
    assert edge_store.MAX_SEGMENT_KB and persisted["optimizers"]["max_segment_size"] == edge_store.MAX_SEGMENT_KB
    assert persisted["optimizers"]["indexing_threshold"] == edge_store.INDEXING_THRESHOLD_KB
    reopened = EdgeStore(tmp_path)
    assert reopened.count("c") == 40
    assert reopened.query_nearest("c", points[3].vectors["dense"], "dense", 1)[0].id == points[3].id
    reopened.close()
