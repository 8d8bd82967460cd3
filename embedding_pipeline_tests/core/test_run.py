"""A partition's run, end to end in plain Python: the least work that keeps Qdrant in step with the source."""

import pytest

from embedding_pipeline.content import ContentSourceError, tables
from embedding_pipeline.mit_learn import OWN, own
from embedding_pipeline.partition.plan import MassDeletion
from embedding_pipeline.partition.records import Record, point_ids
from embedding_pipeline.partition.run import SAVED_HEADS
from embedding_pipeline.vector_store import Point


def test_a_first_run_embeds_everything_and_a_second_reads_and_embeds_nothing(world):
    first = world.run("document")
    # 5 resources, 5 files (82 chunks), and the resources' course information (one chunk each)
    assert (len(first.plan.new), first.report.texts_embedded, first.report.points_upserted) == (15, 92, 92)
    assert first.verification.passed and len(world.embedded()) == 92
    again = world.run("document")
    assert (len(again.plan.unchanged), len(again.plan.todo), again.report.batches, again.report.chunks) == (15, 0, 0, 0)
    assert world.embedded() == [] and again.report.points_unchanged == 92
    assert again.report.heads_from == SAVED_HEADS and again.verification.passed


def test_records_go_in_batches_that_never_mix_resources_and_content_files(world):
    outcome = world.run("document", batch_size=3)
    assert outcome.report.batches == 6  # 5 resources in 3 + 2, 5 content files in 3 + 2, 5 course information in 3 + 2
    assert outcome.report.records_done == {"resource": 5, "content_file": 5, "course_information": 5}


def test_keys_that_join_to_the_same_text_are_named_and_the_newer_row_is_written_every_time(world):
    """`mitx.ocw` + `18` and `mitx` + `ocw.18` make one mit-learn point key, so one point id: the newer row
    is written, the other named (never a silent overwrite), and the next run changes nothing."""
    for number, (platform, readable_id) in enumerate([("mitx.ocw", "18"), ("mitx", "ocw.18")]):
        world.insert(
            tables.learning_resource, id=9000 + number, readable_id=readable_id, platform_id=platform,
            resource_type="program", title=f"Program {number}",
        )  # fmt: skip
        world.insert(tables.run, id=9000 + number, learning_resource_id=9000 + number, run_id="y.r")
        world.insert(tables.content_file, id=9100 + number, run_id=9000 + number, key="x", content=f"Notes {number}.")
    outcome = world.run("program")
    assert outcome.plan.listing.duplicates == [
        "mitx.ocw.18: learning_resources id=9000 ignored, id=9001 used",
        "mitx.ocw.18.y.r.x: content_files id=9100 ignored, id=9101 used",
    ]
    assert outcome.report.points_upserted == 5 + 1 + 1 + 6  # and six programs' course information
    (program,) = world.points("resources", readable_id="ocw.18").values()
    assert program["title"] == "Program 1"
    assert world.run("program").report.points_upserted == 0


def test_a_run_that_fails_resumes_after_its_last_finished_batch(world):
    world.dense.fail_after = 2  # two batches embedded and written, then the service goes away
    with pytest.raises(RuntimeError, match="unreachable"):
        world.run("document", batch_size=2)
    before = world.embedded()
    world.dense.fail_after = None
    outcome = world.run("document", batch_size=2)
    assert len(outcome.plan.unchanged) == 4 and len(outcome.plan.new) == 11  # the first two batches are done
    assert not set(world.embedded()) & set(before)  # nothing embedded twice
    assert outcome.report.points_upserted == 92 - 4 and outcome.verification.passed


def test_an_edit_costs_its_record_only(world):
    world.run("video")
    world.embedded()
    world.execute(
        "UPDATE {T}learningresource SET description = 'Now with prime editing.', updated_on = '2025-03-01' "
        "WHERE readable_id = 'yt-crispr'"
    )
    outcome = world.run("video")
    changed = [r.record_key for r in outcome.plan.changed]
    assert changed == ["youtube.yt-crispr", "youtube.yt-crispr.course_information"]  # its text and its information
    assert len(outcome.plan.unchanged) == 11
    texts = world.embedded()
    assert len(texts) == 2 and all("prime editing" in text for text in texts)
    assert (outcome.report.points_upserted, outcome.report.texts_reused) == (2, 0)


