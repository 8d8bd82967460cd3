"""mit-learn's default dense encoder (vector_search.encoders.gensim.GensimEncoder), implemented as it is: word
vectors that `gensim.downloader.load` gives for the model's short name, averaged over the text's words.

`gensim.downloader` reads `$GENSIM_DATA_DIR/<name>/` (default `~/gensim-data`) and downloads what is not
there from GitHub: offline, put the model there first (`python -m gensim.downloader -d glove-wiki-gigaword-50`
on a machine that can, then copy the folder and its `information.json`). Needs `pip install
embedding-pipeline[gensim]`.
"""

import functools
import os
from collections import Counter
from pathlib import Path

import numpy as np

from embedding_pipeline.embedding import ModelMissing, RejectedInput
from embedding_pipeline.mit_learn import model_short_name
from embedding_pipeline.model_identity import Fingerprint
from embedding_pipeline.resources.encoders.base import DenseEncoder

DEFAULT_MODEL = "glove/glove-wiki-gigaword-50"  # GensimEncoder's own default (mit-learn sets no QDRANT_DENSE_MODEL)


@functools.lru_cache(maxsize=2)
def _vectors(short_name: str):
    try:
        import gensim.downloader
    except ImportError:
        raise ModelMissing(
            "QDRANT_ENCODER names the Gensim encoder: pip install 'embedding-pipeline[gensim]'"
        ) from None
    try:
        return gensim.downloader.load(short_name)
    except (OSError, ValueError) as error:
        raise ModelMissing(
            f"Gensim model {short_name!r} is not in GENSIM_DATA_DIR and cannot be downloaded here: {error}"
        ) from None


class GensimEncoder(DenseEncoder):
    """The mean of the word vectors of the text's lower-cased words (`text.lower().split()`)."""

    @classmethod
    def from_settings(cls, settings) -> "GensimEncoder":
        named = "qdrant_dense_model" in settings.model_fields_set  # else the encoder's own, as in mit-learn
        return cls(model_name=settings.qdrant_dense_model if named else DEFAULT_MODEL, batch_size=256)

    def check(self) -> None:
        _vectors(model_short_name(self.model_name))

    def fingerprint(self) -> Fingerprint:
        """The digest of the model's folder in GENSIM_DATA_DIR, where it is: known without loading the vectors."""
        folder = Path(os.environ.get("GENSIM_DATA_DIR", "~/gensim-data")).expanduser() / model_short_name(
            self.model_name
        )
        if not folder.is_dir():
            return super().fingerprint()
        return Fingerprint.of_files(folder, f"QDRANT_DENSE_MODEL={self.model_name} (its files in {folder})")

    @property
    def dim(self) -> int:
        return int(_vectors(model_short_name(self.model_name)).vector_size)

    def embed_batch(self, texts: list[str], stats: Counter) -> np.ndarray:
        model = _vectors(model_short_name(self.model_name))
        rows = []
        for text in texts:
            known = [model[word] for word in text.lower().split() if word in model]
            # mit-learn's encoder gives such a text a zero vector, which its points_generator leaves out: the point
            # then fails qdrant-client's PointStruct ("vector Field required") and with it the whole batch; here
            # only this record fails, named
            if not known:
                raise RejectedInput(f"{self.model_name} knows none of the words of: {text[:60]!r}")
            rows.append(np.mean(known, axis=0))
        return np.stack(rows).astype(np.float32)
