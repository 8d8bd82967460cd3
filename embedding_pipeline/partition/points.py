"""From a record's full row to its points: the texts mit-learn embeds and the payloads its readers read.

A point's payload is mit-learn's document (`embedding_pipeline.mit_learn`); our bookkeeping sits under
its one key `OWN`. The first point of a record is its head: it carries the record's fingerprint, which
tells a later run whether the record changed, and its number of points.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from embedding_pipeline import course_information, mit_learn
from embedding_pipeline.chunking import Chunker, is_markdown
from embedding_pipeline.digests import digest, text_hash
from embedding_pipeline.mit_learn import OWN
from embedding_pipeline.partition.records import Record, RecordError, missing, normalized, point_id, text_field

# Bumped when ids, payloads or fingerprints change shape: it enters the collections' version, so
# a change moves a deployment to new collections by the usual re-embed backfill.
POINTS_LAYOUT = 4


@dataclass(slots=True)
class PlannedPoint:
    """A point a run may write: its id and text, the record it belongs to, its payload; `vectors` and
    `point_hash` are filled in as the run embeds and compares it."""

    point_id: str
    collection: str  # "resources", "content_files" or "topics"
    record_id: str
    record_key: str
    head: bool  # the record's first point, which carries its fingerprint
    text: str
    text_hash: str
    tokens: int
    payload: dict
    vectors: dict | None = None
    point_hash: str = ""


def _point(record: Record, number: int, count: int, text: str, tokens: int, payload: dict) -> PlannedPoint:
    head, hashed = number == 0, text_hash(text)
    return PlannedPoint(
        point_id=point_id(record, number),
        collection=record.collection,
        record_id=record.record_id,
        record_key=record.record_key,
        head=head,
        text=text,
        text_hash=hashed,
        tokens=tokens,
        payload={
            **payload,
            OWN: {
                "resource_type": record.resource_type,  # the partition: a content file's document has no type
                "record_id": record.record_id,
                "record_key": record.record_key,
                "role": "head" if head else "chunk",
                "chunk_count": count,
                "text_hash": hashed,  # lets a later run reuse the vectors of any point with the same text
                **({"record_fingerprint": record.fingerprint} if head else {}),
            },
        },
    )


def _flag(row: Mapping, name: str) -> bool:
    return bool(row.get(name)) and row.get(name) not in ("0", "false", "f")


def _named(row: Mapping, prefix: str, record: str) -> dict | None:
    """A platform or an offeror as mit-learn's serializers show it: {code, name}, or None."""
    code = text_field(row, f"{prefix}_code", record)
    return {"code": code, "name": text_field(row, f"{prefix}_name", record) or code} if code else None


def _offeror(row: Mapping, record: str) -> dict | None:
    """LearningResourceOfferorSerializer: {code, name, channel_url, display_facet}."""
    named = _named(row, "offered_by", record)
    facet = _value(row, "offered_by_display_facet")
    return named and {
        **named,
        "channel_url": _value(row, "offered_by_channel_url"),
        "display_facet": True if facet is None else _flag(row, "offered_by_display_facet"),
    }


def _topics(values: Mapping, record: str) -> list[dict]:
    """The topics as LearningResourceTopicSerializer shows them ({id, name, icon, parent, channel_url}); a query of
    your own may give names alone."""
    found = values.get("topics") or []
    if not all(isinstance(t, (str, dict)) and (isinstance(t, str) or t.get("name")) for t in found):
        raise RecordError(record, "topics", "must be a list of names or of objects with a name")
    return [
        {"id": None, "name": t, "icon": "", "parent": None, "channel_url": None}
        if isinstance(t, str)
        else {"id": t.get("id"), "name": t["name"], "icon": t.get("icon") or "", "parent": t.get("parent"),
              "channel_url": t.get("channel_url")}
        for t in found
    ]  # fmt: skip


