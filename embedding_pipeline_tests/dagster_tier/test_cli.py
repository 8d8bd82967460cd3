"""What a user types: the search command and Dagster's own CLI against the same Qdrant."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from embedding_pipeline.cli import main
from embedding_pipeline.sample_data import load_sample_data
from embedding_pipeline_tests.support.helpers import encoder_env, hold_store, pipeline_env, resource, run_dagster


def test_search_prints_title_type_and_score(embedded_pipeline, capsys):
    main(["search", "CRISPR gene editing", "--limit", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(" 1. ") and "[video] CRISPR Gene Editing, Animated" in lines[0]
    assert len(lines) == 2


def test_search_content_files_shows_the_chunk_start(embedded_pipeline, capsys):
    main(["search", "catching a swarm of bees", "--collection", "content_files", "--hybrid", "--limit", "1"])
    first, chunk = capsys.readouterr().out.splitlines()
    assert "[document] A Field Guide to Urban Beekeeping  (library.doc-urban-beekeeping)" in first
    assert "A Field Guide to Urban Beekeeping (chunk" in chunk and "Swarms" in chunk


def test_search_json_holds_payload_and_score(embedded_pipeline, capsys):
    main(["search", "quantum tunneling", "--json", "--limit", "3"])
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 3 and hits[0]["readable_id"] == "ocw-8.04"
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]


def test_search_filters_by_resource_type_and_platform(embedded_pipeline, capsys):
    main(
        ["search", "science", "--resource-type", "podcast_episode", "--platform", "podcast", "--json", "--limit", "20"]
    )
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 6
    assert {(h["resource_type"], h["platform"]["code"]) for h in hits} == {("podcast_episode", "podcast")}
    main(["search", "science", "--platform", "ocw", "--json", "--limit", "20"])
    assert {h["platform"]["name"] for h in json.loads(capsys.readouterr().out)} == {"MIT OpenCourseWare"}


def test_similar_resources_are_other_resources_never_the_resource_itself(embedded_pipeline, capsys):
    main(["similar", "podcast.pod-jazz-stories", "--limit", "3", "--json"])
    hits = json.loads(capsys.readouterr().out)
    assert "pod-jazz-stories" not in [h["readable_id"] for h in hits] and len(hits) == 3
    main(["similar", "youtube.yt-crispr", "--limit", "40", "--resource-type", "video"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all("[video]" in line for line in lines)  # the other five videos
    assert not any("youtube.yt-crispr)" in line for line in lines)


def test_similar_names_a_resource_it_does_not_know(embedded_pipeline):
    with pytest.raises(SystemExit, match="No resource 'ocw.no-such-course' in resource_embeddings.resources"):
        main(["similar", "ocw.no-such-course"])


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["search", "  "], "Nothing to search for: the query is empty"),
        (["search", "bees", "--limit", "-1"], "A limit of -1 results: ask for 1 or more"),
        (["search", "bees", "--limit", "0"], "A limit of 0 results: ask for 1 or more"),
        (["similar", "youtube.yt-crispr", "--limit", "0"], "A limit of 0 results: ask for 1 or more"),
    ],
)
def test_a_query_that_cannot_be_asked_ends_with_one_line(embedded_pipeline, command, message):
    with pytest.raises(SystemExit) as stopped:
        main(command)
    assert stopped.value.code == message


def test_a_search_waits_for_a_run_holding_the_embedded_store_and_says_so(embedded_pipeline, capsys, caplog):
    holder = hold_store(embedded_pipeline.settings.qdrant_path)  # a run writing, for instance, until we wait
    main(["search", "CRISPR gene editing", "--limit", "1"])
    assert "[video] CRISPR Gene Editing, Animated" in capsys.readouterr().out
    assert (
        f"Waiting for the embedded Qdrant in {embedded_pipeline.settings.qdrant_path}: held by pid {holder.pid}"
        in caplog.text
    )
    holder.wait()


def test_a_search_that_waited_long_enough_ends_with_one_line_naming_the_holder(embedded_pipeline):
    holder = hold_store(embedded_pipeline.settings.qdrant_path, until="killed")
    try:
        with pytest.raises(SystemExit, match=f"still held by pid {holder.pid} .*QDRANT_LOCK_WAIT_SECONDS"):
            main(["search", "CRISPR gene editing", "--wait", "1"])
    finally:
        holder.kill()


def test_a_search_before_anything_was_embedded_says_so(pipeline):
    with pytest.raises(SystemExit, match="Qdrant has no collection resource_embeddings.resources: run the embed job"):
        main(["search", "anything"])


def test_dagster_cli_job_execute_and_asset_materialize_write_to_one_qdrant(tmp_path, model_dir, monkeypatch, encoder):
    env = pipeline_env(tmp_path, model_dir, **encoder_env(encoder))
    load_sample_data(f"sqlite:///{tmp_path / 'content.db'}")
    module = ["-m", "embedding_pipeline.definitions"]

    job = run_dagster(env, "job", "execute", *module, "-j", "embed", "--tags", '{"dagster/partition": "course"}')
    assert job.returncode == 0, job.stderr[-3000:]
    asset = run_dagster(env, "asset", "materialize", *module, "--select", "*", "--partition", "video")
    assert asset.returncode == 0, asset.stderr[-3000:]

    qdrant = resource("qdrant", path=str(tmp_path / "qdrant"))
    with qdrant.get_store() as store:
        types = [payload["resource_type"] for _, payload in store.scroll(qdrant.alias("resources"))]
    assert types.count("course") == 8 and types.count("video") == 6

    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
    assert sorted(r.tags["dagster/partition"] for r in runs) == ["course", "video"]
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)


def test_the_runs_of_one_embed_share_the_store_yet_a_waiting_search_gets_in_long_before_it_ends(pipeline, capsys):
    """`embed` keeps the embedded store open from one partition's run to the next (it opens once);
    a search from another process still gets its turn at the next batch, not when the command ends."""
    pipeline.add_documents(200)  # the last partition (document) takes a while, in batches of 20 records
    command = subprocess.Popen(
        [str(Path(sys.executable).parent / "embedding-pipeline"), "embed"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "QDRANT_CHUNK_SIZE": "20", "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        for line in command.stdout:
            if line.startswith("video_playlist: ok"):  # the store stays open for the document run
                break
        main(["search", "quantum tunneling", "--limit", "1", "--wait", "120"])
        assert command.poll() is None, "the search waited for the whole command"
        assert "ocw-8.04" in capsys.readouterr().out
        rest = command.stdout.read()
    finally:
        command.kill() if command.poll() is None else None
    assert command.wait() == 0 and "document: ok" in rest
    assert pipeline.count("resources", resource_type="document") == 205


def test_ctrl_c_ends_a_search_waiting_for_the_store_in_one_line(embedded_pipeline):
    holder = hold_store(embedded_pipeline.settings.qdrant_path, until="killed")
    try:
        waiting = subprocess.Popen(
            [str(Path(sys.executable).parent / "embedding-pipeline"), "search", "bees"],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )  # fmt: skip
        for line in waiting.stderr:
            if "Waiting for the embedded Qdrant" in line:
                break
        waiting.send_signal(signal.SIGINT)
        try:
            rest = waiting.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:  # seen once in CI: say where it waits (faulthandler dumps on SIGABRT)
            waiting.send_signal(signal.SIGABRT)
            pytest.fail("the search went on waiting after Ctrl-C:\n" + waiting.communicate(timeout=30)[1][-6000:])
    finally:
        holder.kill()
    assert waiting.returncode == 1 and rest.strip().splitlines()[-1] == "Interrupted" and "Traceback" not in rest
