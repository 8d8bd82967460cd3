"""text_chunks: one row per Qdrant point, with its deterministic id, text and payload."""

import hashlib
import json
import time
import uuid
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from embedding_pipeline.partitions import resource_type_partitions
from embedding_pipeline.resources.chunker import TextChunker

CHUNK_COLUMNS = ["point_id", "collection", "record_key", "text", "text_hash", "tokens", "payload", "error"]
MARKDOWN_EXTENSIONS = {".md", ".markdown"}
FAILURES_LISTED = 50  # in logs and metadata; the count covers all


class RecordError(ValueError):
    """A source record that cannot be embedded; names the record and the field."""

    def __init__(self, record: str, field: str, problem: str):
        super().__init__(f"{record}: field '{field}' {problem}")


def point_id(*parts) -> str:
    """Deterministic: the same record (and chunk number) always lands on the same point."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, ".".join(str(p) for p in parts)))


def _text_field(row: pd.Series, field: str, record: str, required: bool = False) -> str:
    value = row.get(field)
    if value is None or (isinstance(value, float) and pd.isna(value)):
        value = ""
    if not isinstance(value, str):
        raise RecordError(record, field, f"must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise RecordError(record, field, "is empty")
    return value.strip()


def _topics(row: pd.Series, record: str) -> list[str]:
    """Topics arrive as a JSON list in text (SQLite), as an array (PostgreSQL) or not at all."""
    value = row.get("topics")
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as error:
            raise RecordError(record, "topics", f"is not a JSON list ({error})") from None
    if not hasattr(value, "__iter__") or isinstance(value, (str, dict)):
        raise RecordError(record, "topics", f"must be a list of names, got {type(value).__name__}")
    return [str(topic) for topic in value]


def _row(collection: str, record_key: str, pid: str, text: str, tokens: int, payload: dict) -> dict:
    return {
        "point_id": pid,
        "collection": collection,
        "record_key": record_key,
        "text": text,
        "text_hash": hashlib.sha256(text.encode()).hexdigest(),
        "tokens": tokens,
        "payload": json.dumps({**payload, "record_key": record_key}, default=str),
        "error": None,
    }


def _resource_key(resource: pd.Series) -> str:
    record = f"learning_resources id={resource['id']}"
    return f"{_text_field(resource, 'platform', record, True)}.{_text_field(resource, 'readable_id', record, True)}"


def resource_chunk(resource: pd.Series, chunker: TextChunker) -> dict:
    """The resource's single point: its title, descriptions and topics, cut to the chunk size."""
    key = _resource_key(resource)
    title = _text_field(resource, "title", key, required=True)
    description = _text_field(resource, "description", key)
    full_description = _text_field(resource, "full_description", key)
    topics = _topics(resource, key)
    parts = [f"# {title}", description]
    if full_description and full_description != description:
        parts.append(full_description)
    if topics:
        parts.append("Topics: " + ", ".join(topics))
    text = chunker.truncate("\n\n".join(p for p in parts if p))
    payload = {
        "resource_id": int(resource["id"]),
        "readable_id": resource["readable_id"],
        "platform": resource["platform"],
        "resource_type": resource["resource_type"],
        "title": title,
        "description": description,
        "url": _text_field(resource, "url", key),
        "topics": topics,
        "published": True,
        "created_on": resource.get("created_on"),
        "updated_on": resource.get("updated_on"),
    }
    return _row("resources", key, point_id(key), text, chunker.count_tokens(text), payload)


def file_key(file: pd.Series, resource: pd.Series) -> str:
    record = f"content_files id={file['id']}"
    run = _text_field(file, "run_readable_id", record)
    return f"{_resource_key(resource)}.{run}.{_text_field(file, 'key', record, required=True)}"


def content_file_chunks(file: pd.Series, resource: pd.Series, chunker: TextChunker) -> Iterator[dict]:
    """The file's chunks: token-sized, Markdown split on headers first."""
    key = file_key(file, resource)
    content = _text_field(file, "content", key, required=True)
    extension = _text_field(file, "file_extension", key).lower()
    markdown = extension in MARKDOWN_EXTENSIONS or _text_field(file, "file_type", key).lower() == "markdown"
    pieces = chunker.split(content, markdown=markdown)
    payload = {
        "content_file_id": int(file["id"]),
        "resource_id": int(resource["id"]),
        "resource_readable_id": resource["readable_id"],
        "resource_title": resource["title"],
        "platform": resource["platform"],
        "resource_type": resource["resource_type"],
        "run_readable_id": _text_field(file, "run_readable_id", key),
        "key": file["key"],
        "title": _text_field(file, "title", key),
        "url": _text_field(file, "url", key),
        "file_type": _text_field(file, "file_type", key),
        "file_extension": extension,
        "checksum": _text_field(file, "checksum", key),
        "published": True,
        "updated_on": file.get("updated_on"),
        "chunk_count": len(pieces),
    }
    for number, (text, headers) in enumerate(pieces):
        chunk_payload = {**payload, "chunk_number": number, "headers": headers, "chunk_content": text}
        yield _row("content_files", key, point_id(key, number), text, chunker.count_tokens(text), chunk_payload)


