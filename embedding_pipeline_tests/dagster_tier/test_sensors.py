"""new_content_sensor: a run per change (one over every changed type when it is small, one per type when large),
once per change, cheap when quiet."""

import json
import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from embedding_pipeline.assets.embed import PARTITIONS_TAG
from embedding_pipeline.content import tables
from embedding_pipeline.definitions import defs
from embedding_pipeline.partitions import PARTITIONS
from embedding_pipeline.sensors import NEVER_EMBEDDED_TAG, ONE_RUN_MAX_RECORDS

new_content_sensor = defs.resolve_sensor_def("new_content_sensor")


@pytest.fixture
def tick(pipeline):
    """Evaluate the sensor as the daemon would, carrying the cursor from tick to tick."""
    state = {"cursor": None}

    def evaluate(cursor=...):
        context = dg.build_sensor_context(
            instance=pipeline.instance,
            cursor=state["cursor"] if cursor is ... else cursor,
            resources={"content_source": pipeline.resources["content_source"]},
            definitions=defs,
        )
        result = new_content_sensor.evaluate_tick(context)
        state["cursor"] = result.cursor
        return result

    return evaluate


def _requested(result) -> list[str]:
    return [request.partition_key for request in result.run_requests]


def test_first_tick_requests_every_type_then_nothing_until_content_changes(tick):
    first = tick()
    (request,) = first.run_requests  # the sample is small: every type, and the topics, in one run
    assert request.partition_key is None and request.tags[PARTITIONS_TAG] == ",".join(PARTITIONS)
    assert set(json.loads(first.cursor)["types"]) == set(PARTITIONS)
    quiet = tick()
    assert quiet.run_requests == [] and "No content was added" in quiet.skip_message


def test_a_database_emptied_of_resources_requests_no_run_and_says_why_until_it_holds_some_again(pipeline, tick):
    """Every partition's run would refuse it (nothing deleted): the tick says so once and keeps its cursor."""
    tick()
    was = pipeline.rows("SELECT id, published, test_mode FROM {T}learningresource")
    pipeline.execute("UPDATE {T}learningresource SET published = 0, test_mode = 0")
    emptied = tick()
    assert emptied.run_requests == [] and "holds no published learning resource" in emptied.skip_message
    for resource_id, published, test_mode in was:
        pipeline.execute(
            f"UPDATE {{T}}learningresource SET published = {int(published)}, test_mode = {int(test_mode)} "
            f"WHERE id = {resource_id}"
        )
    assert tick().skip_message.startswith("No content was added")  # as it was before: nothing to do


def _sql(statement: str):
    return lambda pipeline: pipeline.execute(statement)


def _id(pipeline, readable_id: str) -> int:
    return pipeline.rows(f"SELECT id FROM {{T}}learningresource WHERE readable_id = '{readable_id}'")[0][0]


@pytest.mark.parametrize(
    ("change", "resource_type"),
    [
        (_sql("UPDATE {T}learningresource SET description = 'new', updated_on = '2025-02-01' WHERE readable_id = 'yt-crispr'"), "video"),
        (lambda p: p.insert(tables.learning_resource, {"id": 100, "readable_id": "new-pl", "platform_id": "youtube",
                                                       "resource_type": "video_playlist", "title": "New playlist"}),
         "video_playlist"),
        (_sql("DELETE FROM {T}learningresource WHERE readable_id = 'ocw-8.04'"), "course"),
        (_sql("UPDATE {T}learningresource SET published = 0 WHERE readable_id = 'pod-startup-lab'"), "podcast"),
        (_sql("UPDATE {T}contentfile SET content = 'x', updated_on = '2025-02-01' WHERE key = 'lab-safety.md'"), "document"),
        (lambda p: p.execute("DELETE FROM {T}contentfile WHERE key = 'transcript.txt' AND learning_resource_id = :i",
                             i=_id(p, "ep-bebop")), "podcast_episode"),
        # Joined rows: a run added, a topic linked (mit-learn moves no resource's `updated_on` for either),
        # an offeror renamed (its own `updated_on` moves).
        (lambda p: p.insert(tables.run, {"learning_resource_id": _id(p, "ocw-7.01"), "run_id": "fall-2025",
                                         "title": "Fundamentals of Biology"}), "course"),
        (lambda p: p.insert(tables.resource_topics, {"learningresource_id": _id(p, "yt-crispr"),
                                                     "learningresourcetopic_id": 1}), "video"),
        (_sql("UPDATE {T}learningresourceofferor SET name = 'MIT xPRO Online', updated_on = '2030-01-01' WHERE code = 'xpro'"),
         "program"),
    ],
)  # fmt: skip
def test_a_change_requests_one_run_for_its_type_once(pipeline, tick, change, resource_type):
    tick()
    change(pipeline)
    result = tick()
    assert _requested(result) == [resource_type]
    assert tick().run_requests == []  # the same change is not requested twice