def test_an_edit_without_a_new_date_is_seen(world):
    world.run("video")
    world.embedded()
    world.execute("UPDATE {T}learningresource SET title = 'CRISPR, explained again' WHERE readable_id = 'yt-crispr'")
    world.run("video")
    texts = world.embedded()
    assert len(texts) == 2 and all("CRISPR, explained again" in text for text in texts)


def test_a_touched_record_whose_text_did_not_change_is_rewritten_without_the_encoder(world):
    world.run("video")
    world.embedded()
    world.execute("UPDATE {T}contentfile SET updated_on = '2025-03-01' WHERE key = 'captions.vtt.txt'")
    outcome = world.run("video")
    assert len(outcome.plan.changed) == 1 and world.embedded() == []
    assert (
        outcome.report.texts_reused == 1
    )  # the head carries the new fingerprint and dates: rewritten, not re-embedded


def test_a_payload_only_change_updates_the_point_without_the_encoder(world):
    world.run("video")
    world.embedded()
    world.execute("UPDATE {T}learningresource SET view_count = 4321 WHERE readable_id = 'yt-crispr'")
    outcome = world.run("video")
    # only its own point shows its views: its course information and its files are left alone
    assert world.embedded() == [] and outcome.report.points_upserted == 1
    (payload,) = world.points("resources", readable_id="yt-crispr").values()
    assert payload["views"] == 4321


def test_duplicate_record_keys_use_one_row_name_the_other_and_do_not_flap(world):
    # mit-learn's unique constraint on (key, run, resource, direct resource) lets a run-less file have a twin
    world.insert(tables.content_file, id=900, learning_resource_id=43, key="lab-safety.md", content="Another copy.")
    first = world.run("document")
    (message,) = first.plan.listing.duplicates
    assert "lab-safety.md" in message and "id=900 used" in message
    world.embedded()
    again = world.run("document")
    assert again.report.points_upserted == 0 and world.embedded() == [] and len(again.plan.unchanged) == 15


def test_a_key_shared_by_two_types_is_named_kept_by_the_first_type_and_never_flips(world):
    """mit-learn's point key is platform and readable id, whatever the type: a course and a program with the
    same key share one point. The course (listed first) keeps it whichever runs first; the program is named
    and its check fails while it lasts; no run re-embeds either."""
    for number, resource_type in enumerate(["program", "course"]):
        world.insert(
            tables.learning_resource, id=9200 + number, readable_id="twin", platform_id="ocw",
            resource_type=resource_type, title=f"Twin {resource_type}",
        )  # fmt: skip
    world.run("program")  # the program writes the point first
    course = world.run("course")
    assert "ocw.twin: also the key of a program record; this course is used" in course.report.shared_keys
    program = world.run("program")
    assert program.report.shared_keys == [  # and the course information mit-learn writes of each
        "ocw.twin: also the key of a course record, which is used",
        "ocw.twin.course_information: also the key of a course record, which is used",
    ]
    assert not program.verification.passed and len(program.verification.missing) == 2  # its two points
    world.embedded()
    for _ in range(2):  # no flip-flop: nothing is written or embedded again
        assert world.run("course").report.points_upserted == 0 and world.run("program").report.points_upserted == 0
    assert world.embedded() == []
    (twin,) = world.points("resources", readable_id="twin").values()
    assert (twin["title"], twin[OWN]["resource_type"]) == ("Twin course", "course")
    assert world.run("course").verification.passed
    world.execute("UPDATE {T}learningresource SET published = 0 WHERE id = 9201")  # the course goes
    world.run("course")
    assert world.run("program").verification.passed
    (twin,) = world.points("resources", readable_id="twin").values()
    assert twin["title"] == "Twin program"


