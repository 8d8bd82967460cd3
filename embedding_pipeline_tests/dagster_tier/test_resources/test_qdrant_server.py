"""Collections made on a Qdrant server are mit-learn's (vector_search.utils.create_qdrant_collection), and their
optimizer is tuned as its tune_qdrant_collections tunes it.

No Qdrant server installs here: these tests read the requests qdrant-client sends to a recorder of Qdrant's REST
API on 127.0.0.1 (`embedding_pipeline_tests/support/qdrant_recorder.py`). What they cannot check is what a server does
with them (that a cluster places 6 shards on 2 replicas, that strict mode then refuses a filter on an unindexed
field): on a real cluster, `GET /collections/{base}.resources` shows the collection's `config` (docs/mit-learn.md).
"""

import time
import uuid

import pytest
from qdrant_client import QdrantClient

from embedding_pipeline.resources import build_resources
from embedding_pipeline.settings import Settings
from embedding_pipeline.vector_store import Point, collection_spec
from embedding_pipeline.vector_store.aliases import CollectionNames, ensure_collections
from embedding_pipeline.vector_store.server import PARALLEL_UPSERTS, ServerStore
from embedding_pipeline_tests.support.qdrant_recorder import QdrantRecorder

# vector_search.utils.create_qdrant_collection, as the JSON of its request
MIT_LEARNS = {
    "shard_number": 6,
    "replication_factor": 2,
    "on_disk_payload": True,
    "hnsw_config": {"on_disk": False},
    "optimizers_config": {"default_segment_number": 2, "prevent_unoptimized": True},
    "quantization_config": {"binary": {"always_ram": True}},
    "strict_mode_config": {"enabled": True, "unindexed_filtering_retrieve": False, "unindexed_filtering_update": False},
}


@pytest.fixture
def server(monkeypatch):
    with QdrantRecorder() as recorder:
        monkeypatch.setenv("QDRANT_HOST", recorder.url)
        yield recorder


def made(server: QdrantRecorder, version: str) -> dict[str, dict]:
    """Make a version's collections through the `qdrant` resource, as a run (or a re-embed's first run) does."""
    qdrant = build_resources(Settings.from_env())["qdrant"]
    names = CollectionNames("resource_embeddings", version).by_kind
    with qdrant.get_store() as store:
        ensure_collections(store, names, lambda kind: collection_spec(kind, "all-MiniLM-L6-v2", 384, "bm25", True))
    return {name: server.made(name) for name in names.values()}


def test_every_collection_a_run_or_a_re_embed_makes_has_mit_learns_shards_replicas_strict_mode_and_quantization(
    server,
):
    for version in ("v1", "v2"):  # a deployment's first collections, then a re-embed's (blue/green)
        for name, body in made(server, version).items():
            assert {key: body.get(key) for key in MIT_LEARNS} == MIT_LEARNS, name
            assert body["sparse_vectors"]["bm25"] == {"index": {"on_disk": True}, "modifier": "idf"}
            assert body["vectors"]["all-MiniLM-L6-v2"] == {"size": 384, "distance": "Cosine"}


def test_each_parameter_is_a_setting(server, monkeypatch):
    for name, value in {"QDRANT_SHARD_NUMBER": "3", "QDRANT_REPLICATION_FACTOR": "1", "QDRANT_STRICT_MODE": "false",
                        "QDRANT_BINARY_QUANTIZATION": "false", "QDRANT_HNSW_ON_DISK": "true",
                        "QDRANT_ON_DISK_PAYLOAD": "false", "QDRANT_SPARSE_INDEX_ON_DISK": "false",
                        "QDRANT_DEFAULT_SEGMENT_NUMBER": "4", "QDRANT_PREVENT_UNOPTIMIZED": "false"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    body = made(server, "v1")["resource_embeddings.resources.v1"]
    assert (body["shard_number"], body["replication_factor"], body["on_disk_payload"]) == (3, 1, False)
    assert body.get("strict_mode_config") is None and body.get("quantization_config") is None
    assert body["hnsw_config"] == {"on_disk": True} and body["sparse_vectors"]["bm25"]["index"] == {"on_disk": False}
    assert body["optimizers_config"] == {"default_segment_number": 4, "prevent_unoptimized": False}


@pytest.mark.parametrize(
    ("points", "threshold", "flush"),
    [(100, 16_000, 15), (400_000, 48_000, 20), (6_000_000, 96_000, 25), (30_000_000, 200_000, 30)],
)
def test_after_a_run_writes_the_optimizer_is_tuned_by_points_per_shard_once(server, points, threshold, flush):
    """vector_search.utils.compute_optimizer_settings over 6 shards: the segment size of the points per shard, its
    80% the indexing threshold; tune_collection changes nothing that is already so."""
    (name, *_) = made(server, "v1")
    server.points_count = points
    qdrant = build_resources(Settings.from_env())["qdrant"]
    with qdrant.get_store() as store:
        store.finish_writes(name)
        store.finish_writes(name)
    patches = [body for method, path, body in server.requests if method == "PATCH" and path.endswith(name)]
    assert patches == [{"optimizers_config": {"indexing_threshold": threshold, "flush_interval_sec": flush}}]


def test_no_tuning_when_it_is_switched_off(server, monkeypatch):
    monkeypatch.setenv("QDRANT_TUNE_OPTIMIZER", "false")
    (name, *_) = made(server, "v1")
    with build_resources(Settings.from_env())["qdrant"].get_store() as store:
        store.finish_writes(name)
    assert not [path for method, path, _ in server.requests if method == "PATCH"]


def test_a_batchs_upserts_go_to_a_server_together_and_are_all_acknowledged_before_the_write_returns(server):
    """A run writes a batch's chunks, then its heads: each of the two writes sends its parts at once (up to
    PARALLEL_UPSERTS) and returns only when the server acknowledged every one, so no head is sent before the
    chunks of its record are stored. (qdrant-client's local mode, in the other server-path tests, takes them
    one at a time: it runs in the test's process and is not made for threads.)"""
    server.upsert_seconds = 0.3
    store = ServerStore(QdrantClient(url=server.url))
    parts = [[Point(str(uuid.uuid4()), {"dense": [0.1, 0.2]}, {"part": i})] for i in range(2 * PARALLEL_UPSERTS)]
    started = time.monotonic()
    store.upsert_all("resources", parts)
    returned = time.monotonic()
    assert len(server.upserts) == len(parts) and all(acknowledged <= returned for _, acknowledged, _ in server.upserts)
    at_once = max(sum(1 for r, a, _ in server.upserts if r <= t < a) for t, _, _ in server.upserts)
    assert at_once == PARALLEL_UPSERTS and returned - started < len(parts) * server.upsert_seconds / 2
