"""What every dense encoder does the same way: distinct texts, length-sorted batches, progress."""

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

import dagster as dg
import numpy as np
from pydantic import Field

log = logging.getLogger(__name__)


class DenseEncoder(dg.ConfigurableResource, ABC):
    """Turns texts into dense vectors.

    Subclasses only embed one batch. Here each distinct text is embedded once, and texts are
    batched in order of length: a batch is padded to its longest text, so sorting is worth more
    than any other speed-up (DESIGN.md, performance facts).
    """

    model_name: str = Field(description="Model name; its part after '/' names the Qdrant vector.")
    batch_size: int = Field(default=32, description="Texts per encoder call.")

    @classmethod
    @abstractmethod
    def from_settings(cls, settings) -> "DenseEncoder":
        """The encoder as the environment's settings describe it."""

    @property
    def vector_name(self) -> str:
        return self.model_name.split("/")[-1]

    @property
    @abstractmethod
    def dim(self) -> int:
        """The vector dimension."""

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Vectors (len(texts) × dim) for one batch of document texts."""

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_batch([text])[0]

    def embed_documents(self, texts: Sequence[str], progress=log) -> np.ndarray:
        """Vectors for `texts`, in their order; each distinct text goes to the model once."""
        distinct = sorted(set(texts), key=len)
        vectors: dict[str, np.ndarray] = {}
        started = time.perf_counter()
        next_report = started + 10
        for start in range(0, len(distinct), self.batch_size):
            batch = distinct[start : start + self.batch_size]
            vectors.update(zip(batch, self.embed_batch(batch)))
            if time.perf_counter() >= next_report:
                elapsed = time.perf_counter() - started
                progress.info(
                    f"{self.vector_name}: {len(vectors)}/{len(distinct)} texts, {len(vectors) / elapsed:.1f} texts/s"
                )
                next_report += 10
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([vectors[t] for t in texts]).astype(np.float32)
