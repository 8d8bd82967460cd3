"""From the content database's rows to records: who each record is, and what its listed columns look like.

A record is a learning resource (one point), its course information or a content file (one point per
chunk each), or a topic. Its key and its points' ids are mit-learn's (`embedding_pipeline.mit_learn`): a
resource's point id is uuid5 of `{platform}.{readable_id}`, a chunk's of `{platform}.{resource}.{run}.{key}.{number}`
or `{platform}.{readable_id}.course_information.{number}`. A record's id
is the id of its first point. Two records with one key are named as duplicates, never overwritten.
"""

import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from embedding_pipeline import course_information, mit_learn
from embedding_pipeline.content import UNREADABLE
from embedding_pipeline.digests import digest

TEXT_COLUMNS = ("title", "description", "full_description")
# kind → collection: a resource's course information (mit-learn's "course metadata" chunks) lies among the files
COLLECTIONS = {
    "resource": "resources", "content_file": "content_files", "course_information": "content_files", "topic": "topics"
}  # fmt: skip
CHUNKED = ("content_file", "course_information")  # kinds with a point per chunk


class RecordError(ValueError):
    """A source record that cannot be embedded; names the record and the field."""

    def __init__(self, record: str, field: str, problem: str):
        super().__init__(f"{record}: field '{field}' {problem}")


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def text_field(row: Mapping, name: str, record: str, required: bool = False) -> str:
    value = row.get(name)
    if missing(value):
        value = ""
    if not isinstance(value, str):
        raise RecordError(record, name, f"must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise RecordError(record, name, "is empty")
    return value.strip()


# Columns that hold a list (an array, or JSON text on SQLite) or a JSON document. Lists a query of your
# own may aggregate in any order are sorted as mit-learn's serializers sort them (topics by name).
AGGREGATED = {
    "topics": lambda t: t.get("name") or "" if isinstance(t, dict) else str(t),
    "departments": lambda d: d.get("department_id") or "",
    "course_feature": str,
    "resource_prices": lambda p: (str(p.get("currency")), float(p.get("amount") or 0)),
    "runs": lambda r: r.get("id") or 0,
    "content_feature_type": str,
    "direct_content_files": lambda f: (f.get("id") or 0) if isinstance(f, dict) else 0,
}
ARRAYS = {"ocw_topics", "delivery", "prices", "languages", "course_numbers", "flashcards", "format", "pace",
          "program_children", "children", "parents"}  # fmt: skip
OBJECTS = {"image", "detail"}  # columns that hold a JSON object
# A resource's columns that its content files' chunks show (their payload's platform, offeror and ids): a file's
# fingerprint covers these, not the rest of its resource's row (its views, its image, ... are not in a chunk).
SHOWN_IN_FILES = ("readable_id", "platform_code", "platform_name", "offered_by_code", "offered_by_name",
                  "offered_by_display_facet", "offered_by_channel_url", "course_numbers")  # fmt: skip
# A resource's columns that only its own document shows: its course information is made of the rest of the row.
NOT_IN_COURSE_INFORMATION = ("image", "children", "parents", "featured_position", "view_count", "view_events",
                             "detail", "transcript_stamp")  # fmt: skip


def normalized(row: Mapping, record: str) -> dict:
    """The row with its list and JSON columns as Python values (lists sorted where a query aggregated them)."""
    values = dict(row)
    for name in AGGREGATED.keys() | ARRAYS | OBJECTS:
        value = _json(values.get(name), record, name)
        kind = dict if name in OBJECTS else list
        if value is not None and not isinstance(value, kind):
            raise RecordError(
                record, name, f"must be {'an object' if kind is dict else 'a list'}, got {type(value).__name__}"
            )
        if value is not None and name in AGGREGATED:
            value = sorted((v for v in value if v is not None), key=AGGREGATED[name])
        values[name] = value
    return values


def _json(value, record: str, name: str):
    """A column's JSON text read (an array or a JSON value the driver already read is left as it is)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value.strip() else None
    except json.JSONDecodeError as error:
        raise RecordError(record, name, f"is not JSON ({error})") from None


def best_run(row: Mapping, record: str, now: datetime) -> int | None:
    """The id of the resource's best run at `now` (mit_learn.best_run_id), from its listed row."""
    runs = _json(row.get("runs"), record, "runs")
    if not runs:
        return None
    if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
        raise RecordError(record, "runs", "must be a list of objects")
    try:
        return mit_learn.best_run_id(mit_learn.public_runs(runs), now)
    except (ValueError, TypeError, KeyError) as error:
        raise RecordError(record, "runs", f"holds a run whose dates cannot be read ({error})") from None


@dataclass(frozen=True)
class Record:
    """One record of the listing: who it is and what its listed columns look like now."""

    kind: str  # "resource", "content_file" or "topic"
    source_id: int
    record_id: str
    record_key: str  # mit-learn's point key: platform.readable_id[.run.key]
    fingerprint: str
    resource_id: int | None = None  # a content file's resource
    size: int = 0  # characters in the columns a resource's text is made of: it is about that long
    resource_type: str = ""  # the partition
    shown_in_files: str = ""  # a resource's: the digest of the columns its content files show (SHOWN_IN_FILES)
    shown_in_information: str = ""  # a resource's: the digest of the columns its course information is made of

    @property
    def collection(self) -> str:
        return COLLECTIONS[self.kind]


def resource_record(row: Mapping, now: datetime | None = None) -> Record:
    """A listed resource as a record; its fingerprint covers every listed column, its platform's, offeror's,
    topics', departments', tags', prices', runs', images' and relations' included (the default queries list them
    in order), and its best run at `now`: all of them shape its point."""
    where = f"learning_resources id={row['id']}"
    platform = text_field(row, "platform_code", where)
    readable_id = text_field(row, "readable_id", where, required=True)
    key = mit_learn.resource_key(platform, readable_id)
    information = digest({k: v for k, v in row.items() if k not in NOT_IN_COURSE_INFORMATION})
    best = best_run(row, where, now or datetime.now(UTC))
    return Record(
        kind="resource",
        source_id=int(row["id"]),
        record_id=mit_learn.vector_point_id(key),
        record_key=key,
        fingerprint=digest(information, [row.get(name) for name in NOT_IN_COURSE_INFORMATION], best),
        shown_in_files=digest([row.get(name) for name in SHOWN_IN_FILES]),
        shown_in_information=information,
        size=sum(len(value) for value in (row.get(c) for c in TEXT_COLUMNS) if isinstance(value, str))
        + _own_files_size(row.get("direct_content_stamp")),
        resource_type=text_field(row, "resource_type", where),
    )


def _own_files_size(stamp) -> int:
    """The length of the text of a resource's own files, from their listed stamp (0 when it cannot be read:
    the row's full read names the problem)."""
    try:
        files = json.loads(stamp) if isinstance(stamp, str) else stamp
        return sum(int(f.get("size") or 0) for f in files or [])
    except (ValueError, TypeError, AttributeError):
        return 0


def content_file_record(row: Mapping, resource: Record | None) -> Record:
    """A listed content file (`content.queries.CONTENT_FILE_LISTING`) of a listed resource.

    Its fingerprint includes the columns of its resource that the file's payload repeats (ids, platform, offeror).
    """
    where = f"content_files id={row['id']}"
    if resource is None:
        raise RecordError(where, "resource_id", "names no published resource of this type")
    run = text_field(row, "run_readable_id", where)
    key = mit_learn.content_file_key(resource.record_key, run, text_field(row, "key", where, required=True))
    return Record(
        kind="content_file",
        source_id=int(row["id"]),
        record_id=mit_learn.chunk_id(key, 0),
        record_key=key,
        fingerprint=digest(row, resource.shown_in_files),
        resource_id=resource.source_id,
        resource_type=resource.resource_type,
    )


def topic_record(row: Mapping) -> Record:
    """A topic (vector_search.utils.embed_topics): its point's id is the topic's `topic_uuid`."""
    where = f"topics id={row['id']}"
    name = text_field(row, "name", where, required=True)
    try:
        topic_uuid = str(uuid.UUID(str(row["topic_uuid"])))
    except ValueError:
        raise RecordError(where, "topic_uuid", f"is not a UUID: {row['topic_uuid']!r}") from None
    return Record("topic", int(row["id"]), topic_uuid, f"topic.{name}", digest(row), resource_type="topics")


def course_information_record(resource: Record) -> Record:
    """A resource's course information (vector_search.utils._embed_course_metadata_as_contentfile): chunks of
    the content-file collection with ids of `{platform}.{readable_id}.course_information.{n}`, made from the
    resource's row."""
    key = course_information.record_key(resource.record_key)
    return Record(
        "course_information", resource.source_id, mit_learn.chunk_id(key, 0), key,
        digest("course_information", resource.shown_in_information), resource_id=resource.source_id, size=resource.size,
        resource_type=resource.resource_type,
    )  # fmt: skip


def kind_of(collection: str, record_key: str) -> str:
    """The kind of the record stored in `collection` under `record_key`."""
    if collection == "content_files" and record_key.endswith(f".{course_information.CHUNK_KEY}"):
        return "course_information"
    return {"resources": "resource", "content_files": "content_file", "topics": "topic"}[collection]


def point_id(record: Record, number: int) -> str:
    """The id of a record's point `number`: the record id for a resource or a topic, one per chunk otherwise."""
    return mit_learn.chunk_id(record.record_key, number) if record.kind in CHUNKED else record.record_id


def point_ids(record: Record, count: int) -> list[str]:
    return [point_id(record, number) for number in range(count)]


def resource_of(record: Record) -> int:
    """The learning resource a record belongs to (itself, for a resource)."""
    return record.source_id if record.kind == "resource" else record.resource_id


@dataclass
class Listing:
    """The partition's records as the source lists them now."""

    records: dict[str, Record] = field(default_factory=dict)  # by record id
    failed: dict[str, str] = field(default_factory=dict)  # who → why (records that cannot even be listed)
    duplicates: list[str] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)  # ids of records that failed to be listed: their points stay


