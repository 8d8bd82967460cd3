"""fastembed (ONNX Runtime) encoders: the default dense model and BM25.

fastembed and ONNX Runtime are imported when a model is first loaded, not with this module: a
process that embeds nothing (a sensor tick, a run with nothing to do) never pays for them.
"""

import functools
import json
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import Field

from embedding_pipeline.embedding import ModelMissing
from embedding_pipeline.model_identity import Fingerprint
from embedding_pipeline.resources.encoders.base import DenseEncoder, SparseEncoderBase
from embedding_pipeline.vector_store import SparseVector

BUNDLED_BM25_DIR = Path(__file__).parent / "bm25"
DEFAULT_SPARSE_MODEL = "Qdrant/bm25"
# fastembed's sparse models whose document vectors hold term frequencies only, so that Qdrant must apply the
# IDF (their `requires_idf`): known here without importing fastembed, which a run with nothing to embed never
# needs (a test keeps this equal to fastembed's own list).
IDF_MODELS = frozenset({"Qdrant/bm25", "Qdrant/bm42-all-minilm-l6-v2-attentions", "Qdrant/minicoil-v1"})
# Models are loaded once per process (about 0.1 s each): the runs one process executes one after
# another (the CLI's eight partitions) share them, as they share the ONNX Runtime's threads.
MODELS_KEPT = 4


@functools.lru_cache(maxsize=MODELS_KEPT)
def _text_model(model_name: str, model_path: str, threads: int | None):
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    path = Path(model_path) if model_path else None
    if path is not None and model_name not in {d.model for d in TextEmbedding._list_supported_models()}:
        TextEmbedding.add_custom_model(
            model=model_name,
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf=model_name),
            dim=json.loads((path / "config.json").read_text())["hidden_size"],
            model_file="model.onnx",
        )
    return TextEmbedding(model_name, specific_model_path=str(path) if path else None, threads=threads)


@functools.lru_cache(maxsize=MODELS_KEPT)
def _sparse_model(model_name: str, model_path: str):
    from fastembed import SparseTextEmbedding

    return SparseTextEmbedding(model_name, specific_model_path=model_path or None)


def release_models() -> None:
    """Free the loaded models and their ONNX Runtime memory (an arena that grows with the largest batch),
    e.g. before the indexes are built at the end of `embed`, which needs memory of its own."""
    _text_model.cache_clear()  # the sessions go at once (no cycle holds them): no gc.collect, which takes 0.2 s
    _sparse_model.cache_clear()


class FastEmbedEncoder(DenseEncoder):
    """A fastembed text model, from the hub or from a local ONNX model directory.

    A directory needs `model.onnx`, `tokenizer.json`, `tokenizer_config.json`,
    `special_tokens_map.json` and `config.json`. A model fastembed does not know is registered
    from the directory (mean pooling, normalized, dimension from `config.json`).
    """

    model_path: str = Field(default="", description="Local ONNX model directory; empty to download by name.")
    threads: int | None = Field(default=None, description="ONNX Runtime threads; None uses every core.")

    @classmethod
    def from_settings(cls, settings) -> "FastEmbedEncoder":
        return cls(
            model_name=settings.qdrant_dense_model,
            model_path=settings.qdrant_dense_model_path,
            batch_size=settings.embedding_batch_size,
        )

    def check(self) -> None:
        if self.model_path and not (Path(self.model_path) / "model.onnx").exists():
            raise ModelMissing(
                f"QDRANT_DENSE_MODEL_PATH={self.model_path}: no model.onnx for {self.model_name}; run "
                "`embedding-pipeline setup` to build the default model, or point it at an ONNX model directory"
            )

    @property
    def source(self) -> str:
        return f"QDRANT_DENSE_MODEL_PATH={self.model_path}" if self.model_path else super().source

    def fingerprint(self) -> Fingerprint:
        """The digest of the model's files: known without loading the model."""
        if not self.model_path:
            return super().fingerprint()
        self.check()
        return Fingerprint.of_files(self.model_path, self.source)

    def _load(self):
        self.check()
        return _text_model(self.model_name, self.model_path, self.threads)

    @property
    def dim(self) -> int:
        """From the model directory's config when there is one: knowing it costs no model load."""
        config = Path(self.model_path) / "config.json" if self.model_path else None
        if config is not None and config.exists():
            return int(json.loads(config.read_text())["hidden_size"])
        return self._load().embedding_size

    def embed_batch(self, texts: list[str], stats: Counter) -> np.ndarray:
        return np.stack(list(self._load().embed(texts, batch_size=len(texts))))


class SparseEncoder(SparseEncoderBase):
    """A fastembed sparse model; `Qdrant/bm25` (the default) needs no download. It gives the indices and values
    of Qdrant's own BM25 (a test keeps that true), so it also stands for mit-learn's `QdrantCloudEncoder`
    with `qdrant/bm25`, whose vectors Qdrant computes from the text."""

    model_path: str = Field(
        default=str(BUNDLED_BM25_DIR),
        description="Local model directory (for BM25: where english.txt, the stopwords, lives).",
    )
    batch_size: int = Field(default=256, description="Texts per encoder call.")

    @classmethod
    def from_settings(cls, settings) -> "SparseEncoder":
        path = {"model_path": settings.qdrant_sparse_model_path} if settings.qdrant_sparse_model_path else {}
        return cls(model_name=settings.qdrant_sparse_model or DEFAULT_SPARSE_MODEL, **path)

    def _load(self):
        return _sparse_model(self.model_name, self.model_path)

    def fingerprint(self) -> Fingerprint | None:
        if not self.model_path or not Path(self.model_path).is_dir():
            return None
        bundled = Path(self.model_path) == BUNDLED_BM25_DIR
        source = f"QDRANT_SPARSE_MODEL_V2={self.model_name} (its files in {self.model_path})" if bundled else None
        return Fingerprint.of_files(self.model_path, source or f"QDRANT_SPARSE_MODEL_PATH={self.model_path}")

    @property
    def uses_idf(self) -> bool:
        """BM25's document vectors hold term frequencies only; Qdrant applies the IDF."""
        return self.model_name.lower() in {name.lower() for name in IDF_MODELS}

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Vectors for `texts`, in their order; each distinct text goes to the model once."""
        distinct = list(dict.fromkeys(texts))
        embedded = self._load().embed(distinct, batch_size=self.batch_size)
        vectors = {text: SparseVector(e.indices.tolist(), e.values.tolist()) for text, e in zip(distinct, embedded)}
        return [vectors[text] for text in texts]

    def embed_query(self, text: str) -> SparseVector:
        (e,) = self._load().query_embed([text])
        return SparseVector(e.indices.tolist(), e.values.tolist())
