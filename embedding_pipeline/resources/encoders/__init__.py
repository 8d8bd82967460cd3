"""Dense and sparse encoders, each chosen by its dotted class path (`QDRANT_ENCODER`, `QDRANT_SPARSE_ENCODER_V2`)."""

import importlib
import logging

from embedding_pipeline.settings import SettingError

log = logging.getLogger(__name__)

OURS = "embedding_pipeline.resources.encoders"
# What users' .env files say from the system this replaces, by variable. mit-learn's QdrantCloudEncoder
# has Qdrant compute the vectors from the text: its dense models are OpenAI's (LiteLLM calls the same
# model), its sparse one `qdrant/bm25` (fastembed's BM25 gives Qdrant's own vectors).
LEGACY_ENCODERS = {
    "QDRANT_ENCODER": {
        "vector_search.encoders.fastembed.FastEmbedEncoder": f"{OURS}.fastembed.FastEmbedEncoder",
        "vector_search.encoders.litellm.LiteLLMEncoder": f"{OURS}.litellm.LiteLLMEncoder",
        "vector_search.encoders.qdrant_cloud.QdrantCloudEncoder": f"{OURS}.litellm.LiteLLMEncoder",
        "vector_search.encoders.gensim.GensimEncoder": f"{OURS}.gensim.GensimEncoder",
    },
    "QDRANT_SPARSE_ENCODER_V2": {
        "vector_search.encoders.fastembed.FastEmbedEncoder": f"{OURS}.fastembed.SparseEncoder",
        "vector_search.encoders.qdrant_cloud.QdrantCloudEncoder": f"{OURS}.fastembed.SparseEncoder",
        "vector_search.encoders.sparse_hash.SparseHashEncoder": f"{OURS}.sparse_hash.SparseHashEncoder",
    },
}


def encoder_class(variable: str, dotted_path: str, base: type) -> type:
    """The class that the setting `variable` names; a name this project cannot load stops the start."""
    if dotted_path in LEGACY_ENCODERS[variable]:
        ours = LEGACY_ENCODERS[variable][dotted_path]
        log.info("%s=%s is the old system's name; using %s", variable, dotted_path, ours)
        dotted_path = ours
    if dotted_path.startswith("vector_search."):
        raise SettingError(
            f"{variable}={dotted_path!r} is a class of the old system that this project does not implement; "
            f"use one of {sorted(set(LEGACY_ENCODERS[variable].values()))} (or leave it unset for the default)"
        )
    module_name, _, class_name = dotted_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise SettingError(f"{variable}={dotted_path!r} names no importable class: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise SettingError(f"{variable}={dotted_path!r} is not a {base.__name__} class")
    return cls


def dense_encoder_class(dotted_path: str) -> type:
    from embedding_pipeline.resources.encoders.base import DenseEncoder

    return encoder_class("QDRANT_ENCODER", dotted_path, DenseEncoder)


def sparse_encoder_class(dotted_path: str) -> type:
    from embedding_pipeline.resources.encoders.base import SparseEncoderBase

    return encoder_class("QDRANT_SPARSE_ENCODER_V2", dotted_path, SparseEncoderBase)
