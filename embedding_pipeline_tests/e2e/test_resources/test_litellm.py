"""The LiteLLM encoder against real HTTP servers on 127.0.0.1 (OpenAI's and Ollama's APIs)."""

import logging
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from embedding_pipeline.content import tables
from embedding_pipeline.model_identity import PROBE_TEXT
from embedding_pipeline.resources import build_resources
from embedding_pipeline.resources.encoders import dense_encoder_class
from embedding_pipeline.resources.encoders.fastembed import FastEmbedEncoder
from embedding_pipeline.resources.encoders.litellm import LiteLLMEncoder
from embedding_pipeline.resources.encoders.pacing import Pacer, duration
from embedding_pipeline.search import search
from embedding_pipeline.settings import Settings
from embedding_pipeline_tests.support.embedding_server import ENCODING, EmbeddingServer, _openai_duration
from embedding_pipeline_tests.support.helpers import interrupt_at

FORCE = {"resources": {"embed_options": {"config": {"force_reembed": True}}}}
TEXTS = [
    "Linear algebra: eigenvalues and eigenvectors",
    "Bees",
    "How do plants turn sunlight into sugar?",
    "The history of bebop at Minton's Playhouse in Harlem",
    "Retry with exponential backoff and jitter",
    "Plate tectonics and earthquakes",
    "Negotiation skills",
]


@pytest.fixture
def openai_server(model_dir):
    with EmbeddingServer(model_dir, "openai") as server:
        yield server


@pytest.fixture
def ollama_server(model_dir):
    with EmbeddingServer(model_dir, "ollama") as server:
        yield server


def _openai(server: EmbeddingServer, **fields) -> LiteLLMEncoder:
    defaults = LiteLLMEncoder.from_settings(Settings()).model_dump()  # the limits of the settings' defaults
    test = {"backoff_seconds": 0.05, "request_timeout": 5}
    return LiteLLMEncoder(**{
        **defaults, **test, "model_name": "test-minilm", "api_base": server.url, "custom_provider": "openai",
        "api_key": "sk-test-key", **fields,
    })  # fmt: skip


def _reference(model_dir, texts) -> np.ndarray:
    return (
        FastEmbedEncoder(model_name="sentence-transformers/all-MiniLM-L6-v2", model_path=str(model_dir), batch_size=32)
        .embed_documents(texts)
        .vectors
    )


def test_openai_api_returns_the_local_models_vectors_in_batches_by_count(openai_server, model_dir):
    encoder = _openai(openai_server, batch_size=3)
    vectors = encoder.embed_documents(TEXTS).vectors
    np.testing.assert_allclose(vectors, _reference(model_dir, TEXTS), atol=1e-5)
    assert [len(b) for b in openai_server.batches()] == [3, 3, 1]
    assert all(r["authorization"] == "Bearer sk-test-key" for r in openai_server.requests)
    assert openai_server.requests[0]["path"] == "/v1/embeddings"


def test_batches_respect_the_token_budget(openai_server):
    encoder = _openai(openai_server, batch_max_tokens=20)
    encoder.embed_documents(TEXTS)
    sent = [sum(r["tokens"]) for r in openai_server.requests]
    assert max(sent) <= 20 and len(sent) >= 3
    assert sorted(t for r in openai_server.requests for t in r["inputs"]) == sorted(TEXTS)


def test_ollama_api_from_the_users_settings(ollama_server, model_dir, monkeypatch):
    monkeypatch.setenv("QDRANT_ENCODER", "vector_search.encoders.litellm.LiteLLMEncoder")
    monkeypatch.setenv("QDRANT_DENSE_MODEL", "all-minilm")
    monkeypatch.setenv("LITELLM_API_BASE", ollama_server.url)
    monkeypatch.delenv("LITELLM_CUSTOM_PROVIDER", raising=False)
    settings = Settings.from_env()
    assert settings.litellm_custom_provider == "ollama"
    encoder = dense_encoder_class(settings.qdrant_encoder).from_settings(settings)
    assert isinstance(encoder, LiteLLMEncoder)
    vectors = encoder.embed_documents(TEXTS).vectors
    np.testing.assert_allclose(vectors, _reference(model_dir, TEXTS), atol=1e-5)
    assert {r["path"] for r in ollama_server.requests} == {"/api/embed"}
    assert ollama_server.requests[0]["model"] == "all-minilm"


def test_legacy_encoder_paths_are_mapped_with_a_log_line(caplog):
    with caplog.at_level(logging.INFO):
        assert dense_encoder_class("vector_search.encoders.fastembed.FastEmbedEncoder") is FastEmbedEncoder
        assert dense_encoder_class("vector_search.encoders.litellm.LiteLLMEncoder") is LiteLLMEncoder
    assert "old system's name" in caplog.text and "LiteLLMEncoder" in caplog.text


