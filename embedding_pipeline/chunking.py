"""Chunking as mit-learn chunks content files (vector_search.utils._chunk_documents and
_chunk_markdown_documents), so that our chunks, their ids and their vectors are the ones it would write.

LangChain's RecursiveCharacterTextSplitter cuts `chunk_size` characters, or `chunk_size` tokens of
tiktoken's `encoding_name` when LITELLM_TOKEN_ENCODING_NAME is set. Markdown (a `.md` file or a
marketing page) is split on its headers first, headers kept; a piece that lost its heading starts
with the path of headers it sits under ("Setup > Install").
"""

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

# vector_search.utils.MARKDOWN_HEADERS_TO_SPLIT_ON
MARKDOWN_HEADERS = [("#", "Header 1"), ("##", "Header 2"), ("###", "Header 3"), ("####", "Header 4")]
HEADER_PATH_SEPARATOR = " > "
COUNTING_ENCODING = "cl100k_base"  # counts tokens for reports and batches when chunks are cut by characters
RECENT_SPLITS = 256  # files of about 20 KB: a few MB; one file often appears in several runs of a course
DEFAULT_TRUNCATE_CHARS = 20_000  # vector_search.encoders.utils: a text cut for a model of unknown limit


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


def load_litellm():
    """LiteLLM, loaded offline: it fetches a model cost map at import unless told to use its bundled copy."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    # LiteLLM turns max_retries=0 into its default (2) for OpenAI clients; the retries here are ours
    # (backoff with jitter, Retry-After, counted), so its own default must be none.
    litellm.DEFAULT_MAX_RETRIES = 0
    return litellm


@functools.cache
def _max_input_tokens(model: str) -> int | None:
    """LiteLLM's input limit for `model`, or None when it does not know the model."""
    try:
        return load_litellm().get_model_info(model).get("max_input_tokens")
    except Exception:  # noqa: BLE001 (as mit-learn: whatever LiteLLM raises for a model it does not know)
        return None


def limit_encoding(model: str, fallback: str | None) -> str | None:
    """The token encoding mit-learn's LiteLLMEncoder counts `model`'s limit with: tiktoken's for the model,
    else LITELLM_TOKEN_ENCODING_NAME."""
    import tiktoken

    try:
        return tiktoken.encoding_name_for_model(model)
    except KeyError:
        return fallback


def is_markdown(file_type: str | None, file_extension: str | None) -> bool:
    """vector_search.utils._is_markdown_content."""
    return file_type == "marketing_page" or file_extension == ".md"


@dataclass(frozen=True)
class Chunker:
    """Splits content into chunks of at most `chunk_size` characters, or tokens when `encoding_name` is set;
    cuts a resource's text to its dense model's input limit."""

    encoding_name: str | None  # LITELLM_TOKEN_ENCODING_NAME
    chunk_size: int  # CONTENT_FILE_EMBEDDING_CHUNK_SIZE
    chunk_overlap: int  # CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP
    limit_model: str | None = None  # the LiteLLM model whose input limit cuts a resource's text (None: characters)
    limit_encoding: str | None = None  # the tiktoken encoding that counts that limit

    def fit_to_model(self, text: str) -> str:
        """vector_search.encoders.utils.truncate_to_model_limit: the first tokens of `text` the dense model takes
        when LiteLLM knows its limit and a token encoding is known, else its first 20,000 characters."""
        limit = _max_input_tokens(self.limit_model) if self.limit_model and self.limit_encoding else None
        if limit:
            try:
                tokens = encoding(self.limit_encoding).encode(text)  # special tokens refused, as mit-learn's call
                return text if len(tokens) <= limit else encoding(self.limit_encoding).decode(tokens[:limit])
            except ValueError:
                pass
        return text[:DEFAULT_TRUNCATE_CHARS]

    def count_tokens(self, text: str) -> int:
        return len(encoding(self.encoding_name or COUNTING_ENCODING).encode(text, disallowed_special=()))

    def split(self, text: str, markdown: bool = False) -> list[str]:
        """The chunks' texts, in order (the splitter makes no empty chunk, so numbers match mit-learn's)."""
        return list(_split(self, text, markdown))

    def splitter(self):
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        if not self.encoding_name:
            return RecursiveCharacterTextSplitter(chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap)
        tokens = encoding(self.encoding_name)  # what from_tiktoken_encoder does, with the encoding read offline
        return RecursiveCharacterTextSplitter(
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            length_function=lambda piece: len(tokens.encode(piece, disallowed_special=())),
        )


@functools.lru_cache(maxsize=RECENT_SPLITS)
def _split(chunker: Chunker, text: str, markdown: bool) -> tuple[str, ...]:
    splitter = chunker.splitter()
    if not markdown:
        return tuple(doc.page_content for doc in splitter.create_documents([text]) if doc.page_content)
    return tuple(chunk for chunk in _markdown_chunks(splitter, text) if chunk)


def _markdown_chunks(splitter, text: str) -> list[str]:
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    sections = MarkdownHeaderTextSplitter(headers_to_split_on=MARKDOWN_HEADERS, strip_headers=False).split_text(text)
    chunks = []
    for doc in splitter.split_documents(sections):
        lost = [
            doc.metadata[key]
            for prefix, key in MARKDOWN_HEADERS
            if key in doc.metadata and not doc.page_content.startswith(f"{prefix} {doc.metadata[key]}")
        ]
        chunks.append(f"{HEADER_PATH_SEPARATOR.join(lost)}\n\n{doc.page_content}" if lost else doc.page_content)
    return chunks