def test_a_later_change_gets_a_new_run_key_and_a_restart_keeps_the_cursor(pipeline, tick):
    tick()
    edit = "UPDATE {T}learningresource SET title = :t, updated_on = :u WHERE readable_id = 'yt-sourdough'"
    pipeline.execute(edit, t="Sourdough 1", u="2025-03-01")
    first = tick().run_requests[0].run_key
    pipeline.execute(edit, t="Sourdough 2", u="2025-03-02")
    second = tick()
    assert first != second.run_requests[0].run_key and first.startswith("video:")
    # A restarted daemon evaluates with the stored cursor: nothing new since.
    assert tick(cursor=second.cursor).run_requests == []
    # Even without a cursor, unchanged content gives the same run key, which Dagster launches once.
    (everything,) = tick(cursor=None).run_requests
    assert everything.run_key == tick(cursor=None).run_requests[0].run_key
    assert second.run_requests[0].run_key in everything.run_key.split("|")


def test_a_quiet_tick_runs_one_single_row_query(pipeline, tick):
    tick()
    statements = []

    def listener(conn, cursor, statement, *args):
        if str(conn.engine.url) == pipeline.settings.content_database_url:  # not Dagster's own storage
            statements.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", listener)
    try:
        tick()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", listener)
    assert len(statements) == 1 and "GROUP BY" not in statements[0]


def test_the_sensor_needs_no_qdrant_and_its_request_runs(pipeline, tick):
    assert new_content_sensor.required_resource_keys == {"content_source"}
    with pipeline.store():  # the embedded folder is held open: the sensor does not care
        (request,) = tick().run_requests
    job = dg.Definitions(
        assets=defs.assets, jobs=defs.jobs, resources=pipeline.resources, executor=dg.in_process_executor
    ).resolve_job_def("embed")
    result = job.execute_in_process(instance=pipeline.instance, tags=request.tags)
    assert result.success
    assert {m.partition for m in result.asset_materializations_for_node("embed_partition")} == set(PARTITIONS)


def test_records_no_partition_embeds_are_counted_and_named(tick, pipeline, caplog, capsys):
    pipeline.insert(
        tables.learning_resource,
        {"id": 9001, "readable_id": "a-1", "platform_id": "blog", "resource_type": "article", "title": "An article"},
        {"id": 9002, "readable_id": "d-1", "platform_id": "blog", "resource_type": "Document", "title": "A Document"},
    )
    pipeline.insert(tables.content_file, {"id": 9101, "learning_resource_id": 777777, "key": "k", "content": "text"})
    with caplog.at_level(logging.INFO):
        requests = tick().run_requests
    logged = caplog.text + capsys.readouterr().err
    assert (
        "Never embedded: 2 learning resources of a type that is not one of the eight: id 9001 (article), "
        "id 9002 (Document); 1 content files whose resource does not exist: id 9101 (777777)"
    ) in logged
    assert {request.tags[NEVER_EMBEDDED_TAG] for request in requests} == {  # on each run it requests, for the UI
        "2 learning resources of a type that is not one of the eight; 1 content files whose resource does not exist"
    }


