"""What the real model gives a user: a question in other words than the resource's finds it first."""

import json

import pytest

from embedding_pipeline.cli import main
from embedding_pipeline.search import search


def _search(pipeline, query: str, **kwargs) -> list[dict]:
    r = pipeline.resources
    return search(r["qdrant"], r["dense_encoder"], r["sparse_encoder"], query, **kwargs)


@pytest.mark.parametrize(
    ("query", "readable_id"),
    [
        ("eigenvalues, matrices and vector spaces", "ocw-18.06"),
        ("the history of jazz musicians and recordings", "pod-jazz-stories"),
        ("how to negotiate a higher salary", "yt-negotiation"),
        ("editing DNA with Cas9", "yt-crispr"),
        ("moving goods: logistics, warehouses and inventory", "prog-supply-chain"),
        ("keeping honey bees in the city", "doc-urban-beekeeping"),
    ],
)
def test_a_query_about_a_subject_returns_its_resource_first(embedded_pipeline, query, readable_id):
    for hybrid in (False, True):
        hits = _search(embedded_pipeline, query, hybrid=hybrid, limit=3)
        assert hits[0]["readable_id"] == readable_id, (hybrid, [h["readable_id"] for h in hits])


def test_a_query_finds_the_content_chunk_that_answers_it(embedded_pipeline):
    hits = _search(embedded_pipeline, "what does rubisco do in the Calvin cycle", collection="content_files", limit=3)
    assert hits[0]["resource_readable_id"] == "ocw-7.01"
    assert "rubisco" in hits[0]["chunk_content"].lower()


def test_the_resource_most_similar_to_a_podcast_is_its_episode(embedded_pipeline, capsys):
    main(["similar", "podcast.pod-jazz-stories", "--limit", "3", "--json"])
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["readable_id"] == "ep-bebop"  # the jazz episode, by the podcast's own vector
