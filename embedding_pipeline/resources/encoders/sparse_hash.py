"""mit-learn's default sparse encoder (vector_search.encoders.sparse_hash.SparseHashEncoder), implemented as
it is: scikit-learn's HashingVectorizer(stop_words="english"), values with |v| <= 0.1 dropped, no IDF.

mit-learn's search makes its query vectors with its own copy of this class, so the documents we write
must be made exactly the same way for its sparse and hybrid searches to find them.
"""

from pydantic import Field

from embedding_pipeline.resources.encoders.base import SparseEncoderBase
from embedding_pipeline.vector_store import SparseVector

DEFAULT_MODEL = "sklearn/hashing_vectorizer_sparse_model"  # the vector is named `hashing_vectorizer_sparse_model`
PRUNE_AT = 0.1  # SparseHashEncoder.prune_sparse_vector's threshold


class SparseHashEncoder(SparseEncoderBase):
    """Hashed word counts, L2-normalized (scikit-learn's defaults), English stop words removed."""

    model_name: str = Field(default=DEFAULT_MODEL, description="Names the Qdrant vector (QDRANT_SPARSE_MODEL_V2).")

    @classmethod
    def from_settings(cls, settings) -> "SparseHashEncoder":
        return cls(model_name=settings.qdrant_sparse_model or DEFAULT_MODEL)

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        if not texts:
            return []
        matrix = _vectorizer().transform(texts)  # rows are independent: a batch gives each text its own vector
        return [_pruned(matrix.getrow(i)) for i in range(matrix.shape[0])]


def _pruned(row) -> SparseVector:
    kept = [(int(i), float(v)) for i, v in zip(row.indices.tolist(), row.data.tolist()) if abs(v) > PRUNE_AT]
    return SparseVector([i for i, _ in kept], [v for _, v in kept])


def _vectorizer():
    from sklearn.feature_extraction.text import HashingVectorizer  # scikit-learn loads only where this encoder runs

    return HashingVectorizer(stop_words="english")
