"""What every dense encoder does the same way: distinct texts, length-sorted batches, progress,
and isolating an input the provider refuses."""

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr

log = logging.getLogger(__name__)


class RejectedInput(Exception):
    """The model refused a request because of its input (e.g. HTTP 400), not a transient failure."""


class DenseEncoder(dg.ConfigurableResource, ABC):
    """Turns texts into dense vectors.

    Subclasses embed one batch. Here each distinct text is embedded once, texts are batched in
    order of length (a batch is padded to its longest text: DESIGN.md, performance facts), and a
    refused batch is split until the refused text is alone; it gets no vector and is listed in
    `rejected`, while the rest are embedded.
    """

    stat_names: ClassVar[tuple[str, ...]] = ()  # counters this encoder keeps (reported even when 0)
    model_name: str = Field(description="Model name; its part after '/' names the Qdrant vector.")
    batch_size: int = Field(description="Most texts per encoder call.")
    _rejected: dict[str, str] = PrivateAttr(default_factory=dict)
    _stats: dict[str, int] = PrivateAttr(default_factory=dict)

    @classmethod
    @abstractmethod
    def from_settings(cls, settings) -> "DenseEncoder":
        """The encoder as the environment's settings describe it."""

    def check(self) -> None:
        """Raise a named error now if the encoder cannot work (a missing model), before a run spends anything."""

    @property
    def vector_name(self) -> str:
        return self.model_name.split("/")[-1]

    @property
    @abstractmethod
    def dim(self) -> int:
        """The vector dimension."""

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Vectors (len(texts) × dim) for one batch; raises RejectedInput if an input is refused."""

    def batches(self, texts: list[str]) -> Iterator[list[str]]:
        """Consecutive batches of `texts`; an encoder with a token budget cuts them by tokens too."""
        for start in range(0, len(texts), self.batch_size):
            yield texts[start : start + self.batch_size]

    @property
    def rejected(self) -> dict[str, str]:
        """Texts of the last `embed_documents` call that the model refused, with the reason."""
        return dict(self._rejected)

    @property
    def stats(self) -> dict[str, int]:
        """Counters of the last `embed_documents` call (requests, retries, truncated texts, ...)."""
        return dict(self._stats)

    def count(self, name: str, by: int = 1) -> None:
        self._stats[name] = self._stats.get(name, 0) + by

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_batch([text])[0]

    def embed_documents(self, texts: Sequence[str], progress=log) -> np.ndarray:
        """Vectors for `texts`, in their order; each distinct text goes to the model once.

        A text the model refused has a row of NaN (see `rejected`).
        """
        self._rejected, self._stats = {}, dict.fromkeys(self.stat_names, 0)
        distinct = sorted(set(texts), key=len)
        vectors: dict[str, np.ndarray] = {}
        started = time.perf_counter()
        next_report = started + 10
        for batch in self.batches(distinct):
            vectors.update(self._embed_or_split(batch))
            if time.perf_counter() >= next_report:
                elapsed = time.perf_counter() - started
                progress.info(
                    f"{self.vector_name}: {len(vectors)}/{len(distinct)} texts, {len(vectors) / elapsed:.1f} texts/s"
                )
                next_report += 10
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        missing = np.full(self.dim, np.nan, dtype=np.float32) if self._rejected else None
        return np.stack([vectors.get(t, missing) for t in texts]).astype(np.float32)

    def _embed_or_split(self, batch: list[str]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(batch, self.embed_batch(batch)))
        except RejectedInput as error:
            if len(batch) == 1:
                self._rejected[batch[0]] = str(error)
                return {}
            half = len(batch) // 2
            return {**self._embed_or_split(batch[:half]), **self._embed_or_split(batch[half:])}