def test_deleted_and_unpublished_records_lose_all_their_points(world):
    first = world.run("document")
    world.execute("DELETE FROM {T}contentfile WHERE key = 'urban-beekeeping.md'")
    world.execute("UPDATE {T}learningresource SET published = 0 WHERE readable_id = 'doc-open-data'")
    outcome = world.run("document")
    gone = {h.record_key: h.chunk_count for h in outcome.plan.deleted}
    assert len(gone) == 4 and any(
        key.endswith("urban-beekeeping.md") for key in gone
    )  # and open data's file and information
    assert outcome.report.points_deleted == sum(gone.values()) > 7 and world.embedded() != []
    kept = sum(first.report.partition_points.values()) - sum(gone.values())
    assert sum(outcome.report.partition_points.values()) == kept and outcome.verification.passed
    assert not world.points("resources", readable_id="doc-open-data")


def test_a_record_that_cannot_be_read_is_named_and_keeps_its_points(world):
    world.run("video")
    world.execute(
        "UPDATE {T}learningresource SET title = '', updated_on = '2025-03-01' WHERE readable_id = 'yt-crispr'"
    )
    outcome = world.run("video")
    assert outcome.report.failures == {
        "youtube.yt-crispr": "youtube.yt-crispr: field 'title' is empty",
        "youtube.yt-crispr.course_information": "youtube.yt-crispr.course_information: field 'title' is empty",
    }
    assert outcome.report.points_deleted == 0 and outcome.report.partition_points["resources"] == 6
    assert outcome.verification.passed  # a failed record keeps its points; they are not held against Qdrant


def test_bad_values_fail_their_record_only_named_with_the_field(world):
    world.execute("UPDATE {T}learningresource SET title = X'4869766573' WHERE readable_id = 'doc-open-data'")
    world.execute("UPDATE {T}learningresource SET ocw_topics = '[not json' WHERE readable_id = 'doc-writing-guide'")
    outcome = world.run("document")
    failures = outcome.report.failures
    assert failures["library.doc-open-data"] == "library.doc-open-data: field 'title' must be text, got bytes"
    assert "field 'ocw_topics' is not JSON" in failures["library.doc-writing-guide"]
    embedded = {p["readable_id"] for p in world.points("resources", resource_type="document").values()}
    assert embedded == {"doc-urban-beekeeping", "doc-distributed-systems", "doc-lab-safety"}


def test_a_text_the_model_refuses_fails_its_record_and_the_rest_is_written(world):
    world.dense.refuse = {"Catching a swarm"}
    outcome = world.run("document")
    (key,) = outcome.report.rejected
    assert key.endswith("urban-beekeeping.md") and "refused by test/hashing-32" in outcome.report.failures[key]
    assert not world.points("content_files", key="urban-beekeeping.md")  # none of its chunks: it is not complete
    assert len(world.points("resources", resource_type="document")) == 5 and outcome.verification.passed


def test_a_text_an_earlier_batch_is_still_embedding_is_not_embedded_again(world):
    """A remote encoder works on batches while the next ones are read: a text of theirs that it is embedding
    is waited for, not sent again; one it refuses fails every record that has it."""
    world.dense.concurrency, world.dense.delay = 2, 0.1  # two batches at once, 0.1 s each: later ones read meanwhile
    ((document,),) = world.rows("SELECT id FROM {T}learningresource WHERE readable_id = 'doc-lab-safety'")
    for i, content in enumerate(["Wear goggles in the lab."] * 3 + ["Catching a swarm of bees."] * 2):
        world.insert(
            tables.content_file, id=9200 + i, learning_resource_id=document, key=f"copy-{i}.md", content=content
        )
    world.dense.refuse = {"Catching a swarm"}
    outcome = world.run("document", batch_size=1)
    embedded = world.embedded()
    assert len(embedded) == len(set(embedded)) and outcome.report.texts_embedded == len(embedded)
    copies = [
        p
        for p in world.points("content_files", resource_readable_id="doc-lab-safety").values()
        if p["key"].startswith("copy-")
    ]
    assert sorted(p["key"] for p in copies) == ["copy-0.md", "copy-1.md", "copy-2.md"]
    assert {key for key in outcome.report.rejected if "copy-" in key} == {
        "library.doc-lab-safety..copy-3.md",
        "library.doc-lab-safety..copy-4.md",
    }