def test_rate_limits_and_server_errors_are_retried_honouring_retry_after(openai_server, caplog):
    openai_server.faults.extend(
        [("status", 429, {"Retry-After": "1"}), ("status", 500, {}), ("reset",), ("status", 503, {})]
    )
    encoder = _openai(openai_server)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        result = encoder.embed_documents(TEXTS[:2])
    assert time.monotonic() - started >= 1.0  # waited as the server asked
    assert len(openai_server.requests) == 5 and len(openai_server.batches()) == 1
    assert result.stats == {"requests": 5, "retries": 4, "rate_limited": 1, "texts_truncated": 0}
    assert not np.isnan(result.vectors).any()
    assert "RateLimitError" in caplog.text and "sk-test-key" not in caplog.text


def test_a_slow_answer_times_out_and_is_retried(openai_server):
    openai_server.faults.append(("delay", 3))
    encoder = _openai(openai_server, request_timeout=1)
    result = encoder.embed_documents(TEXTS[:3])
    assert result.stats["retries"] == 1 and result.vectors.shape == (3, 384)


def test_retries_run_out_with_the_error(openai_server):
    openai_server.faults.extend([("status", 500, {})] * 3)
    with pytest.raises(Exception, match="injected 500"):
        _openai(openai_server, max_retries=2).embed_documents(TEXTS[:1])
    assert len(openai_server.requests) == 3


def test_a_refused_input_is_isolated_and_the_rest_embedded(openai_server, model_dir):
    openai_server.reject = {"BROKEN"}
    texts = TEXTS + ["A BROKEN text the provider refuses"]
    encoder = _openai(openai_server)
    result = encoder.embed_documents(texts)
    vectors = result.vectors
    assert list(result.rejected) == [texts[-1]] and "Invalid input" in result.rejected[texts[-1]]
    assert np.isnan(vectors[-1]).all() and not np.isnan(vectors[:-1]).any()
    np.testing.assert_allclose(vectors[:-1], _reference(model_dir, TEXTS), atol=1e-5)
    assert max(len(b) for b in openai_server.batches()) < len(texts)  # it was split


def test_over_long_texts_are_cut_to_the_input_limit(openai_server):
    long_text = "word " * 60
    encoder = _openai(openai_server, max_input_tokens=10)
    result = encoder.embed_documents([long_text, "short"])
    sent = {t: n for r in openai_server.requests for t, n in zip(r["inputs"], r["tokens"])}
    assert max(sent.values()) == 10 and result.stats["texts_truncated"] == 1
    assert len(ENCODING.encode(long_text)) > 50


def test_the_dimension_is_discovered_once_from_the_server(openai_server):
    encoder = _openai(openai_server)
    assert encoder.dim == 384 and encoder.dim == 384
    assert [r["inputs"] for r in openai_server.requests] == [["dimension probe"]]
    # the next partition's run in this process (a new encoder) knows it: no request before its first batch
    assert _openai(openai_server).dim == 384 and len(openai_server.requests) == 1


