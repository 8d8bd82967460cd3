"""The chunking settings as a Dagster resource; the chunking itself is `embedding_pipeline.chunking`."""

import dagster as dg
from pydantic import Field

from embedding_pipeline.chunking import Chunker, limit_encoding


class TextChunker(dg.ConfigurableResource):
    """Splits content as mit-learn does: `chunk_size` characters, or tokens of `encoding_name` when it is set;
    Markdown on its headers first."""

    encoding_name: str | None = Field(
        default=None,
        description="tiktoken encoding that measures chunks; empty: characters (LITELLM_TOKEN_ENCODING_NAME).",
    )
    chunk_size: int = Field(description="Most characters or tokens in a chunk (CONTENT_FILE_EMBEDDING_CHUNK_SIZE).")
    chunk_overlap: int = Field(
        description="Characters or tokens shared by neighbouring chunks (CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP)."
    )

    limit_model: str | None = Field(
        default=None,
        description="The LiteLLM model whose input limit cuts a resource's text, its own files' text folded in "
        "(QDRANT_DENSE_MODEL with a LiteLLM encoder); empty: 20,000 characters, as mit-learn cuts for other encoders.",
    )

    def get_chunker(self) -> Chunker:
        counted_by = limit_encoding(self.limit_model, self.encoding_name) if self.limit_model else None
        return Chunker(self.encoding_name, self.chunk_size, self.chunk_overlap, self.limit_model, counted_by)