def resource_document(row: Mapping, record: str, now: datetime | None = None) -> dict:
    """The resource's payload: mit-learn's document (serialize_learning_resource_for_bulk), key for key, from the
    columns the resources query lists; its best run is the one of `now`.

    Long because it is that document's field list, in one place."""
    values = normalized(row, record)
    resource_type = text_field(row, "resource_type", record)
    category = text_field(row, "resource_category", record) or None
    professional = _flag(row, "professional")
    amounts = [p.get("amount") for p in values.get("resource_prices") or [] if isinstance(p, dict)]
    own_files = _own_files(values, resource_type, record)
    runs = mit_learn.published_runs(values.get("runs") or [])
    document = {
        "id": int(row["id"]),
        "readable_id": text_field(row, "readable_id", record),
        "title": text_field(row, "title", record, required=True),
        "description": text_field(row, "description", record) or _first_description(own_files),
        "full_description": _value(row, "full_description"),
        "url": text_field(row, "url", record) or None,
        "image": mit_learn.image(values.get("image")),
        "resource_type": resource_type,
        "resource_category": category,
        "resource_type_group": mit_learn.resource_type_group(resource_type, category),
        "published": _flag(row, "published"),
        "test_mode": _flag(row, "test_mode"),
        "platform": _named(row, "platform", record),
        "offered_by": _offeror(row, record),
        "certification": _flag(row, "certification"),
        "certification_type": mit_learn.coded(
            text_field(row, "certification_type", record) or "none", mit_learn.CERTIFICATION_TYPES
        ),
        "professional": professional,
        "free": mit_learn.is_free(resource_type, professional, amounts),
        "prices": [mit_learn.price(p) for p in values.get("prices") or []],
        "resource_prices": [
            {**p, "amount": mit_learn.price(p.get("amount"))} for p in values.get("resource_prices") or []
        ],
        "topics": _topics(values, record),
        "departments": [mit_learn.department(d) for d in values.get("departments") or []],
        "course_feature": values.get("course_feature") or [],
        "ocw_topics": values.get("ocw_topics") or [],
        "languages": values.get("languages"),
        "runs": runs,
        "best_run_id": mit_learn.best_run_id(mit_learn.public_runs(values.get("runs") or []), now or datetime.now(UTC)),
        "children": [_child(child) for child in values.get("children") or []],
        "position": None,  # a resource's place in a list: only list views set it
        "next_start_date": mit_learn.iso_date(_value(row, "next_start_date")),
        "created_on": mit_learn.iso_date(_value(row, "created_on")),
        "last_modified": mit_learn.iso_date(_value(row, "last_modified")),
        "views": int(_first_of(_value(row, "view_count"), _value(row, "view_events"), 0)),
        **mit_learn.offered(values),
        "license_cc": _flag(row, "license_cc"),
        "continuing_ed_credits": _price_or_none(_value(row, "continuing_ed_credits")),
        "require_summaries": _flag(row, "require_summaries"),
        "completeness": float(_value(row, "completeness") or 0),
        **_type_fields(resource_type, row, values, record),
    }
    if resource_type in OWN_FILE_TYPES:
        document["content_files"] = [_own_file_document(file, document) for file in own_files]
    return {**_indexing_fields(document, runs, row, record), **document}


def _first_of(*values):
    return next(value for value in values if value is not None)


def _child(value: Mapping) -> dict:
    """LearningResourceRelationshipChildField: {child, position, relation_type, title, readable_id}."""
    return {name: value.get(name) for name in ("child", "position", "relation_type", "title", "readable_id")}


# VideoPlaylistSerializer's fields but `parent_course_numbers` (the parent course's numbers, if it is a course)
PLAYLIST_FIELDS = ("id", "channel", "video_count", "parent_learning_resource_id", "parent_title", "parent_url")