def test_a_row_dated_in_the_future_does_not_hide_later_edits(tick, pipeline):
    tick()
    pipeline.execute("UPDATE {T}learningresource SET updated_on = '2999-01-01' WHERE readable_id = 'ocw-18.06'")
    assert _requested(tick()) == ["course"]
    a_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None)
    edit = "UPDATE {T}learningresource SET title = 'Sourdough', updated_on = :u WHERE readable_id = 'yt-sourdough'"
    pipeline.execute(edit, u=a_minute_ago)
    assert _requested(tick()) == ["video"]
    assert _requested(tick()) == []


def test_an_edit_dated_before_the_newest_edit_is_seen(tick, pipeline):
    """A clock behind, or a date copied from another row: the sensor sums every row's date, not only the newest."""
    tick()
    newest = pipeline.rows("SELECT MAX(updated_on) FROM {T}learningresource")[0][0]
    edit = "UPDATE {T}learningresource SET title = :t, updated_on = :u WHERE readable_id = :r"
    pipeline.execute(edit, t="Sourdough", u=newest, r="yt-sourdough")  # the same date as the newest row
    assert _requested(tick()) == ["video"]
    pipeline.execute(edit, t="Oceanography, again", u="2020-01-01", r="ocw-12.340")  # older than every other row
    assert _requested(tick()) == ["course"]
    assert _requested(tick()) == []


def _edit_two_types(pipeline, when: datetime) -> None:
    edit = "UPDATE {T}learningresource SET description = description || ' Revised.', updated_on = :u WHERE readable_id = :r"
    for readable_id in ("yt-crispr", "ocw-18.06", "doc-open-data"):  # a video, a course, a document
        pipeline.execute(edit, u=when, r=readable_id)


def test_a_small_change_across_types_is_one_run_that_materializes_each_changed_partition(pipeline, tick):
    """One run over the range from the first changed partition to the last; the partitions between that did not
    change are not run, and each changed one gets its own materializations and check results."""
    job = dg.Definitions(
        assets=defs.assets, jobs=defs.jobs, resources=pipeline.resources, executor=dg.in_process_executor
    ).resolve_job_def("embed")
    for partition in PARTITIONS:  # embedded once, as the first tick's runs would
        assert job.execute_in_process(partition_key=partition, instance=pipeline.instance).success
    tick()
    _edit_two_types(pipeline, datetime.now(UTC).replace(tzinfo=None))
    (request,) = tick().run_requests
    assert request.partition_key is None and request.tags[PARTITIONS_TAG] == "course,video,document"
    assert (request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]) == (
        "course",
        "document",
    )
    result = job.execute_in_process(instance=pipeline.instance, tags=request.tags)
    assert result.success
    materialized = {
        (m.asset_key.path[-1], m.partition) for m in result.asset_materializations_for_node("embed_partition")
    }
    assert {p for _, p in materialized} == {"course", "video", "document"}
    assert len(materialized) == 3 * 5  # the five assets of each
    checks = {(c.check_name, c.partition, c.passed) for c in result.get_asset_check_evaluations()}
    assert {p for _, p, _ in checks} == {"course", "video", "document"} and all(passed for *_, passed in checks)
    listed = {  # each partition's own figures, as its single runs show them
        m.partition: m.metadata["resources"].value
        for m in result.asset_materializations_for_node("embed_partition")
        if m.asset_key.path[-1] == "source_content"
    }
    assert listed == {"course": 8, "video": 6, "document": 5}
    assert tick().run_requests == []