def test_a_partition_embeds_through_the_openai_compatible_server_without_leaking_the_key(
    pipeline, openai_server, monkeypatch
):
    secret = "sk-secret-value-123"
    for name, value in {
        "QDRANT_ENCODER": "embedding_pipeline.resources.encoders.litellm.LiteLLMEncoder",
        "QDRANT_DENSE_MODEL": "test-minilm",
        "LITELLM_API_BASE": openai_server.url,
        "LITELLM_CUSTOM_PROVIDER": "openai",
        "OPENAI_API_KEY": secret,
    }.items():
        monkeypatch.setenv(name, value)
    pipeline.resources = build_resources(Settings.from_env())
    result = pipeline.materialize("course")
    dense = pipeline.metadata(result, "dense_vectors")
    assert (dense["model"], dense["dimension"], dense["texts_embedded"]) == ("test-minilm", 384, 32)
    # one request per batch: the resources, the content files, the resources' course information
    assert dense["requests"] == 3 and openai_server.requests[-1]["authorization"] == f"Bearer {secret}"
    with dg.build_resources({k: pipeline.resources[k] for k in ("qdrant", "dense_encoder", "sparse_encoder")}) as r:
        hits = search(r.qdrant, r.dense_encoder, r.sparse_encoder, "eigenvalues and matrices", limit=1)
    assert hits[0]["readable_id"] == "ocw-18.06"
    # A record whose text the provider refuses: named, kept in Qdrant, the rest embedded.
    openai_server.reject = {"Wave mechanics"}
    pipeline.execute(
        "UPDATE {T}learningresource SET description = description || ' Wave mechanics.', updated_on = '2025-03-01' "
        "WHERE readable_id = 'ocw-8.04'"
    )
    pipeline.execute(
        "UPDATE {T}learningresource SET description = 'Matrices.', updated_on = '2025-03-01' WHERE readable_id = 'ocw-18.06'"
    )
    refused = pipeline.materialize("course")
    dense = pipeline.metadata(refused, "dense_vectors")
    # its text and its course information
    assert dense["texts_rejected"] == 2 and "ocw.ocw-8.04: refused by test-minilm" in dense["rejected"]
    points = pipeline.metadata(refused, "qdrant_points")
    # ocw-18.06's point and its course information (its files' chunks do not show its description)
    assert (points["points_upserted"], points["points_deleted"], points["failed_records_kept"]) == (2, 0, 2)
    warnings = [e.message for e in pipeline.instance.all_logs(refused.run_id) if "Not embedded" in (e.message or "")]
    assert len(warnings) == 2 and all("ocw.ocw-8.04" in w and "refused by test-minilm" in w for w in warnings)
    openai_server.reject = set()

    logged = [str(event) for event in pipeline.instance.all_logs(result.run_id)]
    assert logged and not any(secret in line for line in logged)
    assert secret not in str(pipeline.instance.get_run_by_id(result.run_id))

    openai_server.dim = 8  # the provider now serves another dimension under the same name
    failed = pipeline.materialize("course", raise_on_error=False)
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "QDRANT_DENSE_MODEL=test-minilm at LITELLM_API_BASE=" in message
    assert "it makes vectors of 8 dimensions, the old one made 384" in message


def test_openais_reset_times_are_read():
    assert [duration(t) for t in ("6m0s", "1.5s", "120ms", "1h2m3s", "2", "soon", None)] == [
        360,
        1.5,
        0.12,
        3723,
        2,
        None,
        None,
    ]
    assert [duration(_openai_duration(s)) for s in (0.12, 1.5, 360)] == [0.12, 1.5, 360]


def test_an_answer_overtaken_by_a_later_one_does_not_raise_the_budget():
    """Request A (600 tokens) is answered after B (300), which the provider counted after A: A's headers tell
    of a budget B had not yet spent. The pacer keeps B's figure, so a request of 350 more must wait."""
    pacer, limits = Pacer(slots=8), {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-reset-tokens": "60s"}
    pacer.acquire(600)
    pacer.acquire(300)
    pacer.answered(300, {**limits, "x-ratelimit-remaining-tokens": "100"})  # B: after A's 600 and its own 300
    pacer.answered(600, {**limits, "x-ratelimit-remaining-tokens": "400"})  # A: after its own 600 only
    waiter = threading.Thread(target=pacer.acquire, args=(350,), daemon=True)
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive()  # 100 tokens refilled at 15 a second: about 17 s to wait (A's figure: none)


def test_requests_in_flight_are_paced_to_the_providers_tokens_per_minute(model_dir):
    """Four callers at once against a limit of 2,000 tokens a minute: the first minute's budget goes at once,
    the rest as the headers say it refills; no pile of 429s, every text embedded, each once."""
    texts = [f"text {i}: " + "word " * 40 for i in range(48)]  # about 45 tokens each: 2,160 in all
    with EmbeddingServer(model_dir, "openai", tokens_per_minute=2000, hashed=True) as server:
        encoder = _openai(server, batch_size=2)
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(encoder.embed_documents, [texts[i::4] for i in range(4)]))
        elapsed = time.monotonic() - started
    sent = sum(ENCODING.encode(t).__len__() for t in texts)
    assert sent > 2000 and elapsed >= 0.8 * (sent - 2000) / (2000 / 60)  # what the refill allows, not faster
    assert sum(r.stats["rate_limited"] for r in results) <= 1 and not any(r.rejected for r in results)
    assert sorted(t for b in server.batches() for t in b) == sorted(texts)


