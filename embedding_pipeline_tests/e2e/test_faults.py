"""Faults and bad input, as a hostile operator makes them: a killed run, broken rows, a wrong database."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from embedding_pipeline.assets.embed import PARTITIONS_TAG
from embedding_pipeline.cli import main
from embedding_pipeline.content import NO_RESOURCES, tables
from embedding_pipeline.content.tables import PREFIX as T
from embedding_pipeline.content.tables import metadata
from embedding_pipeline.mit_learn import OWN, own
from embedding_pipeline.partitions import PARTITIONS
from embedding_pipeline.run_workers import WORKER_TAG
from embedding_pipeline.sample_data import complete
from embedding_pipeline_tests.support.encoders import HASHING_ENCODER
from embedding_pipeline_tests.support.helpers import (
    QUICK_SENSOR,
    chunker,
    dagster_daemon,
    hold_store,
    interrupt_at,
    pipeline_env,
    resource,
)

# Faults that need no timing of the real model's work: the deterministic encoder, in seconds (the kills and
# Ctrl-C below keep the real model, whose runs last long enough to be cut at the moment they aim at).
DETERMINISTIC = pytest.mark.parametrize("encoder", [HASHING_ENCODER], ids=["deterministic"])

BIN = Path(sys.executable).parent


def embed(*flags: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`embedding-pipeline embed FLAGS` in the pipeline's environment (the fixture set it)."""
    return subprocess.run(
        [str(BIN / "embedding-pipeline"), "embed", *flags],
        capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


@DETERMINISTIC
def test_embed_names_the_records_no_partition_embeds_in_one_line_and_in_the_metadata(pipeline):
    """A published resource of a type none of the eight partitions takes, and a file whose resource is gone."""
    pipeline.insert(
        tables.learning_resource,
        {"id": 9001, "readable_id": "a-1", "platform_id": "blog", "resource_type": "article", "title": "An article"},
    )
    pipeline.insert(tables.content_file, {"id": 9101, "learning_resource_id": 777777, "key": "k", "content": "text"})
    result = embed("--documents")
    assert result.returncode == 0, result.stderr[-3000:]
    found = (
        "1 learning resources of a type that is not one of the eight: id 9001 (article); "
        "1 content files whose resource does not exist: id 9101 (777777)"
    )
    assert [line for line in result.stdout.splitlines() if "Never embedded" in line] == [f"Never embedded: {found}"]
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("source_content"))
    assert event.asset_materialization.metadata["never_embedded"].value == (
        "1 learning resources of a type that is not one of the eight; 1 content files whose resource does not exist"
    )


def _stored_points(path, resource_type: str = "course") -> dict[str, tuple[int, str]]:
    """Per collection: how many points of the type Qdrant holds, and a digest of their ids and point hashes."""
    import hashlib
    import json

    qdrant = resource("qdrant", path=str(path))
    found = {}
    with qdrant.get_store() as store:
        for kind in ("resources", "content_files"):
            points = dict(store.scroll(qdrant.alias(kind), {own("resource_type"): resource_type}, [OWN]))
            hashes = sorted((pid, payload[OWN]["point_hash"]) for pid, payload in points.items())
            found[kind] = (len(points), hashlib.md5(json.dumps(hashes).encode()).hexdigest())
    return found