def test_a_large_change_is_one_run_per_changed_type(pipeline, tick):
    tick()
    when = datetime.now(UTC).replace(tzinfo=None)
    many = ONE_RUN_MAX_RECORDS // 2 + 1
    pipeline.insert(
        tables.learning_resource,
        *[
            {"readable_id": f"bulk-{kind}-{i}", "platform_id": "youtube", "resource_type": kind, "title": f"Bulk {i}",
             "updated_on": when}
            for kind in ("video", "document")
            for i in range(many)
        ],
    )  # fmt: skip
    requests = tick().run_requests
    assert [(r.partition_key, PARTITIONS_TAG in r.tags) for r in requests] == [("video", False), ("document", False)]
    # a first tick on a database as large: a run per type
    assert [r.partition_key for r in tick(cursor=None).run_requests] == PARTITIONS


def test_an_image_a_child_and_a_playlist_changed_are_one_run_that_rewrites_only_those_payloads(pipeline, tick):
    """What a document shows of other rows moves the types that show it: the run the sensor asks for rewrites
    exactly the payloads that show the change, and embeds no text."""
    job = dg.Definitions(
        assets=defs.assets, jobs=defs.jobs, resources=pipeline.resources, executor=dg.in_process_executor
    ).resolve_job_def("embed")
    for partition in PARTITIONS:
        assert job.execute_in_process(partition_key=partition, instance=pipeline.instance).success
    tick()
    pipeline.execute(
        "UPDATE {T}learningresourceimage SET alt = 'A new diagram', updated_on = '2030-01-01' "
        "WHERE url LIKE '%neural-networks.jpg'"
    )
    pipeline.insert(
        tables.relationship,
        {
            "parent_id": _id(pipeline, "lp-web-development"),
            "position": 0,
            "child_id": _id(pipeline, "doc-lab-safety"),
            "relation_type": "LEARNING_PATH_ITEMS",
        },
    )
    pipeline.insert(tables.relationship, {"parent_id": _id(pipeline, "pl-spanish"), "position": 0,
                                          "child_id": _id(pipeline, "yt-sourdough"), "relation_type": "PLAYLIST_VIDEOS"})  # fmt: skip
    (request,) = tick().run_requests
    assert request.tags[PARTITIONS_TAG] == "learning_path,video,video_playlist"
    result = job.execute_in_process(instance=pipeline.instance, tags=request.tags)
    assert result.success
    figures = {
        (m.partition, m.asset_key.path[-1]): m.metadata
        for m in result.asset_materializations_for_node("embed_partition")
    }
    assert {p: figures[p, "dense_vectors"]["texts_embedded"].value for p in request.tags[PARTITIONS_TAG].split(",")} == {
        "learning_path": 0, "video": 0, "video_playlist": 0
    }  # fmt: skip
    assert {p: figures[p, "qdrant_points"]["points_upserted"].value for p in ("learning_path", "video", "video_playlist")} == {
        "learning_path": 1, "video": 2, "video_playlist": 1  # the path, the two videos, the playlist
    }  # fmt: skip
    assert (
        pipeline.points("resources", readable_id="yt-neural-networks").popitem()[1]["image"]["alt"] == "A new diagram"
    )


def test_a_changed_course_blocklist_asks_for_a_course_run_and_one_that_cannot_be_read_for_nothing(
    pipeline, tick, tmp_path, caplog, capsys
):
    blocklist = tmp_path / "courses.txt"
    blocklist.write_text("ocw-8.04\n")
    pipeline.reconfigure(BLOCKLISTED_COURSES_URL=str(blocklist))
    tick()
    assert tick().run_requests == []
    blocklist.write_text("ocw-8.04\nocw-18.06\n")
    assert _requested(tick()) == ["course"]
    blocklist.unlink()
    with caplog.at_level(logging.WARNING):
        assert tick().run_requests == []  # unchanged as far as the sensor can tell; said, not requested
    logged = caplog.text + capsys.readouterr().err
    assert "BLOCKLISTED_COURSES_URL=" in logged and "cannot be read" in logged
