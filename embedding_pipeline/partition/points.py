"""From a record's full row to its points: the texts to embed and the payloads searches read.

The first point of a record is its head: it carries the record's fingerprint, which tells a later
run whether the record changed, and its number of points.
"""

from collections.abc import Mapping
from datetime import UTC, datetime

from embedding_pipeline.chunking import Chunker
from embedding_pipeline.digests import digest, text_hash
from embedding_pipeline.partition.records import Record, RecordError, missing, normalized, point_ids, text_field

MARKDOWN_EXTENSIONS = {".md", ".markdown"}
# Bumped when ids, payloads or fingerprints change shape: it enters the collections' version, so
# a change moves a deployment to new collections by the usual re-embed backfill.
POINTS_LAYOUT = 3


def topics(row: Mapping, record: str) -> list[dict]:
    """The resource's topics as mit-learn's documents have them ({id, name, parent}); a query of your own
    may give names alone."""
    found = normalized(row, record).get("topics") or []
    if not all(isinstance(t, (str, dict)) and (isinstance(t, str) or t.get("name")) for t in found):
        raise RecordError(record, "topics", "must be a list of names or of objects with a name")
    return [{"id": None, "name": t, "parent": None} if isinstance(t, str) else t for t in found]


def named(row: Mapping, prefix: str, record: str) -> dict | None:
    """A platform or an offeror as mit-learn's documents have them: {code, name}, or None."""
    code = text_field(row, f"{prefix}_code", record)
    return {"code": code, "name": text_field(row, f"{prefix}_name", record) or code} if code else None


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
    subjects = topics(row, key)
    parts = [f"# {title}", description]
    if full_description and full_description != description:
        parts.append(full_description)
    if subjects:
        parts.append("Topics: " + ", ".join(t["name"] for t in subjects))
    text = chunker.truncate("\n\n".join(p for p in parts if p))
    values = normalized(row, key)
    payload = {
        "resource_id": record.source_id,
        "readable_id": text_field(row, "readable_id", key),
        "platform": named(row, "platform", key),
        "offered_by": named(row, "offered_by", key),
        "resource_type": text_field(row, "resource_type", key),
        "title": title,
        "description": description,
        "url": text_field(row, "url", key),
        "topics": subjects,
        "departments": values.get("departments") or [],
        "course_feature": values.get("course_feature") or [],
        "published": bool(row.get("published")),
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
    resource_readable_id = text_field(resource, "readable_id", key)
    payload = {
        "content_file_id": record.source_id,
        "resource_id": record.resource_id,
        "resource_readable_id": resource_readable_id,
        "resource_title": text_field(resource, "title", key),
        "platform": named(resource, "platform", key),
        "offered_by": named(resource, "offered_by", key),
        "resource_type": text_field(resource, "resource_type", key),
        # A run-less file carries its resource's readable id, as mit-learn's readers expect of every point.
        "run_readable_id": text_field(row, "run_readable_id", key) or resource_readable_id,
        "run_title": text_field(row, "run_title", key),
        "key": text_field(row, "key", key),
        "title": text_field(row, "title", key),
        "url": text_field(row, "url", key),
        "file_type": text_field(row, "file_type", key),
        "file_extension": extension,
        "edx_module_id": text_field(row, "edx_module_id", key),
        "content_feature_type": normalized(row, key).get("content_feature_type") or [],
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
    """Dates as ISO text in payloads (UTC where the database gave no zone), whatever the driver returned."""
    if missing(value):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def point_hash(version: str, point: dict) -> str:
    """What a stored point must match to be left alone: vectors' version, text and payload."""
    return digest(version, point["text_hash"], point["payload"])