def test_a_run_keeps_its_requests_in_flight_together_and_writes_what_one_at_a_time_writes(
    pipeline, model_dir, monkeypatch
):
    """Batches of one record, a provider that takes 0.3 s a request: up to LITELLM_MAX_CONCURRENT_REQUESTS
    requests at once; the same run one request at a time (=1) writes the same points."""
    with EmbeddingServer(model_dir, "openai", latency=(0.3, 0.0)) as server:
        for name, value in {
            "QDRANT_ENCODER": "embedding_pipeline.resources.encoders.litellm.LiteLLMEncoder",
            "QDRANT_DENSE_MODEL": "test-minilm",
            "LITELLM_API_BASE": server.url,
            "LITELLM_CUSTOM_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-test-key",
            "QDRANT_CHUNK_SIZE": "1",
            "LITELLM_MAX_CONCURRENT_REQUESTS": "4",
        }.items():
            monkeypatch.setenv(name, value)
        pipeline.resources = build_resources(Settings.from_env())
        together = pipeline.metadata(pipeline.materialize("course"), "dense_vectors")
        assert server.in_flight()[0] == 4
        points = pipeline.points("resources"), pipeline.points("content_files")

        monkeypatch.setenv("LITELLM_MAX_CONCURRENT_REQUESTS", "1")
        pipeline.resources = build_resources(Settings.from_env())
        server.requests.clear()
        alone = pipeline.metadata(pipeline.materialize("course", run_config=FORCE), "dense_vectors")
        assert server.in_flight()[0] == 1
    assert alone["texts_embedded"] == together["texts_embedded"] == 32 and alone["requests"] == together["requests"]
    assert (pipeline.points("resources"), pipeline.points("content_files")) == points


def _embed_command(*flags: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("embedding-pipeline")), "embed", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **env},
    )  # fmt: skip


def _litellm_env(server: EmbeddingServer, concurrency: int) -> dict[str, str]:
    return {
        "QDRANT_ENCODER": "embedding_pipeline.resources.encoders.litellm.LiteLLMEncoder",
        "QDRANT_DENSE_MODEL": "test-hashed", "LITELLM_API_BASE": server.url, "LITELLM_CUSTOM_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-key", "QDRANT_CHUNK_SIZE": "2", "LITELLM_MAX_CONCURRENT_REQUESTS": str(concurrency),
    }  # fmt: skip


def _most_partitions_at_once(instance: dg.DagsterInstance, since: float) -> tuple[int, int]:
    """How many runs began since `since`, and the most partitions at work at once in them (from the first to
    the last log line each partition's run wrote)."""
    runs = [r.dagster_run.run_id for r in instance.get_run_records() if r.create_timestamp.timestamp() >= since]
    spans: dict[str, list[float]] = {}
    for run_id in runs:
        for event in instance.all_logs(run_id):
            partition = (event.user_message or "").split(":")[0]
            if partition in ("course", "video"):
                spans.setdefault(partition, []).append(event.timestamp)
    moments = [(min(times), max(times)) for times in spans.values()]
    return len(runs), max(sum(1 for start, end in moments if start <= moment < end) for moment, _ in moments)


def test_embed_with_a_remote_encoder_runs_two_partitions_at_once_and_writes_what_one_at_a_time_writes(pipeline):
    """While one partition waits for its last answers the next is read: one range run, partitions at once, their
    requests held to LITELLM_MAX_CONCURRENT_REQUESTS in all, a text two of them hold sent once; with 1, a run
    per partition, one after another, and the same points."""
    flags = ("--courses", "--videos")
    shared = "Lecture notes shared by a course and a video: eigenvalues, eigenvectors and the spectral theorem."
    for number, (resource_id,) in enumerate(
        pipeline.rows("SELECT MIN(id) FROM {T}learningresource WHERE resource_type IN ('course', 'video') "
                      "AND published GROUP BY resource_type")
    ):  # fmt: skip
        pipeline.insert(
            tables.content_file,
            {"id": 9300 + number, "learning_resource_id": resource_id, "key": f"shared-{number}.md", "content": shared},
        )
    with EmbeddingServer(None, "openai", hashed=True, latency=(0.2, 0.0)) as server:
        started = time.time()
        side_by_side = _embed_command(*flags, env=_litellm_env(server, 3))
        said = side_by_side.communicate(timeout=300)[0]
        assert side_by_side.returncode == 0, said[-3000:]
        sent = [text for batch in server.batches() for text in batch if text != PROBE_TEXT]  # the model's, per run
        assert sent.count(shared) == 1 and len(sent) == len(set(sent))  # what both partitions hold is sent once
        assert sorted(line.split(":")[0] for line in said.splitlines() if ": ok (run " in line) == ["course", "video"]
        assert server.in_flight()[0] == 3
        with dg.DagsterInstance.get() as instance:
            assert _most_partitions_at_once(instance, started) == (1, 2)  # one range run, both partitions at once
        points = pipeline.points("resources"), pipeline.points("content_files")

        started = time.time()
        alone = _embed_command(*flags, "--overwrite", env=_litellm_env(server, 1))
        said = alone.communicate(timeout=300)[0]
        assert alone.returncode == 0, said[-3000:]
        with dg.DagsterInstance.get() as instance:
            assert _most_partitions_at_once(instance, started) == (2, 1)
    assert (pipeline.points("resources"), pipeline.points("content_files")) == points


