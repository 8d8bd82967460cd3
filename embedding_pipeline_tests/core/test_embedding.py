"""What every dense encoder does the same way: each distinct text once, by length, a refused text isolated."""

from collections import Counter

import numpy as np

from embedding_pipeline.embedding import RejectedInput, embed_distinct


def _encoder(refuse: str = ""):
    batches: list[list[str]] = []

    def embed_batch(texts):
        batches.append(list(texts))
        if any(refuse and refuse in text for text in texts):
            raise RejectedInput(f"refused: {refuse}")
        return np.array([[len(text), 1.0] for text in texts], dtype=np.float32)

    def in_twos(texts):
        return (texts[i : i + 2] for i in range(0, len(texts), 2))

    return batches, lambda texts: embed_distinct(texts, embed_batch, in_twos, lambda: 2, Counter(), "test")


def test_each_distinct_text_is_embedded_once_in_batches_of_similar_length():
    batches, embed = _encoder()
    result = embed(["a much longer text about eigenvalues", "short", "medium length text", "short"])
    assert batches == [["short", "medium length text"], ["a much longer text about eigenvalues"]]
    assert result.vectors.shape == (4, 2) and (result.vectors[1] == result.vectors[3]).all()
    assert result.rejected == {} and embed([]).vectors.shape == (0, 2)


def test_a_refused_text_is_isolated_and_the_rest_of_its_batch_is_embedded():
    batches, embed = _encoder(refuse="BROKEN")
    texts = ["one", "two", "a BROKEN one", "three", "four!"]
    result = embed(texts)
    assert result.rejected == {"a BROKEN one": "refused: BROKEN"}
    assert np.isnan(result.vectors[2]).all() and not np.isnan(np.delete(result.vectors, 2, axis=0)).any()
    assert ["a BROKEN one"] in batches  # split until it was alone