def _sample_table(chunks: pd.DataFrame, rows: int = 5) -> str:
    """A few chunks as a Markdown table, so the UI shows what is being embedded."""
    lines = ["| record | tokens | text |", "|---|---|---|"]
    for row in chunks.head(rows).itertuples():
        text = " ".join(row.text.split())[:120].replace("|", "\\|")
        lines.append(f"| {row.record_key} | {int(row.tokens)} | {text}… |")
    return "\n".join(lines)


def _failure(record_key: str, error: Exception) -> dict:
    """A row that stands for a record that could not be embedded."""
    message = str(error) if isinstance(error, RecordError) else f"{record_key}: {type(error).__name__}: {error}"
    return {**dict.fromkeys(CHUNK_COLUMNS), "record_key": record_key, "text": "", "error": message}


@dg.asset(
    partitions_def=resource_type_partitions,
    group_name="embeddings",
    kinds={"tiktoken", "pandas"},
    code_version="chunks-1",
    check_specs=[
        dg.AssetCheckSpec(
            "no_empty_chunks",
            asset="text_chunks",
            partitions_def=resource_type_partitions,
            description="No text to embed is empty.",
        ),
        dg.AssetCheckSpec(
            "no_failed_records",
            asset="text_chunks",
            partitions_def=resource_type_partitions,
            description="Records that could not be read (WARN).",
        ),
    ],
)
def text_chunks(context: dg.AssetExecutionContext, source_content: pd.DataFrame, chunker: TextChunker):
    """The texts to embed: one per resource and one per content-file chunk.

    A record that cannot be read (missing title, broken topics, ...) becomes a row with an
    `error` instead of points; the rest of the partition goes on, and the record's points
    already in Qdrant are kept until it is fixed.
    """
    started = time.perf_counter()
    resources = source_content[source_content["record_type"] == "resource"]
    files = source_content[source_content["record_type"] == "content_file"]
    resources_by_id = {row["id"]: row for _, row in resources.iterrows()}
    rows: list[dict] = []
    for _, resource in resources.iterrows():
        record_key = f"learning_resources id={resource['id']}"
        try:
            record_key = _resource_key(resource)
            rows.append(resource_chunk(resource, chunker))
        except Exception as error:
            rows.append(_failure(record_key, error))
    for _, file in files.iterrows():
        record_key = f"content_files id={file['id']}"
        try:
            resource = resources_by_id.get(file["resource_id"])
            if resource is None:
                raise RecordError(record_key, "resource_id", "names no published resource of this type")
            record_key = file_key(file, resource)
            rows.extend(content_file_chunks(file, resource, chunker))
        except Exception as error:
            rows.append(_failure(record_key, error))
    frame = pd.DataFrame(rows, columns=CHUNK_COLUMNS)
    seconds = time.perf_counter() - started
    failed = frame[frame["error"].notna()]
    failures = failed["error"].head(FAILURES_LISTED).tolist()
    if len(failed) > FAILURES_LISTED:
        failures.append(f"... and {len(failed) - FAILURES_LISTED} more")
    for message in failures:
        context.log.warning(f"Not embedded: {message}")
    good = frame[frame["error"].isna()]
    file_chunks = good[good["collection"] == "content_files"]
    context.log.info(f"{len(good)} texts ({len(file_chunks)} content chunks), {len(failed)} records failed")
    empty = good[good["text"].str.strip() == ""]
    yield dg.Output(
        frame,
        metadata={
            "resources": dg.MetadataValue.int(int((good["collection"] == "resources").sum())),
            "content_files": dg.MetadataValue.int(int(file_chunks["record_key"].nunique())),
            "chunks": dg.MetadataValue.int(len(file_chunks)),
            "tokens": dg.MetadataValue.int(int(good["tokens"].sum())),
            "max_chunk_tokens": dg.MetadataValue.int(int(file_chunks["tokens"].max()) if len(file_chunks) else 0),
            "chunk_size": dg.MetadataValue.int(chunker.chunk_size),
            "chunk_overlap": dg.MetadataValue.int(chunker.chunk_overlap),
            "token_encoding": dg.MetadataValue.text(chunker.encoding_name),
            "chunk_seconds": dg.MetadataValue.float(round(seconds, 3)),
            "sample_chunks": dg.MetadataValue.md(_sample_table(good)),
            "failed_records": dg.MetadataValue.int(len(failed)),
            "failures": dg.MetadataValue.md("\n".join(f"- {m}" for m in failures) or "none"),
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_empty_chunks",
        passed=empty.empty,
        metadata={"empty_chunks": len(empty), "sample": dg.MetadataValue.json(empty["record_key"].head(10).tolist())},
    )
    yield dg.AssetCheckResult(
        check_name="no_failed_records",
        passed=failed.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failed_records": len(failed),
            "failures": dg.MetadataValue.md("\n".join(f"- {m}" for m in failures) or "none"),
        },
    )
