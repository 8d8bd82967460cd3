"""Re-embedding is a backfill: new collections (resources, content files, topics) fill while searches stay on
the old, then switch at once."""

import importlib

from embedding_pipeline.partitions import PARTITIONS
from embedding_pipeline.search import search


def _targets(pipeline) -> dict[str, str]:
    with pipeline.store() as store:
        aliases = store.aliases()
    return {kind: aliases.get(pipeline.qdrant.alias(kind)) for kind in ("resources", "content_files", "topics")}


def _collections(pipeline) -> set[str]:
    with pipeline.store() as store:
        return set(store.collections())


def _top_hit(pipeline, query: str) -> str:
    r = pipeline.resources
    return search(r["qdrant"], r["dense_encoder"], r["sparse_encoder"], query, limit=1)[0]["readable_id"]


def _change_model(pipeline) -> None:
    """Another model name for the same ONNX files: new vector name, new collection version."""
    pipeline.reconfigure(QDRANT_DENSE_MODEL="our-org/minilm-copy")


def test_a_model_change_fills_new_collections_and_moves_the_aliases_when_every_partition_is_done(pipeline):
    pipeline.materialize_all()
    old = _targets(pipeline)
    old_model = pipeline.resources["dense_encoder"]
    _change_model(pipeline)
    pipeline.encoded()

    for partition in PARTITIONS[:-1]:
        result = pipeline.materialize(partition)
        assert _targets(pipeline) == old, partition  # searches stay on the old model meanwhile
    assert pipeline.metadata(result, "qdrant_points")["searches_use"] == ", ".join(old.values())
    new_model = pipeline.resources["dense_encoder"]
    pipeline.resources["dense_encoder"] = old_model  # a search client still on the old settings works
    assert _top_hit(pipeline, "CRISPR gene editing") == "yt-crispr"
    pipeline.resources["dense_encoder"] = new_model

    result = pipeline.materialize(PARTITIONS[-1])
    new = _targets(pipeline)
    assert all(
        new[kind] != old[kind] and new[kind].endswith(pipeline.metadata(result, "qdrant_points")["vectors_version"])
        for kind in new
    )
    assert _collections(pipeline) == set(new.values())  # the old ones are removed
    assert _top_hit(pipeline, "CRISPR gene editing") == "yt-crispr"
    dense, _ = pipeline.encoded()
    assert len(dense) > 100  # the new model embedded everything


def test_old_collections_are_kept_when_asked(pipeline):
    pipeline.materialize_all()
    old = set(_targets(pipeline).values())
    pipeline.reconfigure(QDRANT_KEEP_OLD_COLLECTIONS="true")
    _change_model(pipeline)
    pipeline.materialize_all()
    assert _collections(pipeline) == old | set(_targets(pipeline).values()) and len(old) == 3


def test_changing_models_or_chunking_changes_the_code_versions_the_ui_compares(monkeypatch):
    from embedding_pipeline import definitions

    def code_versions() -> dict[str, str]:
        graph = importlib.reload(definitions).defs.resolve_asset_graph()
        return {key.to_user_string(): graph.get(key).code_version for key in graph.get_all_asset_keys()}

    base = code_versions()
    monkeypatch.setenv("QDRANT_DENSE_MODEL", "BAAI/bge-small-en-v1.5")
    model = code_versions()
    monkeypatch.delenv("QDRANT_DENSE_MODEL")
    monkeypatch.setenv("CONTENT_FILE_EMBEDDING_CHUNK_SIZE", "256")
    chunking = code_versions()
    monkeypatch.setenv("QDRANT_SPARSE_MODEL_V2", "prithivida/Splade_PP_en_v1")
    sparse = code_versions()

    def changed(a: dict, b: dict) -> set[str]:
        return {k for k in a if a[k] != b[k]}

    assert changed(base, model) == {"dense_vectors"}
    assert changed(base, chunking) == {"text_chunks"}
    assert changed(chunking, sparse) == {"sparse_vectors"}
