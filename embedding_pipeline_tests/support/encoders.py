"""The Dagster tier's dense "model": deterministic, instant, and chosen the way a user chooses an encoder
(`QDRANT_ENCODER=embedding_pipeline_tests.support.encoders.HashingEncoder`), so that assets, sensors, the
CLI and the daemon run every line of the pipeline but the ONNX model's (the end-to-end tier runs that)."""

import re
import zlib
from collections import Counter

import numpy as np

from embedding_pipeline.embedding import RejectedInput
from embedding_pipeline.resources.encoders.base import DenseEncoder

HASHING_ENCODER = f"{__name__}.HashingEncoder"
DIM = 512
REFUSED_WORD = "unembeddable"  # a text holding it is refused, as a provider refuses an input


class HashingEncoder(DenseEncoder):
    """A text's words hashed into 512 dimensions, normalized: the same text always gets the same vector, and
    texts sharing words similar ones (a search for a resource's words finds it)."""

    @classmethod
    def from_settings(cls, settings) -> "HashingEncoder":
        return cls(model_name="test/hashing-512", batch_size=settings.embedding_batch_size)

    @property
    def dim(self) -> int:
        return DIM

    def embed_batch(self, texts: list[str], stats: Counter) -> np.ndarray:
        for text in texts:
            if REFUSED_WORD in text:
                raise RejectedInput(f"{self.model_name} refuses: {text[:60]!r}")
        vectors = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % DIM] += 1
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)