def _type_fields(resource_type: str, row: Mapping, values: Mapping, record: str) -> dict:
    """The document's fields of the resource's own type: its per-type object (CourseSerializer, ProgramSerializer,
    ...) and a video's playlists; None where the per-type row is missing, as its serializer gives it."""
    detail = values.get("detail")
    if resource_type == "course":
        return {"course": {"course_numbers": values.get("course_numbers") or []}}
    if resource_type == "program":
        counts = ("course_count", "program_count")
        return {"program": {name: int(_first_of(_value(row, name), 0)) for name in counts}}
    if resource_type in ("video", "podcast_episode"):
        parents = [p for p in values.get("parents") or [] if isinstance(p, dict)]
        return _media_fields(resource_type, detail, parents, text_field(row, "transcript", record))
    if resource_type == "video_playlist":
        course = detail.get("parent_is_course") if detail else False
        course_numbers = [n.get("value") for n in detail.get("parent_course_numbers") or []] if course else []
        fields = {name: detail.get(name) for name in PLAYLIST_FIELDS} if detail else {}
        return {"video_playlist": detail and {**fields, "parent_course_numbers": course_numbers}}
    if resource_type in ("podcast", "learning_path"):
        return {resource_type: detail}
    return {}


def _media_fields(resource_type: str, detail: dict | None, parents: list[dict], transcript: str) -> dict:
    """A video's object (VideoSerializer, with the transcript the search document adds) and its playlists' ids; an
    episode's object (PodcastEpisodeSerializer) with its podcasts."""
    if resource_type == "video":
        return {
            "video": detail
            and {
                **{name: detail.get(name) for name in ("id", "duration")},
                "transcript": transcript,
                "caption_urls": [
                    {name: c.get(name) for name in ("language", "language_name", "url")}
                    for c in detail.get("caption_urls") or []
                ],
                "cover_image_url": detail.get("cover_image_url") or None,
                "streaming_url": detail.get("streaming_url") or None,
            },
            "playlists": [p["id"] for p in parents if p.get("relation_type") == "PLAYLIST_VIDEOS"],
        }
    podcasts = [p for p in parents if p.get("relation_type") == "PODCAST_EPISODES"]
    return {
        "podcast_episode": detail
        and {
            **{name: detail.get(name) for name in ("id", "audio_url", "episode_link", "duration", "rss")},
            "transcript": transcript,
            "podcasts": [p["id"] for p in podcasts],
            "parent_podcasts": [{name: p.get(name) for name in ("id", "title", "readable_id")} for p in podcasts],
        }
    }


def _indexing_fields(document: Mapping, runs: list[dict], row: Mapping, record: str) -> dict:
    """What serialize_learning_resource_for_bulk adds to the document for indexing (mit-learn's search drops them
    from its responses, RESOURCES_PAYLOAD_EXCLUDE): its id again, how stale and how featured it is."""
    try:
        age = mit_learn.resource_age_date(document["resource_type"], document["resource_type_group"], document, runs)
    except ValueError as error:  # mit-learn's serializer fails on such a run too
        raise RecordError(record, "runs", str(error)) from None
    return {
        "_id": document["id"],
        "resource_relations": {"name": "resource"},
        "is_learning_material": document["resource_type_group"] == "learning_material",
        "resource_age_date": mit_learn.iso_date(age),
        "featured_rank": mit_learn.featured_rank(_value(row, "featured_position"), record),
        "is_incomplete_or_stale": mit_learn.is_incomplete_or_stale(age, document["completeness"]),
    }


# The types whose serializer lists the resource's own files (VideoResourceSerializer, DocumentResourceSerializer).
OWN_FILE_TYPES = ("video", "document")
# ContentFileSerializer's fields of a file of its own, the large ones too (serialize_learning_resource_for_update
# writes them; mit-learn's search drops `content`, `summary` and `flashcards` when it serves a payload).
OWN_FILE_FIELDS = ("key", "uid", "title", "description", "url", "content_type", "content_title", "content_author",
                   "content_language", "checksum", "image_src", "source_path", "file_type", "file_extension",
                   "edx_module_id", "youtube_id", "content", "summary")  # fmt: skip


