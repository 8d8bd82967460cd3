"""Dense and sparse encoders. The dense one is chosen by its dotted class path (`QDRANT_ENCODER`)."""

import importlib

from embedding_pipeline.resources.encoders.base import DenseEncoder


def dense_encoder_class(dotted_path: str) -> type[DenseEncoder]:
    """The encoder class that `QDRANT_ENCODER` names, e.g. `...encoders.fastembed.FastEmbedEncoder`."""
    module_name, _, class_name = dotted_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"QDRANT_ENCODER={dotted_path!r} names no importable class: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, DenseEncoder)):
        raise ValueError(f"QDRANT_ENCODER={dotted_path!r} is not a DenseEncoder subclass")
    return cls