def list_records(reader, now: datetime | None = None) -> Listing:
    """Every published record of the partition, from the source's cheap columns (a `ContentReader`), as they
    stand at `now` (a resource's best run depends on the time).

    Two rows with one record key (possible where the source's unique constraint has NULLs): the
    row with the highest id is the record, the others are named.
    """
    listing = Listing()
    resources: dict[int, Record] = {}
    of_now = partial(resource_record, now=now or datetime.now(UTC))  # one moment for the whole listing
    for row in reader.list_resources():
        record = _listed(listing, row, f"learning_resources id={row['id']}", of_now)
        if record is not None:  # a duplicate's content files belong to the row that is used
            resources[int(row["id"])] = listing.records[record.record_id]
    for resource in {record.record_id: record for record in resources.values()}.values():
        information = course_information_record(resource)
        listing.records[information.record_id] = information
    for row in reader.list_content_files():
        of_resource = partial(content_file_record, resource=resources.get(row.get("resource_id")))
        _listed(listing, row, f"content_files id={row['id']}", of_resource)
    for row in reader.list_topics():
        _listed(listing, row, f"topics id={row['id']}", topic_record)
    return listing


def _listed(listing: Listing, row: dict, who: str, record_of: Callable[[dict], Record]) -> Record | None:
    """Add the row's record to the listing; a row that cannot be read or made a record is named instead."""
    if UNREADABLE in row:
        _unreadable(listing, row, who, record_of)
        return None
    try:
        record = record_of(row)
    except RecordError as error:
        listing.failed[who] = str(error)
        return None
    other = listing.records.get(record.record_id)
    if other is not None:
        keep, drop = (record, other) if record.source_id > other.source_id else (other, record)
        table = {"resource": "learning_resources", "content_file": "content_files"}.get(record.kind, "topics")
        listing.duplicates.append(f"{record.record_key}: {table} id={drop.source_id} ignored, id={keep.source_id} used")
        record = keep
    listing.records[record.record_id] = record
    return record


def _unreadable(listing: Listing, row: dict, who: str, record_of: Callable[[dict], Record]) -> None:
    """A listed row the database could not read: named, and its points kept when its key could be read."""
    try:
        record = record_of(row)
    except (RecordError, KeyError, AttributeError, TypeError):
        listing.failed[who] = could_not_read(who, row)
        return
    listing.failed[record.record_key] = could_not_read(record.record_key, row)
    listing.kept.add(record.record_id)
    if record.kind == "resource":  # its course information is made of the same row
        listing.kept.add(course_information_record(record).record_id)


def could_not_read(who: str, row: dict) -> str:
    return f"{who}: the database could not read it: {row[UNREADABLE]}"