def _own_files(values: Mapping, resource_type: str, record: str) -> list[dict]:
    """A video's or a document's own files (`direct_content_files`), in order of id."""
    files = values.get("direct_content_files") if resource_type in OWN_FILE_TYPES else None
    for file in files or []:
        if not isinstance(file, dict) or not isinstance(file.get("content"), (str, type(None))):
            raise RecordError(record, "direct_content_files", "must be a list of objects with a text `content`")
    return files or []


def _first_description(files: list[dict]) -> str | None:
    """VideoResourceSerializer.get_description: a resource without one takes its first own file's."""
    description = files[0].get("description") if files else None
    return description if isinstance(description, str) and description.strip() else None


def _own_file_document(file: Mapping, document: Mapping) -> dict:
    """One of the resource's own files as its document's `content_files` lists it."""
    return {
        "id": file.get("id"),
        "direct_learning_resource_id": document["id"],
        **{name: file.get(name) for name in OWN_FILE_FIELDS},
        "content_feature_type": file.get("content_feature_type") or [],
        "flashcards": file.get("flashcards") or [],
        "require_summaries": document["require_summaries"],
        "resource_id": str(document["id"]),
        "resource_readable_id": document["readable_id"],
        "course_number": [],
        "topics": document["topics"],
        "departments": document["departments"],
        "platform": document["platform"] or {"code": "", "name": ""},
        "offered_by": document["offered_by"] or {"code": "", "name": "", "display_facet": False},
    }


def resource_points(record: Record, row: Mapping, chunker: Chunker) -> list[PlannedPoint]:
    """The resource's single point: its document, and the text mit-learn embeds for it (its own files' text
    folded in, cut to the dense model's limit)."""
    document = resource_document(row, record.record_key)
    own_files = _own_files(normalized(row, record.record_key), document["resource_type"], record.record_key)
    contents = [file["content"] for file in own_files]
    text = mit_learn.embedding_context(document, contents, chunker.fit_to_model)
    return [_point(record, 0, 1, text, chunker.count_tokens(text), document)]


def content_file_document(row: Mapping, resource: Mapping, record: str) -> dict:
    """The file's document as a chunk's payload takes it (QDRANT_CONTENT_FILE_PARAM_MAP's keys of
    ContentFileSerializer), a run-less file's `run_readable_id` its resource's readable id
    (_with_run_readable_id_fallback)."""
    values, parent = normalized(row, record), normalized(resource, record)
    resource_readable_id = text_field(resource, "readable_id", record)
    course_numbers = parent.get("course_numbers") or []
    document = {
        "key": text_field(row, "key", record),
        "course_number": [n.get("value") for n in course_numbers if isinstance(n, dict)],
        "platform": _named(resource, "platform", record) or {"code": "", "name": ""},
        "offered_by": _offeror(resource, record) or {"code": "", "name": "", "display_facet": False},
        "file_extension": text_field(row, "file_extension", record) or None,
        "content_feature_type": values.get("content_feature_type") or [],
        "run_readable_id": text_field(row, "run_readable_id", record) or resource_readable_id,
        "resource_readable_id": resource_readable_id,
        "edx_module_id": text_field(row, "edx_module_id", record) or None,
        "content_type": text_field(row, "content_type", record) or None,
        "description": text_field(row, "description", record) or None,
        "title": text_field(row, "title", record) or None,
        "url": text_field(row, "url", record) or None,
        "file_type": text_field(row, "file_type", record) or None,
        "summary": text_field(row, "summary", record),
        "flashcards": values.get("flashcards") or [],
        "checksum": text_field(row, "checksum", record) or None,
    }
    if text_field(row, "run_readable_id", record):
        document["run_title"] = text_field(row, "run_title", record)
    return document


