"""Token-based chunking with tiktoken and LangChain's splitters (the boundaries our users know).

A Markdown chunk starts with the path of headers it sits under ("Setup > Install"), so that both
its embedding and a reader know where it comes from.
"""

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

MARKDOWN_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]
HEADER_PATH_SEPARATOR = " > "
RECENT_SPLITS = 256  # files of about 20 KB: a few MB; one file often appears in several runs of a course


@functools.cache
def encoding(name: str):
    """tiktoken's encoding `name`, offline: its download host is unreachable, so unless TIKTOKEN_CACHE_DIR
    says otherwise, tiktoken reads the files litellm ships (cl100k_base, o200k_base, p50k_base) for this
    one call; the environment is left as it was."""
    import tiktoken

    bundled = importlib.util.find_spec("litellm")
    if "TIKTOKEN_CACHE_DIR" in os.environ or bundled is None or not bundled.submodule_search_locations:
        return tiktoken.get_encoding(name)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(
        Path(bundled.submodule_search_locations[0]) / "litellm_core_utils" / "tokenizers"
    )
    try:
        return tiktoken.get_encoding(name)
    finally:
        del os.environ["TIKTOKEN_CACHE_DIR"]


@dataclass(frozen=True)
class Chunker:
    """Splits content into chunks of at most `chunk_size` tokens; Markdown on its headers first."""

    encoding_name: str  # LITELLM_TOKEN_ENCODING_NAME
    chunk_size: int  # CONTENT_FILE_EMBEDDING_CHUNK_SIZE
    chunk_overlap: int  # CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP

    def count_tokens(self, text: str) -> int:
        return len(encoding(self.encoding_name).encode(text, disallowed_special=()))

    def truncate(self, text: str, max_tokens: int | None = None) -> str:
        """`text` cut to `max_tokens` (default: the chunk size) tokens."""
        tokens = encoding(self.encoding_name).encode(text, disallowed_special=())
        limit = max_tokens or self.chunk_size
        return text if len(tokens) <= limit else encoding(self.encoding_name).decode(tokens[:limit])

    def split(self, text: str, markdown: bool = False) -> list[tuple[str, list[str]]]:
        """(chunk text, header path) pairs; every chunk text is at most `chunk_size` tokens."""
        return [(chunk, list(headers)) for chunk, headers in _split(self, text, markdown)]

    def _split_plain(self, text: str, size: int) -> list[str]:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(
            chunk_size=size,
            chunk_overlap=min(self.chunk_overlap, size // 2),
            length_function=self.count_tokens,
        )
        chunks = []
        for chunk in splitter.split_text(text):
            # The splitter adds up the tokens of its pieces, which can undercount the joined text.
            chunks += [chunk] if self.count_tokens(chunk) <= size else self._hard_split(chunk, size)
        return [c for c in chunks if c.strip()]

    def _hard_split(self, text: str, size: int) -> list[str]:
        tokens = encoding(self.encoding_name).encode(text, disallowed_special=())
        return [encoding(self.encoding_name).decode(tokens[i : i + size]) for i in range(0, len(tokens), size)]


@functools.lru_cache(maxsize=RECENT_SPLITS)
def _split(chunker: Chunker, text: str, markdown: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not markdown:
        return tuple((chunk, ()) for chunk in chunker._split_plain(text, chunker.chunk_size))
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    chunks = []
    for section in MarkdownHeaderTextSplitter(MARKDOWN_HEADERS, strip_headers=True).split_text(text):
        headers = tuple(section.metadata[key] for _, key in MARKDOWN_HEADERS if key in section.metadata)
        prefix = HEADER_PATH_SEPARATOR.join(headers) + "\n\n" if headers else ""
        budget = chunker.chunk_size - chunker.count_tokens(prefix)
        chunks += [(prefix + chunk, headers) for chunk in chunker._split_plain(section.page_content, budget)]
    return tuple(chunks)