@DETERMINISTIC  # the writes are what it cuts short: the real model would only add its load to every run
def test_a_run_killed_during_a_batchs_upserts_is_healed_by_the_very_next_run(pipeline, tmp_path, model_dir):
    """Content files of many short chunks of few distinct texts, written a point per request: a run spends most
    of its time writing. Killed 0.15 s after a batch, in the next one's 3,000 writes; the next run ends consistent
    (exit 0, points_match_source passed) and holds exactly what a clean run holds."""
    text = "Bees dance to tell the hive where the flowers are. " * 600  # 300 chunks of 100 characters
    pipeline.insert(tables.learning_resource, *[
        {"id": 7000 + i, "readable_id": f"bees-{i}", "platform_id": "ocw", "resource_type": "course", "title": f"Bees {i}"}
        for i in range(30)
    ])  # fmt: skip
    pipeline.insert(
        tables.run, *[{"id": 7000 + i, "learning_resource_id": 7000 + i, "run_id": f"r{i}"} for i in range(30)]
    )
    pipeline.insert(tables.content_file, *[
        {"id": 7000 + i, "run_id": 7000 + i, "key": f"notes-{i}", "title": f"Notes {i}", "content": text} for i in range(30)
    ])  # fmt: skip
    small = {
        "QDRANT_POINT_UPLOAD_BATCH_SIZE": "1", "QDRANT_CHUNK_SIZE": "10",
        "CONTENT_FILE_EMBEDDING_CHUNK_SIZE": "100", "CONTENT_FILE_EMBEDDING_CHUNK_OVERLAP": "0",
    }  # fmt: skip
    clean = {**small, **pipeline_env(tmp_path / "clean", model_dir), "QDRANT_PATH": str(tmp_path / "clean" / "qdrant")}
    clean["CONTENT_DATABASE_URL"] = pipeline.settings.content_database_url
    assert embed("--courses", env=clean).returncode == 0
    mine = {**small, "QDRANT_PATH": str(pipeline.settings.qdrant_path)}
    cut_short = 0
    # until a kill lands in the writes (a batch reads, then writes for most of its time): killed 60% into the third
    # batch of files, as long as the second took (later tries further in)
    for attempt, flags in enumerate([[], *[["--recreate-collections"]] * 3]):
        run = subprocess.Popen(
            [str(BIN / "embedding-pipeline"), "embed", "--courses", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **mine},
        )  # fmt: skip
        written = []  # when each batch was written: the resources (38, ten at a time), then ten files at a time
        for line in run.stdout:
            if " records (" in line:
                written.append(time.monotonic())
            if len(written) == 6:
                break
        time.sleep((written[5] - written[4]) * (0.6 + 0.1 * attempt))
        run.kill()
        run.wait()
        healed = embed("--courses", env=mine)
        assert healed.returncode == 0 and "course: ok" in healed.stdout, healed.stdout[-2000:] + healed.stderr[-3000:]
        assert _stored_points(mine["QDRANT_PATH"]) == _stored_points(clean["QDRANT_PATH"])
        cut_short += "out of step" in healed.stderr
        if cut_short:
            break
    assert cut_short  # at least one kill cut a batch short
    again = embed("--courses", env=mine)
    assert "0 new, 0 changed" in again.stderr


def _texts_embedded_since(since: float) -> int:
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey("dense_vectors"), limit=20).records
    return sum(r.asset_materialization.metadata["texts_embedded"].value for r in records if r.timestamp > since)


@DETERMINISTIC
def test_a_damaged_vectors_file_is_named_and_repair_rebuilds_it_embedding_only_what_was_lost(pipeline):
    """The dense vectors of a collection's segment cut short, as a disk fault leaves them: the next run fails in
    one line naming the collection and its folder (never "ok"), and stops the command there; `repair` copies every point it can still read into
    a fresh collection and embeds only the others; then searches answer and the checks pass."""
    assert embed().returncode == 0
    name = pipeline.qdrant.collection_names().physical("content_files")
    folder = pipeline.settings.qdrant_path / "collections" / name
    with pipeline.store() as store:
        points = store.count(name)
    dense = pipeline.resources["dense_encoder"]
    (vectors,) = folder.glob(f"segments/*/vector_storage-{dense.vector_name}/vectors/chunk_0.mmap")
    os.truncate(vectors, 40 * dense.dim * 4)  # the first 40 points' vectors are left
    broken = embed()  # every partition would meet it: said once, at the first, without a stack trace
    assert broken.returncode != 0 and "Stack Trace" not in broken.stderr and "Traceback" not in broken.stderr
    (failed,) = broken.stdout.splitlines()
    assert failed.startswith(f"course: FAILED: The Qdrant collection {name} in {folder} cannot be read")
    assert broken.stderr.strip().splitlines()[-1] == "Stopped at course: the other partitions would fail the same way"

    started = time.time()
    repaired = subprocess.run(
        [str(BIN / "embedding-pipeline"), "repair"], capture_output=True, text=True, timeout=600, check=False
    )
    assert repaired.returncode == 0, repaired.stdout[-2000:] + repaired.stderr[-3000:]
    (line,) = [line for line in repaired.stdout.splitlines() if line.startswith(f"{name}: rebuilt")]
    copied, lost = (
        int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:points that could be read|could not)", line)
    )
    assert copied == 40 and copied + lost == points
    assert 0 < _texts_embedded_since(started) <= lost  # only what was lost, and less where a text repeats
    with pipeline.store() as store:
        assert store.count(name) == points
    settled = embed("--documents")
    assert settled.returncode == 0 and "0 new, 0 changed" in settled.stderr
    main(["search", "open data", "--collection", "content_files", "--limit", "1"])  # searches answer


