"""The encoders as Dagster resources: what every dense implementation shares (`embedding.embed_distinct`),
and what a sparse one must offer. Vectors are named as mit-learn names them (`mit_learn.model_short_name`)."""

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import ClassVar

import dagster as dg
import numpy as np
from pydantic import Field

from embedding_pipeline.embedding import EmbedResult, embed_distinct
from embedding_pipeline.mit_learn import model_short_name
from embedding_pipeline.model_identity import PROBE_TEXT, Fingerprint
from embedding_pipeline.vector_store import SparseVector


class DenseEncoder(dg.ConfigurableResource, ABC):
    """Turns texts into dense vectors. Subclasses embed one batch; each distinct text is embedded once,
    in batches of texts of about one length, and a text the model refuses is isolated and reported."""

    stat_names: ClassVar[tuple[str, ...]] = ()  # counters this encoder keeps (reported even when 0)
    # mit-learn cuts a resource's text to the model's token limit for its LiteLLM encoder, else to characters
    token_limited: ClassVar[bool] = False
    model_name: str = Field(description="Model name; its part after the first '/' names the Qdrant vector.")
    batch_size: int = Field(description="Most texts per encoder call.")

    @classmethod
    @abstractmethod
    def from_settings(cls, settings) -> "DenseEncoder":
        """The encoder as the environment's settings describe it."""

    def check(self) -> None:
        """Raise a named error now if the encoder cannot work (a missing model), before a run spends anything."""

    @property
    def vector_name(self) -> str:
        return model_short_name(self.model_name)

    @property
    def source(self) -> str:
        """Where the model comes from, as the settings say it."""
        return f"QDRANT_DENSE_MODEL={self.model_name}"

    def fingerprint(self) -> Fingerprint:
        """What tells this model's vectors from another's under the same name: here its vector for a probe text
        (one call); a model read from a folder of its own is known by its files."""
        return Fingerprint.of_probe(self.embed_batch([PROBE_TEXT], Counter())[0], self.source)

    @property
    def concurrency(self) -> int:
        """How many requests the model serves at once: one for a model that runs here and uses every core."""
        return 1

    @property
    @abstractmethod
    def dim(self) -> int:
        """The vector dimension."""

    @abstractmethod
    def embed_batch(self, texts: list[str], stats: Counter) -> np.ndarray:
        """Vectors (len(texts) × dim) for one batch, counting what it does in `stats`;
        raises `embedding.RejectedInput` if an input is refused."""

    def batches(self, texts: list[str]) -> Iterator[list[str]]:
        """Consecutive batches of `texts`; an encoder with a token budget cuts them by tokens too."""
        for start in range(0, len(texts), self.batch_size):
            yield texts[start : start + self.batch_size]

    def embed_documents(self, texts: Sequence[str]) -> EmbedResult:
        """A vector per text, in order (a row of NaN for a text the model refused), with what was refused and counted."""
        stats = Counter(dict.fromkeys(self.stat_names, 0))
        return embed_distinct(
            texts, lambda batch: self.embed_batch(batch, stats), self.batches, lambda: self.dim, stats, self.vector_name
        )

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_batch([text], Counter())[0]


class SparseEncoderBase(dg.ConfigurableResource, ABC):
    """Turns texts into sparse vectors (`QDRANT_SPARSE_ENCODER_V2`)."""

    model_name: str = Field(description="Sparse model name (QDRANT_SPARSE_MODEL_V2); names the Qdrant vector.")

    @classmethod
    @abstractmethod
    def from_settings(cls, settings) -> "SparseEncoderBase": ...

    @property
    def vector_name(self) -> str:
        return model_short_name(self.model_name)

    def fingerprint(self) -> Fingerprint | None:
        """What tells this model's vectors from another's under the same name: its files, where it has a folder
        of its own; None for a model its name and code alone make."""
        return None

    @property
    def uses_idf(self) -> bool:
        """Whether Qdrant must weigh the vectors' terms by their IDF (the collection's sparse modifier)."""
        return False

    @abstractmethod
    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Vectors for `texts`, in their order."""

    def embed_query(self, text: str) -> SparseVector:
        return self.embed_documents([text])[0]
