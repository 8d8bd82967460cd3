"""The encoders mit-learn's settings name give the vectors mit-learn's own code gives, under its vector names
(`fixtures/mit_learn_golden.json`: computed by mit-learn's classes at 2f304af)."""

import json
from pathlib import Path

import pytest
import qdrant_edge

from embedding_pipeline.mit_learn import model_short_name
from embedding_pipeline.resources import reader_defaults
from embedding_pipeline.resources.encoders import dense_encoder_class, sparse_encoder_class
from embedding_pipeline.resources.encoders.fastembed import SparseEncoder
from embedding_pipeline.resources.encoders.litellm import LiteLLMEncoder
from embedding_pipeline.resources.encoders.sparse_hash import SparseHashEncoder
from embedding_pipeline.settings import Settings, settings_table

GOLDEN = json.loads((Path(__file__).parents[2] / "fixtures" / "mit_learn_golden.json").read_text())


def test_vector_names_follow_model_short_name():
    """vector_search.encoders.base.BaseEncoder.model_short_name: the part after the FIRST `/`."""
    assert GOLDEN["short_names"] == {name: model_short_name(name) for name in GOLDEN["short_names"]}
    settings = Settings(QDRANT_ENCODER="embedding_pipeline.resources.encoders.litellm.LiteLLMEncoder",
                        QDRANT_DENSE_MODEL="ollama/nomic-ai/nomic-embed-text")  # fmt: skip
    assert LiteLLMEncoder.from_settings(settings).vector_name == "nomic-ai"


def test_the_hash_encoder_gives_mit_learns_vectors_for_every_sample_text():
    """vector_search.encoders.sparse_hash.SparseHashEncoder.embed, one text at a time; ours embeds a batch."""
    texts = [entry["text"] for entry in GOLDEN["sparse_hash"]]
    ours = SparseHashEncoder().embed_documents(texts)
    for entry, vector in zip(GOLDEN["sparse_hash"], ours, strict=True):
        assert vector.indices == entry["indices"], entry["text"][:40]
        assert vector.values == pytest.approx(entry["values"], abs=1e-12)
    assert SparseHashEncoder().vector_name == "hashing_vectorizer_sparse_model"
    assert not SparseHashEncoder().uses_idf


def test_our_bm25_gives_qdrants_own_bm25_vectors():
    """Production mit-learn sends texts to Qdrant's inference (`QdrantCloudEncoder`, `qdrant/bm25`): Qdrant's
    BM25, which qdrant-edge embeds as the server does, must equal fastembed's for the vectors to be the same."""
    texts = [entry["text"] for entry in GOLDEN["sparse_hash"]]
    ours = SparseEncoder(model_name="qdrant/bm25").embed_documents(texts)
    qdrants = qdrant_edge.Bm25()
    for text, vector in zip(texts, ours, strict=True):
        theirs = qdrants.embed_document(text)
        assert dict(zip(vector.indices, vector.values)) == pytest.approx(
            dict(zip(theirs.indices, theirs.values)), rel=1e-6
        ), text[:40]


@pytest.mark.parametrize(
    ("variable", "mit_learns", "ours"),
    [
        ("QDRANT_SPARSE_ENCODER_V2", "vector_search.encoders.sparse_hash.SparseHashEncoder", SparseHashEncoder),
        ("QDRANT_SPARSE_ENCODER_V2", "vector_search.encoders.qdrant_cloud.QdrantCloudEncoder", SparseEncoder),
        ("QDRANT_ENCODER", "vector_search.encoders.qdrant_cloud.QdrantCloudEncoder", LiteLLMEncoder),
        ("QDRANT_ENCODER", "vector_search.encoders.litellm.LiteLLMEncoder", LiteLLMEncoder),
    ],
)
def test_mit_learns_class_names_select_the_same_encoders(variable, mit_learns, ours):
    choose = sparse_encoder_class if variable == "QDRANT_SPARSE_ENCODER_V2" else dense_encoder_class
    assert choose(mit_learns) is ours


def test_the_hash_encoders_vector_is_named_after_mit_learns_default_model(monkeypatch):
    monkeypatch.setenv("QDRANT_SPARSE_ENCODER_V2", "vector_search.encoders.sparse_hash.SparseHashEncoder")
    settings = Settings.from_env()
    encoder = sparse_encoder_class(settings.qdrant_sparse_encoder).from_settings(settings)
    assert encoder.vector_name == "hashing_vectorizer_sparse_model"


