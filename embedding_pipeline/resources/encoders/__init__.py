"""Dense and sparse encoders. The dense one is chosen by its dotted class path (`QDRANT_ENCODER`)."""

import importlib
import logging

from embedding_pipeline.resources.encoders.base import DenseEncoder

log = logging.getLogger(__name__)

# What users' .env files say from the system this replaces.
LEGACY_ENCODERS = {
    "vector_search.encoders.fastembed.FastEmbedEncoder": "embedding_pipeline.resources.encoders.fastembed.FastEmbedEncoder",
    "vector_search.encoders.litellm.LiteLLMEncoder": "embedding_pipeline.resources.encoders.litellm.LiteLLMEncoder",
}


def dense_encoder_class(dotted_path: str) -> type[DenseEncoder]:
    """The encoder class that `QDRANT_ENCODER` names, e.g. `...encoders.fastembed.FastEmbedEncoder`."""
    if dotted_path in LEGACY_ENCODERS:
        log.info("QDRANT_ENCODER=%s is the old system's name; using %s", dotted_path, LEGACY_ENCODERS[dotted_path])
        dotted_path = LEGACY_ENCODERS[dotted_path]
    module_name, _, class_name = dotted_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"QDRANT_ENCODER={dotted_path!r} names no importable class: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, DenseEncoder)):
        raise ValueError(f"QDRANT_ENCODER={dotted_path!r} is not a DenseEncoder subclass")
    return cls
