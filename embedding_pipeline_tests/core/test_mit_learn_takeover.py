"""Taking over a deployment of mit-learn's own embedding tasks: `{base}.resources`, `{base}.content_files` and
`{base}.topics` are collections of their own, made here by mit-learn's rules (its ids, payloads and texts from
`fixtures/mit_learn_golden.json`, vectors by the same encoders). One run per partition reuses every vector
whose text is ours, fills our versioned collections, and the last one puts aliases in their place.
The store is qdrant-client's in-process stand-in for the Qdrant server mit-learn uses."""

import json
import uuid
from pathlib import Path

import pytest
from qdrant_client import models

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.mit_learn import OWN, RESOURCE_TYPES
from embedding_pipeline.partition.records import COLLECTIONS
from embedding_pipeline.resources.encoders.sparse_hash import SparseHashEncoder
from embedding_pipeline.sample_data import EVERY_SAMPLE
from embedding_pipeline.vector_store.aliases import CollectionNames
from embedding_pipeline_tests.core.conftest import World

GOLDEN = json.loads((Path(__file__).parent.parent / "fixtures" / "mit_learn_golden.json").read_text())
BASE = "resource_embeddings"
PARTITIONS = [*RESOURCE_TYPES, "topics"]
STALE_RESOURCE = "ocw-18.06"  # its point is missing from mit-learn's collection
STALE_CHUNK_KEY = "captions.vtt.txt"  # its first chunk holds an older text there


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path, samples=EVERY_SAMPLE, sparse=SparseHashEncoder(), chunker=Chunker(None, 512, 0), base=BASE)
    yield world
    world.store.close()


def _vectors(world, text: str) -> dict:
    sparse = world.sparse.embed_query(text)
    return {
        world.dense.vector_name: world.dense.vector(text).tolist(),
        world.sparse.vector_name: models.SparseVector(indices=sparse.indices, values=sparse.values),
    }


def mit_learns_collections(world) -> dict[str, int]:
    """vector_search/utils.py l.247 create_qdrant_collection and the writers' points (l.557, l.809, l.329)."""
    client = world.store.client
    points = {"resources": [], "content_files": [], "topics": []}
    for golden in GOLDEN["resources"]:
        if golden["key"] != f"ocw.{STALE_RESOURCE}":
            points["resources"].append(models.PointStruct(id=golden["id"], payload=golden["payload"],
                                                          vector=_vectors(world, golden["text"])))  # fmt: skip
    for file in sorted(GOLDEN["content_files"]["characters"], key=lambda f: f["content_file_id"]):  # in id order
        for point in file["points"]:
            payload = point["payload"]
            if payload["key"] == STALE_CHUNK_KEY and payload["chunk_number"] == 0:
                payload = {**payload, "chunk_content": "An older caption."}
            points["content_files"].append(
                models.PointStruct(id=point["id"], payload=payload, vector=_vectors(world, payload["chunk_content"]))
            )
    embedded = {
        r["payload"]["id"] for r in GOLDEN["resources"] if r["payload"]["published"] or r["payload"]["test_mode"]
    }
    for resource in GOLDEN["course_information"]:  # l.790: with the resources it embeds
        if resource["resource_id"] in embedded:
            points["content_files"].extend(
                models.PointStruct(
                    id=p["id"], payload=p["payload"], vector=_vectors(world, p["payload"]["chunk_content"])
                )
                for p in resource["points"]
            )
    for topic_uuid, name in world.rows("SELECT topic_uuid, name FROM {T}learningresourcetopic"):
        points["topics"].append(models.PointStruct(id=str(uuid.UUID(str(topic_uuid))), payload={"name": name},
                                                   vector=_vectors(world, name)))  # fmt: skip
    for kind, batch in points.items():
        client.create_collection(
            f"{BASE}.{kind}", on_disk_payload=True,
            vectors_config={world.dense.vector_name: models.VectorParams(size=32, distance=models.Distance.COSINE)},
            sparse_vectors_config={world.sparse.vector_name: models.SparseVectorParams()},
        )  # fmt: skip
        client.upsert(f"{BASE}.{kind}", batch)
    return {kind: len(batch) for kind, batch in points.items()}


def _search(world, kind: str, text: str) -> list[dict]:
    """What a mit-learn search gets from `{base}.{kind}` (views.py l.384: a dense query by name)."""
    found = world.store.client.query_points(f"{BASE}.{kind}", query=world.dense.vector(text).tolist(),
                                            using=world.dense.vector_name, limit=3).points  # fmt: skip
    return [hit.payload for hit in found]


def test_one_run_per_partition_takes_over_embedding_only_changed_texts_then_aliases_replace_the_collections(world):
    legacy = mit_learns_collections(world)
    world.embedded()
    taken = needed = 0
    for partition in PARTITIONS:
        outcome = world.run(partition, every_partition_done=partition == PARTITIONS[-1])
        taken, needed = taken + outcome.report.texts_taken_over, needed + outcome.report.texts_needed
        if partition != PARTITIONS[-1]:
            # Until every partition is done, searches read mit-learn's collections as they were.
            assert not outcome.switch.moved and world.store.aliases() == {}
            assert OWN not in _search(world, "resources", "Linear Algebra")[0]
    assert outcome.switch.moved and outcome.verification.passed
    # Then the aliases stand where mit-learn's collections were: searches read ours, with mit-learn's documents.
    assert world.store.aliases() == world.names.targets
    assert sorted(world.store.collections()) == sorted(world.names.targets.values())
    assert OWN in _search(world, "resources", "Linear Algebra")[0]
    embedded = world.embedded()
    assert len(embedded) == 2  # the resource mit-learn lacked, the chunk it had stale
    assert any(text.startswith("# Linear Algebra") for text in embedded)
    assert taken == needed - 2 and taken > 0.9 * sum(legacy.values())  # every other text: no encoder call
    for kind in COLLECTIONS.values():
        assert world.store.client.count(f"{BASE}.{kind}").count > 0


def test_after_a_takeover_re_embeds_and_recreating_work(world):
    mit_learns_collections(world)
    for partition in PARTITIONS:
        world.run(partition, every_partition_done=partition == PARTITIONS[-1])
    world.names = CollectionNames(BASE, "v2")  # a changed model: new collections, searches stay meanwhile
    for partition in PARTITIONS:
        outcome = world.run(partition, every_partition_done=partition == PARTITIONS[-1])
    assert outcome.switch.moved and world.store.aliases() == world.names.targets
    assert sorted(world.store.collections()) == sorted(world.names.targets.values())
    recreated = world.run("video", recreate_collections=True)
    assert recreated.verification.passed and recreated.report.points_upserted > 0