def test_points_lost_or_added_in_qdrant_are_healed_by_the_next_run(world):
    world.run("document")
    kept = world.points("content_files", **{own("resource_type"): "document"})
    lost = sorted(kept)[:3]
    world.store.delete(world.names.physical("content_files"), lost)
    world.embedded()
    outcome = world.run("document")
    assert sorted(world.embedded()) == sorted(kept[pid]["chunk_content"] for pid in lost)  # their vectors were gone
    assert outcome.report.heads_from == "Qdrant"  # the counts moved: the saved heads are not trusted
    assert world.points("content_files", **{own("resource_type"): "document"}).keys() == kept.keys()


def test_a_source_that_lost_most_records_fails_before_deleting_anything_unless_allowed(world):
    world.run("document")
    world.execute("UPDATE {T}learningresource SET published = 0 WHERE resource_type = 'document'")
    with pytest.raises(
        MassDeletion, match=r"would delete 92 of the partition's 92 points .*QDRANT_MAX_DELETE_SHARE=0.5"
    ):
        world.run("document")
    assert len(world.points("resources", resource_type="document")) == 5
    assert world.run("document", max_delete_share=None).report.points_deleted == 92
    assert world.points("resources", resource_type="document") == {}


def test_a_database_without_any_learning_resource_is_named_and_deletes_nothing(world):
    world.run("document")
    world.execute("DELETE FROM {T}contentfile")
    world.execute("DELETE FROM {T}learningresource")
    with pytest.raises(
        ContentSourceError, match="the database holds no published learning resource of the eight types at all"
    ):
        world.run("document", max_delete_share=None)
    assert len(world.points("resources", resource_type="document")) == 5


def test_force_embeds_and_writes_everything_again(world):
    world.run("video")
    world.embedded()
    outcome = world.run("video", force=True)
    assert len(world.embedded()) == outcome.report.texts_embedded == outcome.report.points_upserted == 13


def test_recreate_collections_starts_from_empty_collections(world):
    world.run("document")
    world.run("video")
    outcome = world.run("video", recreate_collections=True)
    assert outcome.report.points_upserted == 13 and outcome.verification.passed
    assert world.points("resources", resource_type="document") == {}  # as the old command did


def test_a_run_limited_to_some_resources_embeds_only_them_and_deletes_nothing(world):
    world.run("course")
    ids = _resource_ids(world, "course")[:2]
    world.execute("UPDATE {T}learningresource SET description = 'Revised.' WHERE resource_type = 'course'")
    world.execute("DELETE FROM {T}learningresource WHERE readable_id = 'ocw-8.04'")
    world.embedded()
    outcome = world.run("course", resource_ids=frozenset(ids))
    assert sorted(r.source_id for r in outcome.plan.changed if r.kind == "resource") == sorted(ids)
    assert outcome.plan.deleted == [] and len(world.embedded()) == 4  # their texts and information; files unchanged


def test_skipping_content_files_leaves_their_points_as_they_are(world):
    world.run("course")
    before = world.points("content_files", **{own("resource_type"): "course"})
    world.execute(
        "UPDATE {T}contentfile SET content = 'Rewritten.', checksum = 'x' WHERE run_id IN (SELECT r.id FROM "
        "{T}learningresourcerun r JOIN {T}learningresource lr ON lr.id = r.learning_resource_id "
        "WHERE lr.resource_type = 'course')"
    )
    outcome = world.run("course", content_files=False, force=True)
    assert (
        outcome.report.records_done == {"resource": 8, "course_information": 8}
        and world.points("content_files", **{own("resource_type"): "course"}) == before
    )


def _resource_ids(world, resource_type: str) -> list[int]:
    with world.database.reader(resource_type) as reader:
        return [row["id"] for row in reader.list_resources()]


def test_a_record_whose_head_was_lost_is_written_again_and_keeps_every_chunk(world):
    """The head goes last; a write cut short (or a hand) can leave a record's chunks without it. The next run
    writes the record again: its chunks are its own, not orphans to delete after the writes."""
    world.run("document")
    chunks = world.points("content_files", key="urban-beekeeping.md")
    (head,) = [pid for pid, payload in chunks.items() if payload[OWN]["role"] == "head"]
    world.store.delete(world.names.physical("content_files"), [head])
    world.embedded()
    outcome = world.run("document")
    assert world.points("content_files", key="urban-beekeeping.md").keys() == chunks.keys()
    assert world.embedded() == [chunks[head]["chunk_content"]] and outcome.verification.passed


