"""From source rows to Qdrant points: record identity, fingerprints, texts and payloads.

A record is a learning resource (one point) or a content file (one point per chunk). Its id and
its points' ids are uuid5 of its key parts encoded as a JSON list, so no two records can share a
point however their parts look (`mitx.ocw` + `18` and `mitx` + `ocw.18` stay apart). The first
point of a record is its head: it carries the record's fingerprint, which tells a later run
whether the record changed.
"""

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from embedding_pipeline.resources.chunker import TextChunker

NAMESPACE = uuid.UUID("6f1d3c1e-5b7a-4c47-9a55-2f1f7d0c8e21")  # this project's uuid5 namespace
MARKDOWN_EXTENSIONS = {".md", ".markdown"}
# Bumped when ids, payloads or fingerprints change shape: it enters the collections' version, so
# a change moves a deployment to new collections by the usual re-embed backfill.
POINTS_LAYOUT = 3


class RecordError(ValueError):
    """A source record that cannot be embedded; names the record and the field."""

    def __init__(self, record: str, field: str, problem: str):
        super().__init__(f"{record}: field '{field}' {problem}")


def stable_id(*parts) -> str:
    return str(uuid.uuid5(NAMESPACE, json.dumps([str(p) for p in parts])))


def digest(*values) -> str:
    return hashlib.sha256(json.dumps(values, default=str, sort_keys=True).encode()).hexdigest()[:16]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def text_field(row: Mapping, field: str, record: str, required: bool = False) -> str:
    value = row.get(field)
    if _missing(value):
        value = ""
    if not isinstance(value, str):
        raise RecordError(record, field, f"must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise RecordError(record, field, "is empty")
    return value.strip()


def topics(row: Mapping, record: str) -> list[str]:
    """Topics arrive as a JSON list in text (SQLite), as an array (PostgreSQL) or not at all."""
    value = row.get("topics")
    if _missing(value):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as error:
            raise RecordError(record, "topics", f"is not a JSON list ({error})") from None
    if not hasattr(value, "__iter__") or isinstance(value, (str, dict, bytes)):
        raise RecordError(record, "topics", f"must be a list of names, got {type(value).__name__}")
    return [str(topic) for topic in value]


@dataclass(frozen=True)
class Record:
    """One record of the listing: who it is and what its listed columns look like now."""

    kind: str  # "resource" or "content_file"
    source_id: int
    record_id: str
    record_key: str  # for people: platform.readable_id[.run.key]
    fingerprint: str
    resource_id: int | None = None  # a content file's resource
    size: int = 0  # characters in the listed columns: a resource's text is about that long

    @property
    def collection(self) -> str:
        return "resources" if self.kind == "resource" else "content_files"


def resource_record(row: Mapping) -> Record:
    """A listed resource as a record; its fingerprint covers every listed column (all shape its point)."""
    where = f"learning_resources id={row['id']}"
    platform = text_field(row, "platform", where, required=True)
    readable_id = text_field(row, "readable_id", where, required=True)
    return Record(
        kind="resource",
        source_id=int(row["id"]),
        record_id=stable_id("resource", platform, readable_id),
        record_key=f"{platform}.{readable_id}",
        fingerprint=digest(row),
        size=sum(len(value) for value in row.values() if isinstance(value, str)),
    )


def content_file_record(row: Mapping, resource: Record) -> Record:
    """A listed content file (id, resource_id, run_readable_id, key, updated_on, checksum) of a listed resource.

    Its fingerprint includes its resource's: the file's payload repeats the resource's title and ids.
    """
    where = f"content_files id={row['id']}"
    run = text_field(row, "run_readable_id", where)
    key = text_field(row, "key", where, required=True)
    return Record(
        kind="content_file",
        source_id=int(row["id"]),
        record_id=stable_id("content_file", resource.record_id, run, key),
        record_key=f"{resource.record_key}.{run}.{key}",
        fingerprint=digest(row["id"], row.get("updated_on"), row.get("checksum"), resource.fingerprint),
        resource_id=resource.source_id,
    )


def point_ids(record: Record, count: int) -> list[str]:
    """The ids of a record's points: the record id for a resource, one per chunk for a content file."""
    if record.kind == "resource":
        return [record.record_id]
    return [stable_id(record.record_id, number) for number in range(count)]


def _point(record: Record, number: int, count: int, pid: str, text: str, tokens: int, payload: dict) -> dict:
    head, hashed = number == 0, text_hash(text)
    return {
        "point_id": pid,
        "collection": record.collection,
        "record_id": record.record_id,
        "record_key": record.record_key,
        "head": head,
        "text": text,
        "text_hash": hashed,
        "tokens": tokens,
        "payload": {
            **payload,
            "text_hash": hashed,  # lets a later run reuse the vectors of any point with the same text
            "record_key": record.record_key,
            "record_id": record.record_id,
            "role": "head" if head else "chunk",
            "chunk_count": count,
            **({"record_fingerprint": record.fingerprint} if head else {}),
        },
    }


def resource_points(record: Record, row: Mapping, chunker: TextChunker) -> list[dict]:
    """The resource's single point: its title, descriptions and topics, cut to the chunk size."""
    key = record.record_key
    title = text_field(row, "title", key, required=True)
    description = text_field(row, "description", key)
    full_description = text_field(row, "full_description", key)
    names = topics(row, key)
    parts = [f"# {title}", description]
    if full_description and full_description != description:
        parts.append(full_description)
    if names:
        parts.append("Topics: " + ", ".join(names))
    text = chunker.truncate("\n\n".join(p for p in parts if p))
    payload = {
        "resource_id": record.source_id,
        "readable_id": text_field(row, "readable_id", key),
        "platform": text_field(row, "platform", key),
        "resource_type": text_field(row, "resource_type", key),
        "title": title,
        "description": description,
        "url": text_field(row, "url", key),
        "topics": names,
        "published": True,
        "created_on": _date(row.get("created_on")),
        "updated_on": _date(row.get("updated_on")),
    }
    return [_point(record, 0, 1, record.record_id, text, chunker.count_tokens(text), payload)]


def content_file_points(record: Record, row: Mapping, resource: Mapping, chunker: TextChunker) -> list[dict]:
    """The file's chunks: token-sized, Markdown split on headers first."""
    key = record.record_key
    content = text_field(row, "content", key, required=True)
    extension = text_field(row, "file_extension", key).lower()
    markdown = extension in MARKDOWN_EXTENSIONS or text_field(row, "file_type", key).lower() == "markdown"
    pieces = chunker.split(content, markdown=markdown)
    if not pieces:
        raise RecordError(key, "content", "holds no text to embed")
    payload = {
        "content_file_id": record.source_id,
        "resource_id": record.resource_id,
        "resource_readable_id": text_field(resource, "readable_id", key),
        "resource_title": text_field(resource, "title", key),
        "platform": text_field(resource, "platform", key),
        "resource_type": text_field(resource, "resource_type", key),
        "run_readable_id": text_field(row, "run_readable_id", key),
        "key": text_field(row, "key", key),
        "title": text_field(row, "title", key),
        "url": text_field(row, "url", key),
        "file_type": text_field(row, "file_type", key),
        "file_extension": extension,
        "checksum": text_field(row, "checksum", key),
        "published": True,
        "updated_on": _date(row.get("updated_on")),
    }
    ids = point_ids(record, len(pieces))
    points = []
    for number, (text, headers) in enumerate(pieces):
        chunk = {**payload, "chunk_number": number, "headers": headers, "chunk_content": text}
        points.append(_point(record, number, len(pieces), ids[number], text, chunker.count_tokens(text), chunk))
    return points


def _date(value) -> str | None:
    """Dates as ISO text in payloads, whatever type the driver returned."""
    if _missing(value):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def point_hash(version: str, point: dict) -> str:
    """What a stored point must match to be left alone: vectors' version, text and payload."""
    return digest(version, point["text_hash"], point["payload"])