def test_where_our_defaults_differ_the_table_shows_both_and_settings_says_what_a_reader_would_use(monkeypatch):
    for name in ("QDRANT_ENCODER", "QDRANT_DENSE_MODEL", "QDRANT_SPARSE_ENCODER_V2", "QDRANT_SPARSE_MODEL_V2"):
        monkeypatch.delenv(name, raising=False)
    row = next(line for line in settings_table().splitlines() if line.startswith("| `QDRANT_SPARSE_ENCODER_V2`"))
    assert "`embedding_pipeline.resources.encoders.fastembed.SparseEncoder`" in row
    assert "`vector_search.encoders.sparse_hash.SparseHashEncoder`" in row
    notes = reader_defaults(Settings.from_env())
    assert any(n.startswith("QDRANT_SPARSE_ENCODER_V2 is not set") and "SparseHashEncoder" in n for n in notes)
    assert any(n.startswith("QDRANT_SPARSE_MODEL_V2 is not set: this project uses Qdrant/bm25") for n in notes)
    monkeypatch.setenv("QDRANT_SPARSE_ENCODER_V2", "vector_search.encoders.sparse_hash.SparseHashEncoder")
    notes = reader_defaults(Settings.from_env())
    # the sparse model in use is then mit-learn's default too: nothing to say of either
    assert not any(n.startswith(("QDRANT_SPARSE_ENCODER_V2", "QDRANT_SPARSE_MODEL_V2")) for n in notes)


def test_settings_shows_the_model_each_encoder_uses(monkeypatch, capsys):
    """With mit-learn's GensimEncoder and no QDRANT_DENSE_MODEL, GloVe is used (its own default), as in mit-learn."""
    from embedding_pipeline.cli import main

    for name in ("QDRANT_DENSE_MODEL", "QDRANT_SPARSE_MODEL_V2"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QDRANT_ENCODER", "vector_search.encoders.gensim.GensimEncoder")
    monkeypatch.setenv("QDRANT_SPARSE_ENCODER_V2", "vector_search.encoders.sparse_hash.SparseHashEncoder")
    main(["settings"])
    out = capsys.readouterr().out
    assert "qdrant_dense_model = glove/glove-wiki-gigaword-50\n" in out
    assert "qdrant_sparse_model = sklearn/hashing_vectorizer_sparse_model\n" in out
    assert "note:" not in out  # every query-shaping value in use is mit-learn's default


def test_the_gensim_encoder_loads_through_gensims_downloader_and_averages_word_vectors(tmp_path, monkeypatch):
    """vector_search.encoders.gensim.GensimEncoder: `api.load(self.model_short_name())`, then the mean of the
    vectors of `text.lower().split()`. The model is a small vector file made here, laid out as gensim-data
    lays out a downloaded model (`GENSIM_DATA_DIR/<name>/__init__.py` with `load_data()`, `information.json`);
    gensim's download host is unreachable, so its loader falls back to that local copy, as it does offline."""
    import gensim.downloader

    folder = tmp_path / "tiny-glove"
    folder.mkdir()
    (folder / "tiny-glove.txt").write_text("3 4\nlinear 1 0 0 0\nalgebra 0 1 0 0\nbees 0 0 1 1\n")
    (folder / "__init__.py").write_text(
        "import os\nfrom gensim.models import KeyedVectors\n\n\ndef load_data():\n"
        "    return KeyedVectors.load_word2vec_format(os.path.join(os.path.dirname(__file__), 'tiny-glove.txt'))\n"
    )
    (tmp_path / "information.json").write_text('{"corpora": {}, "models": {"tiny-glove": {"file_name": "x"}}}')
    monkeypatch.setattr(gensim.downloader, "BASE_DIR", str(tmp_path))  # what GENSIM_DATA_DIR sets
    monkeypatch.setenv("QDRANT_ENCODER", "vector_search.encoders.gensim.GensimEncoder")
    monkeypatch.setenv("QDRANT_DENSE_MODEL", "glove/tiny-glove")
    settings = Settings.from_env()
    encoder = dense_encoder_class(settings.qdrant_encoder).from_settings(settings)
    assert (encoder.vector_name, encoder.dim) == ("tiny-glove", 4)
    result = encoder.embed_documents(["Linear Algebra", "BEES", "nothing known here"])
    assert result.vectors[0].tolist() == [0.5, 0.5, 0.0, 0.0] and result.vectors[1].tolist() == [0, 0, 1, 1]
    assert "nothing known here" in result.rejected  # mit-learn's batch fails on it; here it alone is named


def test_mit_learns_default_gensim_model_is_the_encoders_own(monkeypatch):
    from embedding_pipeline.resources.encoders.gensim import GensimEncoder

    monkeypatch.delenv("QDRANT_DENSE_MODEL", raising=False)
    monkeypatch.setenv("QDRANT_ENCODER", "vector_search.encoders.gensim.GensimEncoder")
    encoder = GensimEncoder.from_settings(Settings.from_env())
    assert (encoder.model_name, encoder.vector_name) == ("glove/glove-wiki-gigaword-50", "glove-wiki-gigaword-50")