def content_file_points(record: Record, row: Mapping, resource: Mapping, chunker: Chunker) -> list[PlannedPoint]:
    """The file's chunks as mit-learn cuts them, each with the file's document, its number and its text."""
    content = text_field(row, "content", record.record_key, required=True)
    document = content_file_document(row, resource, record.record_key)
    chunks = chunker.split(content, markdown=is_markdown(document["file_type"], document["file_extension"]))
    if not chunks:
        raise RecordError(record.record_key, "content", "holds no text to embed")
    resource = mit_learn.resource_key(document["platform"]["code"], document["resource_readable_id"])
    head = {"resource_point_id": mit_learn.vector_point_id(resource)}
    return [
        _point(record, number, len(chunks), text, chunker.count_tokens(text),
               {**head, "chunk_number": number, "chunk_content": text, **document})
        for number, text in enumerate(chunks)
    ]  # fmt: skip


def course_information_points(record: Record, row: Mapping, chunker: Chunker) -> list[PlannedPoint]:
    """The resource's course information as mit-learn chunks and writes it (_embed_course_metadata_as_contentfile):
    its facts rendered and split as JSON, each chunk with the resource's ids, offeror, platform and URL."""
    document = resource_document(row, record.record_key)
    values = normalized(row, record.record_key)
    extra = course_information.Extra(
        course_count=int(_value(row, "course_count") or 0),
        program_count=int(_value(row, "program_count") or 0),
        children=values.get("program_children") or [],
        duration=_value(row, "media_duration"),
    )
    try:
        rendered = course_information.render(document, extra)
    except ValueError as error:  # a duration mit-learn's serializer fails on too
        raise RecordError(record.record_key, "duration", str(error)) from None
    resource = mit_learn.resource_key((document["platform"] or {}).get("code", ""), document["readable_id"])
    payload = {
        "resource_point_id": mit_learn.vector_point_id(resource),
        "resource_readable_id": document["readable_id"],
        "run_readable_id": document["readable_id"],
        "file_extension": ".txt",
        "file_type": course_information.FILE_KEY,
        "key": course_information.key(document),
        "checksum": course_information.checksum(rendered),
        **{name: document[name] for name in ("offered_by", "platform", "url")},
    }
    texts = course_information.chunks(rendered, document["resource_type"], chunker.chunk_size)
    return [
        _point(record, number, len(texts), text, chunker.count_tokens(text),
               {**payload, "chunk_number": number, "chunk_content": text})
        for number, text in enumerate(texts)
    ]  # fmt: skip


def record_points(record: Record, row: Mapping, resource: Mapping | None, chunker: Chunker) -> list[PlannedPoint]:
    """A record's points from its full row (a content file's also from its resource's row, `resource`)."""
    if record.kind == "resource":
        return resource_points(record, row, chunker)
    if record.kind == "course_information":
        return course_information_points(record, row, chunker)
    if record.kind == "topic":
        return topic_points(record, row, chunker)
    if resource is None:
        raise RecordError(record.record_key, "resource_id", "names no published resource of this type")
    return content_file_points(record, row, resource, chunker)


def _price_or_none(value) -> str | None:
    return None if value is None else mit_learn.price(value)


def topic_points(record: Record, row: Mapping, chunker: Chunker) -> list[PlannedPoint]:
    """A topic's point as vector_search.utils.embed_topics writes it: its name embedded, `{"name": ...}`."""
    name = text_field(row, "name", record.record_key, required=True)
    return [_point(record, 0, 1, name, chunker.count_tokens(name), {"name": name})]


def _value(row: Mapping, name: str):
    value = row.get(name)
    return None if missing(value) else value


def point_hash(version: str, point: PlannedPoint) -> str:
    """What a stored point must match to be left alone: vectors' version, text and payload."""
    return digest(version, point.text_hash, point.payload)
