"""From a record's full row to its points: the texts to embed and the payloads searches read.

The first point of a record is its head: it carries the record's fingerprint, which tells a later
run whether the record changed, and its number of points.
"""

import json
from collections.abc import Mapping

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.digests import digest, text_hash
from embedding_pipeline.partition.records import Record, RecordError, missing, point_ids, text_field

MARKDOWN_EXTENSIONS = {".md", ".markdown"}
# Bumped when ids, payloads or fingerprints change shape: it enters the collections' version, so
# a change moves a deployment to new collections by the usual re-embed backfill.
POINTS_LAYOUT = 3


def topics(row: Mapping, record: str) -> list[str]:
    """Topics arrive as a JSON list in text (SQLite), as an array (PostgreSQL) or not at all."""
    value = row.get("topics")
    if missing(value):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as error:
            raise RecordError(record, "topics", f"is not a JSON list ({error})") from None
    if not hasattr(value, "__iter__") or isinstance(value, (str, dict, bytes)):
        raise RecordError(record, "topics", f"must be a list of names, got {type(value).__name__}")
    return [str(topic) for topic in value]


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


def resource_points(record: Record, row: Mapping, chunker: Chunker) -> list[dict]:
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


def content_file_points(record: Record, row: Mapping, resource: Mapping, chunker: Chunker) -> list[dict]:
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
    if missing(value):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def point_hash(version: str, point: dict) -> str:
    """What a stored point must match to be left alone: vectors' version, text and payload."""
    return digest(version, point["text_hash"], point["payload"])