def test_ctrl_c_stops_partitions_running_side_by_side_and_the_next_run_resumes(pipeline):
    pipeline.add_documents(40, resource_type="course")
    with EmbeddingServer(None, "openai", hashed=True, latency=(0.5, 0.0)) as server:
        env = _litellm_env(server, 4)
        first = _embed_command("--courses", "--videos", "--podcasts", env=env)
        rest, seconds = interrupt_at(first, "course: 8/")  # a few batches written
        assert first.returncode != 0 and seconds < 15, rest[-3000:]
        assert "Interrupted: stopped at course" in rest
        assert not re.search(r"course: \d+/\d+ records \(100%\)", rest)  # it stopped at its next batch
        with dg.DagsterInstance.get() as instance:
            (run,) = instance.get_run_records()
        assert run.dagster_run.status == dg.DagsterRunStatus.FAILURE

        second = _embed_command("--courses", env=env)
        said = second.communicate(timeout=300)[0]
    assert second.returncode == 0, said[-3000:]
    listed = next(line for line in said.splitlines() if "records listed" in line)
    assert int(listed.split(" unchanged,")[0].rsplit(" ", 1)[1]) >= 8  # the batches written before Ctrl-C stay done
    assert pipeline.count("resources", resource_type="course") == 48  # the sample's 8 published and the 40


def test_new_weights_under_the_same_name_are_refused_until_a_reembed_moves_searches_to_their_collections(pipeline):
    """A provider's numeric noise is the same model; new weights served under the same name are refused in one
    line, writing nothing; `embed --reembed` re-embeds into collections of their own, each text once, and
    searches then use them; incremental runs go on."""
    ((readable_id, text),) = pipeline.rows(  # a query only its own resource's point is near, for these word hashes
        "SELECT readable_id, title || ' ' || description FROM {T}learningresource "
        "WHERE published AND resource_type = 'course' LIMIT 1"
    )
    with EmbeddingServer(None, "openai", hashed=True) as server:
        server.noise = 5e-4  # every answer a little different, as a provider's are
        env = _litellm_env(server, 4) | {"QDRANT_CHUNK_SIZE": "100"}
        pipeline.reconfigure(**env)
        assert all(result.success for result in pipeline.materialize_all().values())
        with pipeline.store() as store:
            before = {name: store.count(name) for name in store.collections()}

        server.weights, sent = 1, len(server.requests)
        refused = _embed_command(env=env)
        said = refused.communicate(timeout=300)[0]
        assert refused.returncode != 0 and "Traceback" not in said, said[-3000:]
        (line,) = said.strip().splitlines()
        assert line.startswith(f"QDRANT_DENSE_MODEL=test-hashed at LITELLM_API_BASE={server.url}: its vector for")
        assert all(r["inputs"] == [PROBE_TEXT] for r in server.requests[sent:])  # nothing but the probe
        with pipeline.store() as store:
            assert {name: store.count(name) for name in store.collections()} == before

        sent = len(server.requests)
        assert _finished(_embed_command("--reembed", env=env)).count(": ok (run ") == 9
        texts = [text for r in server.requests[sent:] for text in r["inputs"] if text != PROBE_TEXT]
        assert len(texts) == len(set(texts))  # a text several records hold is embedded once
        with pipeline.store() as store:
            after, physical = store.aliases(), store.collections()
        assert all(target.rsplit(".", 1)[1].startswith(version.rsplit(".", 1)[1] + "-") for target, version in zip(
            sorted(after.values()), sorted(before)))  # fmt: skip
        assert sorted(physical) == sorted(after.values())  # the old model's collections are gone
        (hit,) = search(pipeline.qdrant, pipeline.resources["dense_encoder"], pipeline.resources["sparse_encoder"],
                        text, limit=1)  # fmt: skip
        assert hit["readable_id"] == readable_id  # the query and the points: one model

        pipeline.execute("UPDATE {T}learningresource SET title = 'Beekeeping' WHERE readable_id = :id", id=readable_id)
        incremental = pipeline.materialize("course")  # a sensor's run: the probe's noise is no change of model
        # the resource and its course information record, both showing the title
        assert pipeline.metadata(incremental, "source_content")["listed_changed"] == 2
    with pipeline.store() as store:
        assert store.aliases() == after


def _finished(command: subprocess.Popen) -> str:
    said = command.communicate(timeout=300)[0]
    assert command.returncode == 0, said[-3000:]
    return said
