"""Token-based chunking with tiktoken and langchain's splitters (the boundaries our users know)."""

from collections import OrderedDict
from functools import cached_property

import dagster as dg
import tiktoken
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter
from pydantic import Field, PrivateAttr

MARKDOWN_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]
HEADER_PATH_SEPARATOR = " > "
RECENT_SPLITS = 256  # files of about 20 KB: a few MB


class TextChunker(dg.ConfigurableResource):
    """Splits content into chunks of at most `chunk_size` tokens; Markdown on its headers first.

    A Markdown chunk starts with the path of headers it sits under ("Setup > Install"), so that
    both its embedding and a reader know where it comes from.
    """

    encoding_name: str = Field(description="tiktoken encoding that counts tokens (LITELLM_TOKEN_ENCODING_NAME).")
    chunk_size: int = Field(description="Most tokens in a chunk (CONTENT_FILE_EMBEDDING_CHUNK_SIZE).")
    chunk_overlap: int = Field(
        description="Tokens shared by neighbouring chunks (CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP)."
    )
    _recent: OrderedDict = PrivateAttr(default_factory=OrderedDict)  # (text, markdown) → chunks

    @cached_property
    def _encoding(self) -> tiktoken.Encoding:
        return tiktoken.get_encoding(self.encoding_name)

    def count_tokens(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=()))

    def truncate(self, text: str, max_tokens: int | None = None) -> str:
        """`text` cut to `max_tokens` (default: the chunk size) tokens."""
        tokens = self._encoding.encode(text, disallowed_special=())
        limit = max_tokens or self.chunk_size
        return text if len(tokens) <= limit else self._encoding.decode(tokens[:limit])

    def split(self, text: str, markdown: bool = False) -> list[tuple[str, list[str]]]:
        """(chunk text, header path) pairs; every chunk text is at most `chunk_size` tokens.

        The last few results are kept: one file often appears in several runs of a course.
        """
        key = (text, markdown)
        if key in self._recent:
            self._recent.move_to_end(key)
        else:
            self._recent[key] = self._split(text, markdown)
            if len(self._recent) > RECENT_SPLITS:
                self._recent.popitem(last=False)
        return [(chunk, list(headers)) for chunk, headers in self._recent[key]]

    def _split(self, text: str, markdown: bool) -> list[tuple[str, list[str]]]:
        if not markdown:
            return [(chunk, []) for chunk in self._split_plain(text, self.chunk_size)]
        sections = MarkdownHeaderTextSplitter(MARKDOWN_HEADERS, strip_headers=True).split_text(text)
        chunks = []
        for section in sections:
            headers = [section.metadata[key] for _, key in MARKDOWN_HEADERS if key in section.metadata]
            prefix = HEADER_PATH_SEPARATOR.join(headers) + "\n\n" if headers else ""
            budget = self.chunk_size - self.count_tokens(prefix)
            chunks += [(prefix + chunk, headers) for chunk in self._split_plain(section.page_content, budget)]
        return chunks

    def _split_plain(self, text: str, size: int) -> list[str]:
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
        tokens = self._encoding.encode(text, disallowed_special=())
        return [self._encoding.decode(tokens[i : i + size]) for i in range(0, len(tokens), size)]
