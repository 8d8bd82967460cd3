"""Records: who each row is (mit-learn's ids; rows that would share one are named), what its fingerprint covers, and rows that are named."""

import json
import uuid
from datetime import UTC, datetime

from embedding_pipeline.content import UNREADABLE
from embedding_pipeline.partition.records import (
    Record,
    best_run,
    content_file_record,
    course_information_record,
    list_records,
    point_ids,
    resource_record,
)

RESOURCE = {
    "id": 1,
    "platform_code": "ocw",
    "readable_id": "18.06",
    "resource_type": "course",
    "title": "Linear Algebra",
}
FILE = {"id": 10, "resource_id": 1, "run_readable_id": "fall-2024", "key": "syllabus.md", "checksum": "a"}


class Reader:
    """Rows as the content database lists them."""

    def __init__(self, resources: list[dict], files: list[dict]):
        self.resources, self.files = resources, files

    def list_resources(self):
        return iter(self.resources)

    def list_content_files(self):
        return iter(self.files)

    def list_topics(self):
        return iter(())


def test_ids_are_mit_learns_and_keys_that_join_alike_are_named_never_overwritten():
    """vector_search.utils.vector_point_id(vector_point_key(doc)): uuid5(NAMESPACE_DNS, "platform.readable_id")."""
    a = resource_record(RESOURCE)
    assert a.record_key == "ocw.18.06" and a.record_id == str(uuid.uuid5(uuid.NAMESPACE_DNS, "ocw.18.06"))
    assert point_ids(a, 1) == [a.record_id]
    file = content_file_record(FILE, a)
    assert point_ids(file, 2) == [
        str(uuid.uuid5(uuid.NAMESPACE_DNS, f"ocw.18.06.fall-2024.syllabus.md.{n}")) for n in range(2)
    ]
    joined = {**RESOURCE, "id": 2, "platform_code": "ocw.18", "readable_id": "06"}  # the same key, another row
    listing = list_records(Reader([RESOURCE, joined], []))
    assert listing.duplicates == ["ocw.18.06: learning_resources id=1 ignored, id=2 used"]


def test_a_resources_fingerprint_covers_every_listed_column_and_its_files_follow_what_they_show():
    a = resource_record(RESOURCE)
    edited = resource_record({**RESOURCE, "title": "Linear Algebra, revised"})
    assert edited.record_id == a.record_id and edited.fingerprint != a.fingerprint
    # a chunk shows its resource's ids, platform and offeror, not its title, image or views
    assert content_file_record(FILE, a).fingerprint == content_file_record(FILE, edited).fingerprint
    renamed = resource_record({**RESOURCE, "platform_name": "OpenCourseWare"})
    assert content_file_record(FILE, a).fingerprint != content_file_record(FILE, renamed).fingerprint
    assert content_file_record(FILE, a).fingerprint != content_file_record({**FILE, "checksum": "b"}, a).fingerprint
    assert course_information_record(a).fingerprint != course_information_record(edited).fingerprint


def test_a_resource_whose_best_run_changes_with_time_is_written_again_alone():
    """LearningResource.best_run depends on the time: the enrollable run while enrollment is open, then the next."""
    runs = [
        {"id": 1, "published": True, "start_date": "2030-01-10T00:00:00+00:00", "end_date": "2030-05-01T00:00:00+00:00",
         "enrollment_start": "2029-12-01T00:00:00+00:00", "enrollment_end": "2030-01-31T00:00:00+00:00"},
        {"id": 2, "published": True, "start_date": "2030-09-10T00:00:00+00:00"},
    ]  # fmt: skip
    row = {**RESOURCE, "runs": json.dumps(runs)}
    during, after = (datetime(2030, m, 15, tzinfo=UTC) for m in (1, 3))
    assert best_run(row, "x", during) == 1 and best_run(row, "x", after) == 2
    then, later = resource_record(row, during), resource_record(row, after)
    assert then.fingerprint != later.fingerprint
    assert content_file_record(FILE, then).fingerprint == content_file_record(FILE, later).fingerprint
    assert course_information_record(then).fingerprint == course_information_record(later).fingerprint


def test_duplicate_keys_use_the_row_with_the_highest_id_whatever_the_order():
    copy = {**RESOURCE, "id": 2, "title": "Linear Algebra (copy)"}
    for rows in ([RESOURCE, copy], [copy, RESOURCE]):
        listing = list_records(Reader(rows, [{**FILE, "resource_id": 2}]))
        (record,) = [r for r in listing.records.values() if r.kind == "resource"]
        assert record.source_id == 2 and record.fingerprint == resource_record(copy).fingerprint
        assert listing.duplicates == ["ocw.18.06: learning_resources id=1 ignored, id=2 used"]
        assert len(listing.records) == 3  # and the file and the course information of the row used


def test_rows_that_cannot_be_records_are_named_with_the_field_and_unreadable_ones_keep_their_points():
    rows = [
        {**RESOURCE, "id": 3, "readable_id": " "},
        {**RESOURCE, "id": 4, "readable_id": "broken", UNREADABLE: "invalid UTF-8"},
    ]
    files = [{**FILE, "id": 11, "resource_id": 99}]
    listing = list_records(Reader([RESOURCE, *rows], files))
    assert listing.failed == {
        "learning_resources id=3": "learning_resources id=3: field 'readable_id' is empty",
        "ocw.broken": "ocw.broken: the database could not read it: invalid UTF-8",
        "content_files id=11": "content_files id=11: field 'resource_id' names no published resource of this type",
    }
    broken = resource_record(rows[1])  # its points, and its course information's, stay until it can be read
    assert listing.kept == {broken.record_id, course_information_record(broken).record_id}
    assert [r.record_key for r in listing.records.values()] == ["ocw.18.06", "ocw.18.06.course_information"]
    assert isinstance(next(iter(listing.records.values())), Record)


def test_the_best_run_is_mit_learns_at_any_moment():
    """LearningResource.best_run, branch by branch: enrollable now (the earliest start), else the next to start,
    else the last started, else the first run."""
    from embedding_pipeline.mit_learn import best_run_id

    def run(i, **dates):
        return {"id": i, **{k: f"{v}T00:00:00+00:00" for k, v in dates.items()}}

    now = datetime(2030, 6, 1, tzinfo=UTC)
    enrollable = [run(1, start_date="2030-01-01", end_date="2030-12-01"),
                  run(2, enrollment_start="2029-01-01", enrollment_end="2031-01-01", start_date="2029-06-01"),
                  run(3, start_date="2030-09-01")]  # fmt: skip
    assert best_run_id(enrollable, now) == 2
    assert best_run_id([run(4, start_date="2031-02-01"), run(5, start_date="2030-09-01")], now) == 5
    assert (
        best_run_id([run(6, start_date="2020-01-01", end_date="2020-05-01"), run(7, start_date="2021-01-01")], now) == 7
    )
    assert best_run_id([run(8), run(9)], now) == 8 and best_run_id([], now) is None