def test_a_stray_chunk_beyond_a_records_count_is_removed_by_the_next_run(world):
    """A point a record's head does not count (a longer version's chunk, written before a kill) goes."""
    world.run("document")
    chunks = world.points("content_files", key="lab-safety.md")
    record = next(p for p in chunks.values() if p[OWN]["role"] == "head")
    kept = record[OWN]
    stray = point_ids(Record("content_file", 0, kept["record_id"], kept["record_key"], ""), len(chunks) + 1)[-1]
    ((_, _, vectors),) = world.store.retrieve(world.names.physical("content_files"), [next(iter(chunks))], True)
    world.store.upsert(
        world.names.physical("content_files"), [Point(stray, vectors, {**record, OWN: {**kept, "role": "chunk"}})]
    )
    world.embedded()
    outcome = world.run("document")
    assert world.points("content_files", key="lab-safety.md").keys() == chunks.keys()
    assert outcome.verification.passed and world.embedded() == [] and outcome.report.points_deleted == 1


@pytest.mark.parametrize(
    ("change", "points", "texts"),
    [
        ("UPDATE {T}learningresourceplatform SET name = 'YouTube (MIT channel)' WHERE code = 'youtube'", 13, 6),
        ("UPDATE {T}learningresourceofferor SET name = 'CSAIL Alliances' WHERE code = 'csail'", 13, 6),
        ("UPDATE {T}learningresourcetopic SET name = 'Genomics' WHERE name = 'Genetics'", 2, 1),
    ],
)
def test_a_renamed_platform_offeror_or_topic_rewrites_exactly_the_points_that_show_it(world, change, points, texts):
    """The six videos and their one caption chunk show the platform and offeror by name, the video its topics
    (mit-learn embeds neither with them: their texts stay); the videos' course information shows them in its
    text, which is embedded again. No other video's point, and no other type's, is written."""
    for partition in ("video", "course", "document"):
        world.run(partition)
    world.execute(change)
    world.embedded()
    video = world.run("video")
    assert (video.report.points_upserted, video.report.texts_embedded) == (points, texts)
    assert len(world.embedded()) == texts and video.verification.passed
    assert world.run("document").report.points_upserted == 0
    (payload,) = world.points("resources", readable_id="yt-crispr").values()
    shown = (payload["platform"]["name"], payload["offered_by"]["name"], [t["name"] for t in payload["topics"]])
    assert {"YouTube (MIT channel)", "CSAIL Alliances", "Genomics"} & {shown[0], shown[1], *shown[2]}


def test_a_run_less_file_carries_its_resources_readable_id_as_mit_learn_sets_it(world):
    world.run("video")
    (captions,) = world.points("content_files", key="captions.vtt.txt").values()
    assert captions["run_readable_id"] == captions["resource_readable_id"] == "yt-neural-networks"
    world.run("course")
    (syllabus,) = world.points("content_files", key="syllabus.md", **{own("role"): "head"}).values()
    assert syllabus["run_readable_id"] == "spring-2024"


def test_the_files_of_an_unpublished_run_are_not_embedded_and_go_when_it_is_unpublished(world):
    world.run("course")
    assert not world.points("content_files", key="old-syllabus.md")  # its run, fall-2019, is not published
    world.execute("UPDATE {T}learningresourcerun SET published = 1 WHERE run_id = 'fall-2019'")
    world.run("course")
    assert len(world.points("content_files", key="old-syllabus.md")) == 1
    world.execute("UPDATE {T}learningresourcerun SET published = 0 WHERE run_id = 'fall-2019'")
    assert world.run("course").report.points_deleted == 1
    assert not world.points("content_files", key="old-syllabus.md")


