"""What the pipeline asks of an encoder, and what every dense encoder does the same way: each distinct
text once, in length-sorted batches (a batch is padded to its longest text), isolating an input the
model refuses so that the rest of its batch is embedded."""

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from embedding_pipeline.errors import PermanentError
from embedding_pipeline.vector_store import SparseVector

log = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 10


class RejectedInput(Exception):
    """The model refused a request because of its input (e.g. HTTP 400), not a transient failure."""


@dataclass
class EmbedResult:
    """What one call embedded: a vector per text (a row of NaN for a text the model refused), the refused
    texts with the reason, and the encoder's counters (requests, retries, ...)."""

    vectors: np.ndarray
    rejected: dict[str, str] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)


class DenseModel(Protocol):
    model_name: str

    @property
    def vector_name(self) -> str: ...

    @property
    def concurrency(self) -> int:
        """How many requests the model serves at once (1: a local model that uses every core); a run reads that
        many batches ahead, and the model itself holds back the calls beyond it."""

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> EmbedResult: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class SparseModel(Protocol):
    model_name: str

    @property
    def vector_name(self) -> str: ...

    @property
    def uses_idf(self) -> bool: ...

    def embed_documents(self, texts: Sequence[str]) -> list[SparseVector]: ...

    def embed_query(self, text: str) -> SparseVector: ...


def embed_distinct(
    texts: Sequence[str],
    embed_batch: Callable[[list[str]], np.ndarray],
    batches: Callable[[list[str]], Iterable[list[str]]],
    dim: Callable[[], int],
    stats: dict[str, int],
    name: str = "encoder",
) -> EmbedResult:
    """Vectors for `texts`, in their order; each distinct text goes to `embed_batch` once, in the
    batches `batches` cuts from the distinct texts sorted by length. `stats` is the encoder's counters,
    which `embed_batch` may update during the call."""
    rejected: dict[str, str] = {}
    distinct = sorted(set(texts), key=len)
    vectors: dict[str, np.ndarray] = {}
    started = next_report = time.perf_counter()
    for batch in batches(distinct):
        vectors.update(_embed_or_split(batch, embed_batch, rejected))
        if time.perf_counter() - next_report >= PROGRESS_EVERY_SECONDS:
            next_report = time.perf_counter()
            rate = len(vectors) / (next_report - started)
            log.debug(f"{name}: {len(vectors)}/{len(distinct)} texts, {rate:.1f} texts/s")
    if not texts:
        return EmbedResult(np.zeros((0, dim()), dtype=np.float32), rejected, stats)
    missing = np.full(dim(), np.nan, dtype=np.float32) if rejected else None
    return EmbedResult(np.stack([vectors.get(t, missing) for t in texts]).astype(np.float32), rejected, stats)


def _embed_or_split(batch: list[str], embed_batch, rejected: dict[str, str]) -> dict[str, np.ndarray]:
    try:
        return dict(zip(batch, embed_batch(batch)))
    except RejectedInput as error:
        if len(batch) == 1:
            rejected[batch[0]] = str(error)
            return {}
        half = len(batch) // 2
        return {
            **_embed_or_split(batch[:half], embed_batch, rejected),
            **_embed_or_split(batch[half:], embed_batch, rejected),
        }


class ModelMissing(PermanentError):
    """The configured model cannot be loaded from where the settings say it is."""