@DETERMINISTIC
def test_a_damaged_segment_file_is_named_in_one_line_and_repair_rebuilds_the_collection(pipeline):
    """A segment's segment.json cut short: `embed` stops in one line naming the collection and `repair`, with no
    stack trace; `repair` rebuilds the collection (from what it can read, and the next run embeds the rest)."""
    assert embed("--documents").returncode == 0
    name = pipeline.qdrant.collection_names().physical("content_files")
    folder = pipeline.settings.qdrant_path / "collections" / name
    for config in folder.glob("segments/*/segment.json"):
        os.truncate(config, config.stat().st_size // 2)
    broken = embed("--documents")
    assert broken.returncode != 0 and "Traceback" not in broken.stderr and "Stack Trace" not in broken.stderr
    (failed,) = broken.stdout.splitlines()
    assert failed.startswith(f"document: FAILED: The Qdrant collection {name} in {folder} cannot be read")
    assert "embedding-pipeline repair" in failed

    repaired = subprocess.run(
        [str(BIN / "embedding-pipeline"), "repair"], capture_output=True, text=True, timeout=600, check=False
    )
    assert repaired.returncode == 0, repaired.stdout[-2000:] + repaired.stderr[-3000:]
    assert any(line.startswith(f"{name}: rebuilt") for line in repaired.stdout.splitlines()), repaired.stdout
    assert "document: ok" in repaired.stdout  # the run it ends with wrote what could not be read
    assert _stored_points(pipeline.settings.qdrant_path, "document")["content_files"][0] > 0


@DETERMINISTIC
def test_a_deleted_collection_folder_or_deleted_segments_are_named_by_search_and_repair_which_mends_them(pipeline):
    """What each collection held when the last run finished is kept beside it: a collection whose folder or
    segments were deleted is named in one line by a search (a count, no scan) and by `repair`, never called
    healthy, and `repair` brings back every point (the run it ends with writes what was lost)."""
    assert embed("--documents").returncode == 0
    names = pipeline.qdrant.collection_names()
    folders = {
        kind: pipeline.settings.qdrant_path / "collections" / names.physical(kind)
        for kind in ("resources", "content_files")
    }
    before = _stored_points(pipeline.settings.qdrant_path, "document")
    shutil.rmtree(folders["content_files"])
    for lost in [*folders["resources"].glob("segments/*"), *folders["resources"].glob("wal/*")]:
        shutil.rmtree(lost) if lost.is_dir() else lost.unlink()  # what the WAL would replay goes too

    searched = subprocess.run(
        [str(BIN / "embedding-pipeline"), "search", "open data"], capture_output=True, text=True, timeout=120, check=False
    )  # fmt: skip
    warnings = sorted(line for line in searched.stderr.splitlines() if "the last run left" in line)
    assert len(warnings) == 2 and all("repair" in line for line in warnings)  # once each, as the store opens
    assert f"{names.physical('content_files')}: the collection is gone" in warnings[0]
    assert f"{names.physical('resources')}: holds 0 of the " in warnings[1]
    repaired = subprocess.run(
        [str(BIN / "embedding-pipeline"), "repair"], capture_output=True, text=True, timeout=600, check=False
    )
    assert repaired.returncode == 0, repaired.stdout[-2000:] + repaired.stderr[-3000:]
    assert "every point can be read" not in repaired.stdout
    assert f"{names.physical('content_files')}: the collection is gone" in repaired.stdout
    assert f"{names.physical('resources')}: holds 0 of the" in repaired.stdout
    assert _stored_points(pipeline.settings.qdrant_path, "document") == before


@DETERMINISTIC
def test_an_id_mapping_cut_in_half_is_found_by_the_next_run_which_writes_the_lost_points_again(pipeline):
    """Half the id tracker of a collection's segment gone: the points it no longer maps are missing from searches,
    which say so. The next run finds Qdrant out of step, writes them again (their vectors are still stored under their text
    hashes) and ends with exactly the points it had."""
    assert embed("--documents").returncode == 0
    before = _stored_points(pipeline.settings.qdrant_path, "document")
    name = pipeline.qdrant.collection_names().physical("content_files")
    (mappings,) = (pipeline.settings.qdrant_path / "collections" / name).glob("segments/*/*id_tracker.mappings")
    os.truncate(mappings, mappings.stat().st_size // 2)
    searched = subprocess.run(
        [str(BIN / "embedding-pipeline"), "search", "open data", "--collection", "content_files"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert f"{name}: holds " in searched.stderr and "the last run left" in searched.stderr  # said, not silent
    healed = embed("--documents")
    assert healed.returncode == 0 and "document: ok" in healed.stdout
    assert "document: Qdrant was out of step" in healed.stderr
    assert f"document: {name}: holds " in healed.stderr  # the run's own check says what was lost
    assert _stored_points(pipeline.settings.qdrant_path, "document") == before


def _retrained(folder: Path) -> None:
    """The model in `folder` replaced in place by another of the same dimension (a new export, a fine-tune): its
    word embeddings moved by as much as they vary."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(folder / "model.onnx")
    largest = max(model.graph.initializer, key=lambda tensor: np.prod(tensor.dims))
    weights = numpy_helper.to_array(largest)
    moved = weights + np.random.default_rng(0).normal(0, weights.std(), weights.shape).astype(weights.dtype)
    largest.CopyFrom(numpy_helper.from_array(moved, largest.name))
    onnx.save(model, folder / "model.onnx")


def test_model_files_replaced_in_place_are_refused_until_a_reembed_moves_searches_to_their_collections(
    pipeline, tmp_path, model_dir, caplog
):
    """The next `embed` says so in one line and writes nothing, a search warns, a run fails; a re-embed (run config
    `reembed: true`, as from the UI; `embed --reembed` in test_litellm) fills collections of their own, which
    searches use once every partition is done; then incremental runs go on."""
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    pipeline.reconfigure(QDRANT_DENSE_MODEL_PATH=str(model))
    # the courses alone: the real model embeds every text twice (its first run and the re-embed)
    pipeline.execute("UPDATE {T}learningresource SET published = 0, test_mode = 0 WHERE resource_type <> 'course'")
    ((readable_id, title),) = pipeline.rows(
        "SELECT readable_id, title FROM {T}learningresource WHERE published AND resource_type = 'course' LIMIT 1"
    )
    assert all(result.success for result in pipeline.materialize_all().values())
    with pipeline.store() as store:
        before = {name: store.count(name) for name in store.collections()}
    _retrained(model)

    line = _one_line(embed())
    assert line.startswith(f"QDRANT_DENSE_MODEL_PATH={model}: its files differ") and "embed --reembed" in line
    refused = pipeline.materialize("course", raise_on_error=False)  # as the sensor's run
    assert not refused.success and "its files differ" in str(refused.get_step_failure_events()[0].event_specific_data)
    with pipeline.store() as store:
        assert {name: store.count(name) for name in store.collections()} == before  # nothing written
    _search(pipeline, title)
    assert "not the model that made" in caplog.text  # a search says its results rank by noise

    reembed = {"resources": {"embed_options": {"config": {"reembed": True}}}}
    assert all(pipeline.materialize(partition, run_config=reembed).success for partition in PARTITIONS)
    with pipeline.store() as store:
        after, physical = store.aliases(), store.collections()
    assert not set(after.values()) & set(before) and sorted(physical) == sorted(after.values())
    caplog.clear()
    assert _search(pipeline, title)["readable_id"] == readable_id and "not the model" not in caplog.text

    pipeline.execute("UPDATE {T}learningresource SET title = 'Beekeeping' WHERE readable_id = :id", id=readable_id)
    incremental = pipeline.materialize("course")
    # the resource and its course information record, both showing the title
    assert pipeline.metadata(incremental, "source_content")["listed_changed"] == 2


def _search(pipeline, query: str) -> dict:
    from embedding_pipeline.search import search

    resources = pipeline.resources
    (hit,) = search(pipeline.qdrant, resources["dense_encoder"], resources["sparse_encoder"], query, limit=1)
    return hit


@DETERMINISTIC
def test_a_source_that_lost_most_records_fails_before_deleting_anything(pipeline):
    pipeline.materialize("document")
    before = (pipeline.count("resources"), pipeline.count("content_files"))
    pipeline.execute("UPDATE {T}learningresource SET published = 0 WHERE resource_type = 'document'")
    result = pipeline.materialize("document", raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "would delete" in failure.step_failure_data.error.message
    assert "QDRANT_MAX_DELETE_SHARE=0.5" in failure.step_failure_data.error.message
    assert (pipeline.count("resources"), pipeline.count("content_files")) == before

    allowed = {"resources": {"embed_options": {"config": {"allow_mass_deletion": True}}}}
    assert pipeline.materialize("document", run_config=allowed).success
    assert pipeline.count("resources", resource_type="document") == 0


def test_a_missing_content_database_is_named_and_never_created(pipeline, tmp_path):
    missing = tmp_path / "nowhere" / "content.db"
    line = _one_line(embed("--documents", env={"CONTENT_DATABASE_URL": f"sqlite:///{missing}"}))
    assert line.startswith(f"CONTENT_DATABASE_URL=sqlite:///{missing}: no database file")
    assert not missing.exists()


def test_a_database_without_the_tables_is_named(pipeline, tmp_path):
    empty = tmp_path / "empty.db"
    import sqlite3

    sqlite3.connect(empty).close()
    line = _one_line(embed("--documents", env={"CONTENT_DATABASE_URL": f"sqlite:///{empty}"}))
    assert line.startswith(f"CONTENT_DATABASE_URL=sqlite:///{empty}: the content source's") and "no such table" in line


@DETERMINISTIC
def test_a_database_without_any_learning_resource_is_named_once_and_deletes_nothing(pipeline, tmp_path):
    """A fresh partition too: an empty database, or one whose resources are all unpublished or of no partition's
    type, is a wrong database (or one emptied by mistake), not an empty catalogue: one line for every partition."""
    pipeline.materialize("document")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    metadata.create_all(sa.create_engine(empty))  # the tables, no rows
    for partition in ("--documents", "--videos"):  # one embedded before, one never
        line = _one_line(embed(partition, env={"CONTENT_DATABASE_URL": empty}))
        assert line == f"CONTENT_DATABASE_URL={empty}: {NO_RESOURCES}"
    pipeline.execute("UPDATE {T}learningresource SET published = 0, test_mode = 0")
    pipeline.execute(
        "UPDATE {T}learningresource SET resource_type = 'article' WHERE id IN (SELECT MIN(id) FROM {T}learningresource)"
    )
    everything = embed()  # every partition
    assert everything.returncode != 0 and everything.stdout == ""
    assert _one_line(everything) == f"CONTENT_DATABASE_URL={pipeline.settings.content_database_url}: {NO_RESOURCES}"
    assert pipeline.count("resources", resource_type="document") == 5


@DETERMINISTIC
def test_a_key_two_types_share_fails_the_second_types_check_naming_the_record_and_what_to_change(pipeline):
    for number, resource_type in enumerate(["course", "program"]):
        pipeline.insert(
            tables.learning_resource,
            {"id": 9500 + number, "readable_id": "twin", "platform_id": "ocw", "resource_type": resource_type,
             "title": f"Twin {resource_type}", "published": 1},
        )  # fmt: skip
    done = embed("--courses", "--programs")
    assert done.returncode != 0 and "course: ok" in done.stdout
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("program:")]
    assert failed.startswith("program: FAILED: points_match_source failed: ocw.twin: also the key of a course record")
    assert "give one of the two records another readable_id, or unpublish one" in failed


@DETERMINISTIC
def test_trailing_spaces_in_a_setting_are_read_the_same_way_everywhere(pipeline):
    url = pipeline.settings.content_database_url
    done = embed("--documents", env={"CONTENT_DATABASE_URL": f"{url}   "})
    assert done.returncode == 0, done.stderr[-3000:]
    assert pipeline.count("resources", resource_type="document") == 5


@DETERMINISTIC
def test_bad_values_fail_their_record_only_named_with_the_field(pipeline):
    pipeline.execute("UPDATE {T}learningresource SET title = X'4869766573' WHERE readable_id = 'doc-open-data'")
    pipeline.execute(
        "UPDATE {T}contentfile SET content = CAST(X'48C328FF' AS TEXT) WHERE learning_resource_id = "
        "(SELECT id FROM {T}learningresource WHERE readable_id = 'doc-lab-safety')"
    )
    pipeline.execute(
        "UPDATE {T}learningresource SET ocw_topics = '{\"not\": \"a list\"}' WHERE readable_id = 'doc-writing-guide'"
    )
    result = pipeline.materialize("document")
    failures = pipeline.metadata(result, "text_chunks")["failures"]
    assert "library.doc-open-data: field 'title' must be text, got bytes" in failures
    assert "doc-lab-safety" in failures and "content" in failures and "UTF-8" in failures
    assert "library.doc-writing-guide: field 'ocw_topics' must be a list" in failures
    embedded = {p["readable_id"] for p in pipeline.points("resources", resource_type="document").values()}
    assert embedded == {"doc-urban-beekeeping", "doc-distributed-systems", "doc-lab-safety"}
    files = {
        p["resource_readable_id"]
        for p in pipeline.points("content_files", **{own("resource_type"): "document"}).values()
        if p["file_type"] != "course_metadata"
    }
    assert "doc-urban-beekeeping" in files and "doc-lab-safety" not in files
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["no_failed_records"].passed and checks["points_match_source"].passed


def test_two_runs_of_one_partition_at_once_both_finish_and_leave_qdrant_consistent(pipeline):
    """The embedded store admits one process: the second run waits for the first (and says so), never fails, and
    finds the first's work done."""
    pipeline.add_documents(100)
    first = subprocess.Popen(
        [str(BIN / "embedding-pipeline"), "embed", "--documents"], stderr=subprocess.PIPE, text=True
    )  # fmt: skip
    time.sleep(8)
    second = embed("--documents")
    first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-2000:]
    assert "Waiting for the embedded Qdrant" in second.stderr and "0 new, 0 changed" in second.stderr
    assert pipeline.count("resources", resource_type="document") == 105


def _one_line(done: subprocess.CompletedProcess) -> str:
    """What a command that could not start says: one line, no traceback, nothing else."""
    assert done.returncode != 0 and done.stdout.strip() == "" and "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    return line


def test_what_would_fail_every_partition_ends_the_command_at_once_in_one_line(pipeline, tmp_path):
    """An unreachable server, a missing model, an unusable folder (a missing or empty database: the tests above):
    said once, before any run, however many partitions the command was to run (no retries, no stack traces)."""
    started = time.monotonic()
    line = _one_line(embed(env={"QDRANT_HOST": "http://127.0.0.1:9"}))
    assert (
        line.startswith("QDRANT_HOST=http://127.0.0.1:9: the Qdrant server does not answer")
        and time.monotonic() - started < 15
    )
    line = _one_line(embed(env={"QDRANT_DENSE_MODEL_PATH": str(tmp_path / "no-model")}))
    assert line.startswith(f"QDRANT_DENSE_MODEL_PATH={tmp_path / 'no-model'}: no model.onnx")
    assert not pipeline.settings.qdrant_path.exists()  # nothing was written
    (tmp_path / "a-file").write_text("not a folder")
    line = _one_line(embed(env={"QDRANT_PATH": str(tmp_path / "a-file" / "qdrant")}))
    assert line.startswith(f"QDRANT_PATH={tmp_path / 'a-file' / 'qdrant'}: the embedded Qdrant cannot use")


@DETERMINISTIC
def test_a_store_held_by_a_stopped_process_ends_the_command_once_after_the_wait(pipeline):
    """Waited for once (QDRANT_LOCK_WAIT_SECONDS), not once per partition and retry."""
    pipeline.materialize("document")
    holder = hold_store(pipeline.settings.qdrant_path, until="killed")
    holder.send_signal(signal.SIGSTOP)  # frozen, its lock held
    try:
        started = time.monotonic()
        done = embed(env={"QDRANT_LOCK_WAIT_SECONDS": "15"})
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
    assert 15 <= elapsed < 30 and done.returncode != 0
    assert f"is still held by pid {holder.pid}" in done.stderr.strip().splitlines()[-1] and done.stdout.strip() == ""


@DETERMINISTIC
def test_hostile_values_fail_their_record_only_and_large_ones_are_embedded(pipeline):
    """NUL bytes, a lone surrogate (as its bytes), a 5 MB description, a 50,000-line Markdown file with
    deep headers, a malformed array, a date in the future: every other record is embedded."""
    pipeline.execute("UPDATE {T}learningresource SET description = :d WHERE readable_id = 'doc-open-data'",
                     d="Open data\x00with a NUL byte")  # fmt: skip
    pipeline.execute("UPDATE {T}learningresource SET title = CAST(X'4C6F6E65EDA080' AS TEXT) "
                     "WHERE readable_id = 'doc-writing-guide'")  # fmt: skip
    pipeline.execute("UPDATE {T}learningresource SET description = :d WHERE readable_id = :r",
                     d="Distributed systems. " * 250_000, r="doc-distributed-systems")  # fmt: skip
    pipeline.execute("UPDATE {T}learningresource SET ocw_topics = '[\"bees\", ', updated_on = '2999-12-31' "
                     "WHERE readable_id = 'doc-urban-beekeeping'")  # fmt: skip
    deep = "\n".join(f"{'#' * (1 + i % 6)} Part {i}\n" + "\n".join(["- Wear goggles."] * 998) for i in range(50))
    ((resource_id,),) = pipeline.rows("SELECT id FROM {T}learningresource WHERE readable_id = 'doc-lab-safety'")
    pipeline.execute("UPDATE {T}contentfile SET content = :c WHERE learning_resource_id = :i", c=deep, i=resource_id)

    result = pipeline.materialize("document")
    failures = pipeline.metadata(result, "text_chunks")["failures"]
    assert "library.doc-writing-guide" in failures and "UTF-8" in failures
    assert "library.doc-urban-beekeeping: field 'ocw_topics' is not JSON" in failures
    embedded = {p["readable_id"] for p in pipeline.points("resources", resource_type="document").values()}
    assert embedded == {"doc-open-data", "doc-distributed-systems", "doc-lab-safety"}
    chunks = pipeline.points("content_files", resource_readable_id="doc-lab-safety")
    count_tokens = chunker().count_tokens  # built once: a chunker is built from every resource
    assert len(chunks) > 50 and max(count_tokens(p["chunk_content"]) for p in chunks.values()) <= 512


def test_a_sensor_run_killed_under_the_daemon_never_blocks_the_next(tmp_path, model_dir, monkeypatch):
    """The daemon launches the sensor's runs; one is killed with kill -9 half-way. It ends failed, and the
    sensor's next run of that partition starts at its next tick and finishes the work."""
    env = {**os.environ, **pipeline_env(tmp_path, model_dir), "QDRANT_CHUNK_SIZE": "40", **QUICK_SENSOR}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    database = f"sqlite:///{tmp_path / 'content.db'}"
    engine = sa.create_engine(database)
    tables.metadata.create_all(engine)  # documents only: the sensor's first tick has nothing else to embed
    with engine.begin() as conn:
        conn.execute(
            tables.learning_resource.insert(),
            [
                complete(tables.learning_resource, {
                    "readable_id": f"doc-long-{i}", "platform_id": "library", "resource_type": "document",
                    "title": f"Notes {i}", "description": f"Notes {i}. " + "Bees dance. " * 300,
                })
                for i in range(60)
            ],
        )  # fmt: skip
    with dagster_daemon(env, tmp_path / "daemon.log"):
        with dg.DagsterInstance.get() as instance:
            worker = _wait(lambda: _document_worker(instance), 300, tmp_path)
            time.sleep(2)  # a batch or two into it
            os.kill(int(worker.split(":")[1]), signal.SIGKILL)
            killed_at = time.time()
            with engine.begin() as conn:  # a later edit: the sensor's next tick requests the partition again
                edit = (
                    f"UPDATE {T}learningresource SET title = 'Notes, revised', updated_on = :u WHERE readable_id = :r"
                )
                conn.execute(
                    sa.text(edit),
                    {"u": datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5), "r": "doc-long-0"},
                )
            runs = _wait(lambda: _document_runs_finished(instance, 2), 400, tmp_path)
            dead, again = sorted(runs, key=lambda r: r.create_timestamp)
        assert dead.dagster_run.status == dg.DagsterRunStatus.FAILURE
        assert again.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert again.start_time - killed_at < 60  # the sensor's next tick, not a wait on the dead run
    qdrant = resource("qdrant", path=str(tmp_path / "qdrant"))
    with qdrant.get_store() as store:
        assert store.count(qdrant.alias("resources"), {"resource_type": "document"}) == 60
    engine.dispose()


def _wait(probe, timeout: float, tmp_path: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout}s; daemon log: {(tmp_path / 'daemon.log').read_text()[-3000:]}")


def _document_runs(instance: dg.DagsterInstance) -> list:
    """The runs of the document partition: its own, or a run of several partitions that include it."""
    return [
        record
        for record in instance.get_run_records()
        if "document"
        in (
            record.dagster_run.tags.get("dagster/partition"),
            *record.dagster_run.tags.get(PARTITIONS_TAG, "").split(","),
        )
    ]


def _document_worker(instance: dg.DagsterInstance) -> str | None:
    """The worker of the document partition's running run, once it has claimed the run."""
    for record in _document_runs(instance):
        if record.dagster_run.status == dg.DagsterRunStatus.STARTED and WORKER_TAG in record.dagster_run.tags:
            return record.dagster_run.tags[WORKER_TAG]
    return None


def _document_runs_finished(instance: dg.DagsterInstance, count: int) -> list | None:
    runs = _document_runs(instance)
    return runs if len(runs) >= count and all(r.dagster_run.is_finished for r in runs) else None


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs: the embedded Qdrant's first collection does not fit (needs root, as CI has)."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@DETERMINISTIC
def test_a_disk_with_too_little_room_stops_the_run_in_one_line_and_with_space_freed_the_next_converges(
    pipeline, small_disk, tmp_path
):
    """The engine's files are memory-mapped, so a write onto a full disk would kill the process (SIGBUS): the
    store refuses it first, in one line naming its folder; the next run, with space freed, ends with exactly the
    points a clean run writes. A search on that disk says the same."""
    pipeline.add_documents(100)
    assert embed("--documents", env={"QDRANT_PATH": str(tmp_path / "clean")}, timeout=300).returncode == 0
    env = {"QDRANT_PATH": str(small_disk / "qdrant")}
    full = embed("--documents", env=env, timeout=300)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]  # not -7: no SIGBUS
    (failed,) = full.stdout.splitlines()
    assert f"The disk holding the embedded Qdrant store {small_disk / 'qdrant'} has " in failed
    subprocess.run(["mount", "-o", "remount,size=400m", str(small_disk)], check=True)  # the store takes ~300 MB
    part = embed("--documents", env=env, timeout=300)  # stops before the batch that would leave too little
    assert part.returncode == 1 and "100/215 records" in part.stderr and "MB free" in part.stdout, part.stderr[-3000:]
    subprocess.run(["mount", "-o", "remount,size=1g", str(small_disk)], check=True)
    again = embed("--documents", env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    listed = next(line for line in again.stderr.splitlines() if "records listed" in line)
    assert int(listed.split(" unchanged,")[0].rsplit(" ", 1)[1]) >= 100  # what was written is not embedded again
    stored = _stored_points(small_disk / "qdrant", "document")  # the very next run completed it
    assert stored == _stored_points(tmp_path / "clean", "document") and stored["resources"][0] == 105

    with open(small_disk / "balloon", "wb") as balloon:  # the disk filled by something else: 10 MB left
        os.posix_fallocate(balloon.fileno(), 0, shutil.disk_usage(small_disk).free - 10_000_000)
    searched = subprocess.run(
        [str(BIN / "embedding-pipeline"), "search", "open data"], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env}, check=False,
    )  # fmt: skip
    assert searched.returncode == 1 and "MB free" in searched.stderr.strip().splitlines()[-1], searched.stderr[-2000:]
    (small_disk / "balloon").unlink()
    settled = embed("--documents", env=env, timeout=300)
    assert "215 records listed: 0 new, 0 changed, 215 unchanged, 0 deleted" in settled.stderr


def test_ctrl_c_ends_the_command_at_once_and_the_next_run_resumes(pipeline):
    pipeline.add_documents(50, resource_type="course")
    first = subprocess.Popen(
        [str(BIN / "embedding-pipeline"), "embed", "--courses", "--videos"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "QDRANT_CHUNK_SIZE": "20"},
    )  # fmt: skip
    rest, seconds = interrupt_at(first, "course: 40/")  # two batches written
    assert first.returncode != 0 and seconds < 30, rest[-3000:]
    assert "video:" not in rest  # the command stopped; it did not go on to the next partition
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": "course"}))
    assert run.dagster_run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)

    second = embed("--courses", timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    listed = next(line for line in second.stderr.splitlines() if "records listed" in line)
    unchanged = int(listed.split(" unchanged,")[0].rsplit(" ", 1)[1])
    assert unchanged >= 40  # the batches written before Ctrl-C are not embedded again
    assert pipeline.count("resources", resource_type="course") == 58


def test_kill_9_at_moments_spread_over_runs_then_the_next_converges_without_redoing_finished_work(pipeline):
    """Five runs of one partition killed at moments spread over a run (reading, encoding, writing,
    deleting, indexing: wherever the moment falls), each resuming the last; then one run to the end, which never
    waits on the dead runs."""
    pipeline.materialize("document")
    pipeline.add_documents(150)
    pipeline.execute("UPDATE {T}learningresource SET published = 0 WHERE readable_id = 'doc-open-data'")  # a deletion
    pipeline.encoded()
    for delay in (0.2, 0.9, 1.6, 2.3, 3.0):
        run = subprocess.Popen(
            [str(BIN / "embedding-pipeline"), "embed", "--documents"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "QDRANT_CHUNK_SIZE": "25"},
        )  # fmt: skip
        for line in run.stdout:
            if "records listed" in line:
                break
        time.sleep(delay)
        run.kill()
        run.wait()
    started = time.monotonic()
    final = embed("--documents", timeout=300)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    assert time.monotonic() - started < 120  # it never waited on the dead run
    assert "is gone (killed, out of memory or a reboot)" in final.stderr
    listed = next(line for line in final.stderr.splitlines() if "records listed" in line)
    assert int(listed.split(" unchanged,")[0].rsplit(" ", 1)[1]) > 0  # the killed runs' finished batches stay done
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": "document"}))
        statuses = sorted(r.dagster_run.status.value for r in runs)
    assert statuses == ["FAILURE"] * 5 + ["SUCCESS"]  # the dead runs were marked failed

    result = pipeline.materialize("document")  # in step: nothing left to do, and every point accounted for
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["points_match_source"].passed, checks["points_match_source"].metadata
    assert pipeline.encoded()[0] == []
    assert pipeline.count("resources", resource_type="document") == 154
    assert not pipeline.points("resources", readable_id="doc-open-data")


@DETERMINISTIC
def test_a_reembed_killed_around_its_alias_switch_converges_on_the_next_run(pipeline):
    """The last partition of a re-embed is killed as its last batch is written, that is while it deletes,
    verifies and moves the aliases; searches see one version or the other, and the next run finishes."""
    first = embed()
    assert first.returncode == 0, first.stderr[-3000:]
    with pipeline.store() as store:
        old = store.aliases()
    new_chunks = {"CONTENT_FILE_EMBEDDING_CHUNK_SIZE": "300"}  # another chunking: new collections
    run = subprocess.Popen(
        [str(BIN / "embedding-pipeline"), "embed"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **new_chunks},
    )  # fmt: skip
    for line in run.stdout:  # the last partition's last batch is written
        if "topics: " in line and "(100%)" in line:
            break
    run.kill()
    run.wait()
    with pipeline.store() as store:  # whatever the moment, the aliases name whole collections
        between = store.aliases()
        assert all(store.count(target) > 0 for target in between.values())

    again = embed(env=new_chunks)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    listed = [line for line in again.stderr.splitlines() if "records listed" in line]
    assert all(" 0 new, 0 changed" in line for line in listed if not line.split(" - ")[-1].startswith("topics"))
    with pipeline.store() as store:
        after = store.aliases()
        physical = store.collections()
    assert after.keys() == old.keys() and all(after[a] != old[a] for a in old)  # both moved to the new version
    assert sorted(physical) == sorted(after.values())  # one collection per kind: the old ones went, wherever the kill
    assert set(between.values()) in ({*old.values()}, {*after.values()})  # never one alias moved alone
    pipeline.reconfigure(**new_chunks)
    result = pipeline.materialize("document")  # in step with the source: nothing to embed, every point in place
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["points_match_source"].passed and pipeline.encoded()[0] == []
