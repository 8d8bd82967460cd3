"""Token-based chunking: limits, overlap, Markdown headers."""

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.sample_data import HERE


def make(chunk_size: int = 512, chunk_overlap: int = 51, encoding_name: str = "cl100k_base") -> Chunker:
    return Chunker(encoding_name, chunk_size, chunk_overlap)


LONG_DOC = (HERE / "files" / "distributed_systems.md").read_text()


def test_chunks_stay_within_the_token_limit_and_overlap():
    chunker = make(chunk_size=100, chunk_overlap=20)
    chunks = [text for text, _ in chunker.split(LONG_DOC)]
    assert len(chunks) > 30
    assert max(chunker.count_tokens(c) for c in chunks) <= 100
    # Neighbouring chunks share text, so no sentence is cut off from its context.
    shared = sum(1 for a, b in zip(chunks, chunks[1:]) if a[-40:].split()[-1] in b[:200])
    assert shared > len(chunks) / 2


def test_markdown_is_split_on_headers_first_with_the_header_path_in_each_chunk():
    chunker = make(chunk_size=120, chunk_overlap=10)
    chunks = chunker.split(LONG_DOC, markdown=True)
    assert all(chunker.count_tokens(text) <= 120 for text, _ in chunks)
    retries = [(text, headers) for text, headers in chunks if "exponential backoff" in text]
    text, headers = retries[0]
    assert headers == [
        "Designing Reliable Distributed Systems: Lecture Notes",
        "2. Idempotence and Retries",
        "2.4 Retrying well",
    ]
    assert text.startswith(" > ".join(headers) + "\n\n")
    # No chunk mixes two sections.
    assert not any("2.4 Retrying well" in t and "3.1 Why replicate" in t for t, _ in chunks)


def test_plain_text_chunks_have_no_headers_and_short_text_is_one_chunk():
    chunker = make()
    assert chunker.split("A short transcript.") == [("A short transcript.", [])]
    assert chunker.split("   ") == []


def test_truncate_cuts_to_the_token_budget():
    chunker = make(chunk_size=50)
    assert chunker.count_tokens(chunker.truncate(LONG_DOC)) <= 50
    assert chunker.truncate("short text") == "short text"


def test_the_encoding_comes_from_the_setting_offline():
    assert make(encoding_name="o200k_base").count_tokens("hello world") == 2


def test_the_environment_is_left_as_it_was(monkeypatch):
    """tiktoken reads litellm's bundled files offline without the process's environment being changed."""
    import os

    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    before = dict(os.environ)
    assert make(encoding_name="p50k_base").count_tokens("hello world") == 2
    assert dict(os.environ) == before
