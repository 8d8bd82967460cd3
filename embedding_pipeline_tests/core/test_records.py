"""Records: who each row is (mit-learn's ids; rows that would share one are named), what its fingerprint covers, and rows that are named."""

import uuid

from embedding_pipeline.content import UNREADABLE
from embedding_pipeline.partition.records import (
    Record,
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


def test_a_resources_fingerprint_covers_every_listed_column_and_its_files_follow_it():
    a = resource_record(RESOURCE)
    edited = resource_record({**RESOURCE, "title": "Linear Algebra, revised"})
    assert edited.record_id == a.record_id and edited.fingerprint != a.fingerprint
    assert content_file_record(FILE, a).fingerprint != content_file_record(FILE, edited).fingerprint
    assert content_file_record(FILE, a).fingerprint != content_file_record({**FILE, "checksum": "b"}, a).fingerprint


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