def test_a_renamed_course_re_embeds_the_course_information_of_the_program_that_lists_it(world):
    """A program's course information lists its courses (mit-learn's `program_courses`): renaming one moves the
    program's record too, so its information is embedded again; the program's own text is not."""
    ((program,),) = world.rows("SELECT id FROM {T}learningresource WHERE readable_id = 'prog-data-science'")
    ((course,),) = world.rows("SELECT id FROM {T}learningresource WHERE readable_id = 'ocw-18.06'")
    world.insert(tables.relationship, parent_id=program, child_id=course, relation_type="PROGRAM_COURSES")
    world.run("program")
    (information,) = world.points("content_files", key="mitx.prog-data-science.course_metadata").values()
    assert (
        "| Linear Algebra |" in information["chunk_content"]
        and "**Number Of Courses**\n\n  1\n" in information["chunk_content"]
    )
    world.embedded()
    world.execute("UPDATE {T}learningresource SET title = 'Matrix Methods' WHERE id = :i", i=course)
    outcome = world.run("program")
    assert [r.record_key for r in outcome.plan.changed] == [
        "mitx.prog-data-science",  # its row lists its children: rewritten with the new fingerprint, not embedded
        "mitx.prog-data-science.course_information",
    ]
    (text,) = world.embedded()
    assert "| Matrix Methods |" in text and outcome.report.points_upserted == 2


def test_a_duration_mit_learn_cannot_read_fails_only_the_course_information_naming_it(world):
    """mit-learn's serializer reads a video's duration as ISO 8601 (its ETL stores it so); another form is named."""
    world.execute(
        "UPDATE {T}video SET duration = '1:02:05' WHERE learning_resource_id = "
        "(SELECT id FROM {T}learningresource WHERE readable_id = 'yt-crispr')"
    )
    world.execute(
        "UPDATE {T}video SET duration = 'PT4M13S' WHERE learning_resource_id = "
        "(SELECT id FROM {T}learningresource WHERE readable_id = 'yt-sourdough')"
    )
    outcome = world.run("video")
    assert outcome.report.failures == {
        "youtube.yt-crispr.course_information": "youtube.yt-crispr.course_information: field 'duration' is not an "
        "ISO 8601 duration: '1:02:05'"
    }
    assert world.points("resources", readable_id="yt-crispr")  # the resource itself is written
    (sourdough,) = world.points("content_files", key="youtube.yt-sourdough.course_metadata").values()
    assert "**Duration**\n\n  0:04:13\n" in sourdough["chunk_content"]


def test_an_image_a_child_or_a_playlist_changed_rewrites_only_the_payloads_that_show_it(world):
    """A document shows its image, its children and a video its playlists: changing them rewrites exactly those
    resources' points, and no text is embedded (the texts did not change)."""
    for kind in ("learning_path", "video", "video_playlist"):
        world.run(kind)
    world.embedded()
    world.execute(
        "UPDATE {T}learningresourceimage SET url = 'https://example.edu/images/nn-2.jpg', updated_on = '2030-01-01' "
        "WHERE url LIKE '%neural-networks.jpg'"
    )
    ids = dict(world.rows("SELECT readable_id, id FROM {T}learningresource"))
    world.insert(tables.relationship, parent_id=ids["lp-web-development"], child_id=ids["doc-lab-safety"],
                 relation_type="LEARNING_PATH_ITEMS")  # fmt: skip
    world.insert(tables.relationship, parent_id=ids["pl-spanish"], child_id=ids["yt-sourdough"],
                 relation_type="PLAYLIST_VIDEOS")  # fmt: skip
    written = {}
    for kind in ("learning_path", "video", "video_playlist"):
        outcome = world.run(kind)
        written[kind] = outcome.report.points_upserted
        assert outcome.verification.passed
    assert world.embedded() == []
    # the video's image, the path's children, the playlist's children and video count, the added video's playlists
    assert written == {"learning_path": 1, "video": 2, "video_playlist": 1}
    payloads = {p["readable_id"]: p for p in world.points("resources").values()}
    assert payloads["yt-neural-networks"]["image"]["url"] == "https://example.edu/images/nn-2.jpg"
    assert payloads["yt-sourdough"]["playlists"] == [ids["pl-spanish"]]
    assert payloads["pl-spanish"]["video_playlist"] is None  # it has no playlist row: its serializer gives None
    assert [c["readable_id"] for c in payloads["pl-spanish"]["children"]] == ["yt-sourdough"]
    assert payloads["lp-web-development"]["learning_path"]["item_count"] == 1
