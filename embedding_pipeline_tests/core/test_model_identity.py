"""A model changed in place is told from the one that made the collections: by its files, or by its vector for a
probe text within a provider's noise; runs are then refused, and a re-embed gets collections of its own."""

import numpy as np
import pytest
from qdrant_client import QdrantClient

from embedding_pipeline.model_identity import (
    Fingerprint,
    ModelChanged,
    ModelIdentity,
    collections_for,
    collections_made_by,
    files_digest,
)
from embedding_pipeline.vector_store import CollectionSpec
from embedding_pipeline.vector_store.aliases import CollectionNames
from embedding_pipeline.vector_store.edge import EdgeStore
from embedding_pipeline.vector_store.server import ServerStore

NAMES = CollectionNames("base", "v1")
PROBE = np.random.default_rng(7).normal(size=1536)


def _probed(vector: np.ndarray) -> ModelIdentity:
    return ModelIdentity(Fingerprint.of_probe(vector, "QDRANT_DENSE_MODEL=text-embedding-3-small"))


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for name, content in {"model.onnx": b"weights" * 1000, "tokenizer.json": b"{}", "config.json": b"{}"}.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture(params=["embedded", "server"])
def store(request, tmp_path):
    """The embedded engine keeps the models in a file beside its collections; a server in their metadata
    (qdrant-client's local mode stands in for the server: none is installable here)."""
    made = EdgeStore(tmp_path / "qdrant") if request.param == "embedded" else ServerStore(QdrantClient(":memory:"))
    yield made
    made.close()


def _write(store, names: CollectionNames, models: ModelIdentity | None, kinds=("resources", "content_files")) -> None:
    """What a run's writer does: the collections made, keeping the models that make their vectors."""
    for kind in kinds:
        store.ensure_collection(
            names.physical(kind), CollectionSpec("dense", 4, "bm25", True, models=models and models.kept())
        )


def test_a_models_files_are_known_by_their_contents_not_their_documentation(model):
    before = files_digest(model)
    (model / "README.md").write_text("notes")
    (model / ".cache").mkdir()
    (model / ".cache" / "lock").write_text("")
    assert files_digest(model) == before
    weights = (model / "model.onnx").read_bytes()
    (model / "model.onnx").write_bytes(weights[:-1] + b"X")  # one byte of the weights, the same size
    assert files_digest(model) != before


def test_a_providers_noise_is_the_same_model_and_another_models_vector_is_not():
    first = Fingerprint.of_probe(PROBE, "QDRANT_DENSE_MODEL=m")
    noisy = PROBE + np.random.default_rng(1).normal(0, 1e-3 * np.abs(PROBE).mean(), PROBE.shape)
    assert Fingerprint.of_probe(noisy, "QDRANT_DENSE_MODEL=m").differs_from(first.kept()) is None
    another = np.random.default_rng(2).permutation(PROBE)
    assert "agrees to" in Fingerprint.of_probe(another, "QDRANT_DENSE_MODEL=m").differs_from(first.kept())
    tuned = PROBE + np.random.default_rng(3).normal(0, 0.1 * np.abs(PROBE).mean(), PROBE.shape)  # a fine-tune
    assert Fingerprint.of_probe(tuned, "QDRANT_DENSE_MODEL=m").differs_from(first.kept()) is not None
    by_files = Fingerprint("QDRANT_DENSE_MODEL_PATH=/m", files="ab" * 32)
    assert "nothing shows they agree" in by_files.differs_from(first.kept())


def test_a_run_writes_the_collections_its_model_made_and_keeps_it_with_those_that_kept_none(store, model):
    models = ModelIdentity(Fingerprint.of_files(model, f"QDRANT_DENSE_MODEL_PATH={model}"))
    assert collections_for(store, NAMES, models, reembed=False) == NAMES  # nothing made yet
    _write(store, NAMES, None)  # made before models were kept
    assert collections_for(store, NAMES, models, reembed=False) == NAMES
    assert store.model_of(NAMES.physical("resources")) == models.kept()  # kept from now on


def test_a_model_changed_in_place_is_refused_in_one_line_and_nothing_is_written(store, model):
    models = ModelIdentity(Fingerprint.of_files(model, f"QDRANT_DENSE_MODEL_PATH={model}"))
    _write(store, NAMES, models)
    (model / "model.onnx").write_bytes(b"other weights" * 1000)
    changed = ModelIdentity(Fingerprint.of_files(model, f"QDRANT_DENSE_MODEL_PATH={model}"))
    collections = store.collections()
    with pytest.raises(ModelChanged) as refused:
        collections_for(store, NAMES, changed, reembed=False)
    said = str(refused.value)
    assert "\n" not in said and said.startswith(f"QDRANT_DENSE_MODEL_PATH={model}: its files differ")
    assert "made base.content_files.v1," in said and "embed --reembed" in said
    assert store.collections() == collections and store.model_of(NAMES.physical("resources")) == models.kept()
    assert collections_made_by(store, NAMES, changed) == NAMES  # the checks look at what there is


def test_a_reembed_gets_collections_of_its_own_which_every_partition_and_later_run_of_the_new_model_finds(store):
    old, new = _probed(PROBE), _probed(np.random.default_rng(2).permutation(PROBE))
    _write(store, NAMES, old)
    reembed = collections_for(store, NAMES, new, reembed=True)
    assert reembed.version.startswith("v1-") and reembed != NAMES
    assert collections_for(store, NAMES, new, reembed=True) == reembed  # partitions at once agree
    _write(store, reembed, new, kinds=("topics",))  # the first partition of the re-embed
    assert collections_for(store, NAMES, new, reembed=False) == reembed  # the rest, and the runs after it
    assert collections_for(store, NAMES, old, reembed=False) == NAMES  # the old model still finds its own
    assert collections_made_by(store, NAMES, new) == reembed
    again = _probed(np.random.default_rng(5).permutation(PROBE))  # a third model, once the second's are in use
    store.drop_collection(NAMES.physical("resources"))
    store.drop_collection(NAMES.physical("content_files"))
    with pytest.raises(ModelChanged):
        collections_for(store, NAMES, again, reembed=False)
    assert collections_for(store, NAMES, again, reembed=True).version not in ("v1", reembed.version)


def test_a_sparse_models_files_count_too_and_are_named(store, model, tmp_path):
    dense = Fingerprint.of_probe(PROBE, "QDRANT_DENSE_MODEL=m")
    bm25 = tmp_path / "bm25"
    bm25.mkdir()
    (bm25 / "english.txt").write_text("a\nthe\n")
    _write(store, NAMES, ModelIdentity(dense, Fingerprint.of_files(bm25, f"QDRANT_SPARSE_MODEL_PATH={bm25}")))
    (bm25 / "english.txt").write_text("a\nthe\nof\n")
    with pytest.raises(ModelChanged, match=f"^QDRANT_SPARSE_MODEL_PATH={bm25}: its files differ"):
        collections_for(
            store, NAMES, ModelIdentity(dense, Fingerprint.of_files(bm25, f"QDRANT_SPARSE_MODEL_PATH={bm25}")), False
        )
