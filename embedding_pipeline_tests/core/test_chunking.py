"""Chunking as mit-learn chunks: by characters unless a token encoding is set, Markdown on its headers.
(That our chunks are exactly mit-learn's on the samples is test_mit_learn_points.)"""

from itertools import pairwise

from embedding_pipeline.chunking import Chunker, is_markdown
from embedding_pipeline.sample_data import HERE

LONG_DOC = (HERE / "files" / "distributed_systems.md").read_text()


def test_chunks_are_cut_by_characters_unless_a_token_encoding_is_set():
    by_characters = Chunker(None, 300, 0).split(LONG_DOC)
    assert len(by_characters) > 30 and max(len(c) for c in by_characters) <= 300
    by_tokens = Chunker("cl100k_base", 300, 0)
    chunks = by_tokens.split(LONG_DOC)
    assert max(by_tokens.count_tokens(c) for c in chunks) <= 300 and max(len(c) for c in chunks) > 600


def test_neighbouring_chunks_share_the_overlap():
    chunks = Chunker("cl100k_base", 100, 20).split(LONG_DOC)
    shared = sum(1 for a, b in pairwise(chunks) if a[-40:].split()[-1] in b[:200])
    assert shared > len(chunks) / 2


def test_markdown_keeps_its_headers_and_a_piece_that_lost_them_starts_with_their_path():
    chunks = Chunker(None, 512, 0).split(LONG_DOC, markdown=True)
    retries = next(c for c in chunks if "exponential backoff" in c)
    assert retries.startswith(
        "Designing Reliable Distributed Systems: Lecture Notes > 2. Idempotence and Retries > 2.4 Retrying well\n\n"
        "Retries turn transient failures"
    )
    # No chunk mixes two sections.
    assert not any("2.4 Retrying well" in c and "3.1 Why replicate" in c for c in chunks)


def test_short_text_is_one_chunk_and_blank_text_none():
    assert Chunker(None, 512, 0).split("A short transcript.") == ["A short transcript."]
    assert Chunker(None, 512, 0).split("   ") == []


def test_markdown_is_what_mit_learn_calls_markdown():
    assert is_markdown("page", ".md") and is_markdown("marketing_page", ".html")
    assert not is_markdown("page", ".markdown") and not is_markdown("page", ".MD")


def test_the_encoding_comes_from_the_setting_offline():
    assert Chunker("o200k_base", 512, 0).count_tokens("hello world") == 2


def test_the_environment_is_left_as_it_was(monkeypatch):
    """tiktoken reads litellm's bundled files offline without the process's environment being changed."""
    import os

    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    before = dict(os.environ)
    assert Chunker("p50k_base", 512, 0).count_tokens("hello world") == 2
    assert dict(os.environ) == before
