"""What mit-learn's readers read of our collections: point ids, payload documents, texts and indexes.

mit-learn's search endpoints, "similar resources" carousel, assistants and health check read the
collections this project writes; its code (mitodl/mit-learn, `vector_search/`, `learning_resources/`)
is the specification, and each rule below names the function it follows. Our own bookkeeping lives
under the one top-level payload key `OWN`, the only key mit-learn's responses gain.
"""

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from textwrap import dedent

OWN = "embedding_pipeline"  # the payload key of this project's bookkeeping (fingerprints, hashes, heads)


def own(name: str) -> str:
    """The payload path of one of our bookkeeping fields, for filters and indexes."""
    return f"{OWN}.{name}"


# vector_search.utils.vector_point_id / vector_point_key
def vector_point_id(key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, key))


def resource_key(platform: str, readable_id: str) -> str:
    """vector_point_key(document): `{platform code}.{readable_id}` ("" for a resource without platform)."""
    return f"{platform}.{readable_id}"


def content_file_key(resource: str, run_readable_id: str, key: str) -> str:
    """vector_point_key(document, document_type="content_file") without its chunk number: `{platform}.
    {resource readable_id}.{run readable_id}.{key}`, the run "" for a run-less file (its serializer omits it)."""
    return f"{resource}.{run_readable_id}.{key}"


def chunk_id(file_key: str, number: int) -> str:
    return vector_point_id(f"{file_key}.{number}")


# learning_resources.constants: the names its serializers give codes ({code, name} objects).
LEVELS = {
    "undergraduate": "Undergraduate", "graduate": "Graduate", "high_school": "High School",
    "noncredit": "Non-Credit", "advanced": "Advanced", "intermediate": "Intermediate", "introductory": "Introductory",
}  # fmt: skip
DELIVERY = {"online": "Online", "hybrid": "Hybrid", "in_person": "In person", "offline": "Offline"}
FORMATS = {"synchronous": "Synchronous", "asynchronous": "Asynchronous"}
PACES = {"self_paced": "Self-paced", "instructor_paced": "Instructor-paced"}
# Columns a resource and a run both have, passed on as they are.
OFFERING = ["availability", "location", "duration", "min_weeks", "max_weeks", "min_weekly_hours", "max_weekly_hours",
            "time_commitment"]  # fmt: skip
CERTIFICATION_TYPES = {
    "micromasters": "MicroMasters Credential", "professional": "Professional Certificate",
    "completion": "Certificate of Completion", "none": "No Certificate",
}  # fmt: skip
RESOURCE_TYPES = ["course", "program", "learning_path", "podcast", "podcast_episode", "video", "video_playlist",
                  "document"]  # fmt: skip
GROUPED_BY_CATEGORY = ("course", "program")
RUN_DATES = ("start_date", "end_date", "enrollment_start", "enrollment_end", "last_modified")

# vector_search.constants: QDRANT_LEARNING_RESOURCE_INDEXES, QDRANT_CONTENT_FILE_INDEXES, QDRANT_TOPIC_INDEXES.
# "lookup" is a keyword index too (KEYWORD on a server); on the embedded engine it builds no
# payload-aware HNSW links, which a field with a value per record would not use.
RESOURCE_INDEXES = {
    "readable_id": "lookup", "resource_type": "keyword", "certification": "bool",
    "certification_type.code": "keyword", "professional": "bool", "published": "bool", "free": "bool",
    "course_feature": "keyword", "topics[].name": "keyword", "ocw_topics": "keyword",
    "runs[].level[].code": "keyword", "departments[].department_id": "keyword", "platform.code": "keyword",
    "offered_by.code": "keyword", "delivery[].code": "keyword", "url": "lookup", "title": "lookup",
    "resource_type_group": "keyword", "resource_category": "keyword", "next_start_date": "datetime",
    "created_on": "datetime", "views": "integer",
}  # fmt: skip
CONTENT_FILE_INDEXES = {
    "key": "lookup", "title": "lookup", "platform.code": "keyword", "offered_by.code": "keyword",
    "file_extension": "keyword", "run_readable_id": "lookup", "resource_readable_id": "lookup",
    "edx_module_id": "lookup", "url": "lookup",
}  # fmt: skip
TOPIC_INDEXES = {"name": "keyword"}
# Keys of QDRANT_CONTENT_FILE_PARAM_MAP mit-learn filters on without an index (a server in strict mode refuses
# such a filter or facet): indexed here too. Its long texts (description, summary, flashcards) are not.
CONTENT_FILE_FACETS = {"course_number": "keyword", "content_feature_type": "keyword", "content_type": "keyword",
                       "file_type": "keyword", "run_title": "lookup", "checksum": "lookup"}  # fmt: skip
# What the pipeline finds its points by: the partition, a record's points, its head, a text's vectors.
OWN_INDEXES = {own("resource_type"): "lookup", own("record_id"): "lookup", own("role"): "lookup",
               own("text_hash"): "lookup"}  # fmt: skip


def model_short_name(model_name: str) -> str:
    """vector_search.encoders.base.BaseEncoder.model_short_name: the vector's name is the part of the model
    name after its FIRST `/` ("sentence-transformers/all-MiniLM-L6-v2" → "all-MiniLM-L6-v2")."""
    parts = model_name.split("/")
    return parts[1] if len(parts) > 1 else model_name


def coded(code: str | None, names: Mapping[str, str]) -> dict | None:
    """A code as its serializers show it: {code, name}."""
    return {"code": code, "name": names.get(code, code)} if code else None


def resource_type_group(resource_type: str, category: str | None) -> str:
    """learning_resources.serializers.ComputedResourceTypeGroupField."""
    if resource_type in GROUPED_BY_CATEGORY:
        return category if category in RESOURCE_TYPES else resource_type
    return "learning_material"


def is_free(resource_type: str, professional: bool, amounts: list) -> bool:
    """LearningResourceBaseSerializer.get_free: a course or program is free when it is not professional and
    has no price or a zero one; every other resource is free."""
    if resource_type in GROUPED_BY_CATEGORY:
        return not professional and (not amounts or any(float(a) == 0 for a in amounts))
    return True


def offered(values: Mapping) -> dict:
    """How a resource or a run is offered, as their serializers show it (codes as {code, name})."""
    return {
        **{name: values.get(name) for name in OFFERING},
        "delivery": [coded(code, DELIVERY) for code in values.get("delivery") or []],
        "format": [coded(code, FORMATS) for code in values.get("format") or []],
        "pace": [coded(code, PACES) for code in values.get("pace") or []],
    }


def public_runs(runs: list[dict]) -> list[dict]:
    """LearningResourceRun.objects.public(), in LearningResource.published_runs' order: published, not variants,
    by start date, enrollment start and id (missing dates last, as PostgreSQL sorts them)."""

    def when(run, name):
        return (run.get(name) is None, str(run.get(name) or ""))

    kept = [r for r in runs if r.get("published") and not r.get("is_variant")]
    return sorted(kept, key=lambda r: (when(r, "start_date"), when(r, "enrollment_start"), r.get("id") or 0))


def published_runs(runs: list[dict]) -> list[dict]:
    """LearningResource.published_runs as its serializer shows them: levels and deliveries as {code, name}, with
    their instructors, prices and images."""
    return [
        {
            **{k: v for k, v in run.items() if k not in ("is_variant", "updated_on")},
            **{name: iso_date(run.get(name)) for name in RUN_DATES},
            "published": bool(run.get("published")),
            "prices": [price(p) for p in run["prices"]] if run.get("prices") is not None else None,
            **offered(run),
            "level": [coded(code, LEVELS) for code in run.get("level") or []],
            "instructors": run.get("instructors") or [],
            "image": image(run.get("image")),
            "resource_prices": [{**p, "amount": price(p["amount"])} for p in run.get("resource_prices") or []],
        }
        for run in public_runs(runs)
    ]


def image(value) -> dict | None:
    """LearningResourceImageSerializer: {id, url, description, alt}."""
    return {name: value.get(name) for name in ("id", "url", "description", "alt")} if isinstance(value, dict) else None


def _moment(value) -> datetime | None:
    """A date of a run as a datetime (UTC where it has no zone)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def best_run_id(runs: list[dict], now: datetime) -> int | None:
    """LearningResource.best_run: of the published runs (`public_runs`, in their order), the enrollable one
    that starts first, else the next to start, else the one that started last, else the first. It depends on
    the time: a run is written with the best run of the moment it is written."""
    dated = [(run, {name: _moment(run.get(name)) for name in RUN_DATES}) for run in runs]

    def enrollable(when: dict) -> bool:
        start, end = when["enrollment_start"] or when["start_date"], when["enrollment_end"] or when["end_date"]
        return bool(start and start <= now and end and end > now)

    open_now = [(run, when) for run, when in dated if enrollable(when)]
    if open_now:
        return min(open_now, key=lambda item: (item[1]["start_date"] or now, item[1]["end_date"] or now))[0]["id"]
    upcoming = [(run, when) for run, when in dated if when["start_date"] and when["start_date"] >= now]
    if upcoming:
        return min(upcoming, key=lambda item: item[1]["start_date"])[0]["id"]
    started = [(run, when) for run, when in dated if when["start_date"]]
    if started:
        return max(started, key=lambda item: item[1]["start_date"])[0]["id"]
    return runs[0]["id"] if runs else None


# learning_resources_search.serializers: OCW_SEMESTER_TO_MONTH_MAPPING and serialize_learning_resource_for_update's
# cut-offs of a stale or incomplete resource.
OCW_SEMESTER_MONTHS = {"Fall": 9, "Spring": 3, "January IAP": 1, "Summer": 6, None: 1}
STALENESS_CUTOFF, COMPLETENESS_CUTOFF = 2010, 0.5


def resource_age_date(resource_type: str, group: str, document: Mapping, runs: list[dict]) -> datetime | None:
    """get_resource_age_date: how stale a resource is. A learning material's last modification; a course with no
    next start, the start of its last published run (an OCW run's year and semester); otherwise None. A run's
    semester OCW does not name fails, as mit-learn's serializer does (ValueError)."""
    if group == "learning_material":
        return _moment(document.get("last_modified"))
    if resource_type != "course" or document.get("next_start_date") or not runs:
        return None
    # runs.public().order_by("start_date").last(): PostgreSQL sorts a run without a start last, so it comes first
    last = max(
        runs,
        key=lambda r: (r.get("start_date") is None, _moment(r.get("start_date")) or datetime.min.replace(tzinfo=UTC)),
    )
    if last.get("year") is not None and (document.get("offered_by") or {}).get("code") == "ocw":
        if last.get("semester") not in OCW_SEMESTER_MONTHS:
            raise ValueError(f"names a semester OCW does not have: {last.get('semester')!r}")
        return datetime(int(last["year"]), OCW_SEMESTER_MONTHS[last.get("semester")], 1, tzinfo=UTC)
    return _moment(last.get("start_date"))


def is_incomplete_or_stale(age: datetime | None, completeness: float) -> bool:
    return bool(age and age.year <= STALENESS_CUTOFF) or completeness < COMPLETENESS_CUTOFF


def featured_rank(position: int | None, key: str) -> float | None:
    """serialize_learning_resource_for_update's `featured_rank`: the resource's position in a channel's featured
    list plus `random()`, which only shuffles equal positions. Here the fraction is drawn from the resource's key, so
    that a point is the same every time it is written (mit-learn's search drops the key from its responses)."""
    if position is None:
        return None
    return int(position) + int(hashlib.md5(key.encode()).hexdigest()[:8], 16) / 2**32


def price(amount) -> str:
    """A price as DRF's DecimalField(decimal_places=2) writes it: "2419.00"."""
    return f"{Decimal(str(amount)):.2f}"


def department(value: Mapping) -> dict:
    """LearningResourceDepartmentSerializer: {department_id, name, channel_url, school: {id, name, url}}."""
    school = {"id": value.get("school_id"), "name": value.get("school_name"), "url": value.get("school_url")}
    return {
        "department_id": value.get("department_id"),
        "name": value.get("name"),
        "channel_url": value.get("channel_url"),
        "school": school if school["id"] is not None else value.get("school"),
    }


def embedding_context(document: Mapping, contents: Sequence[str] = (), fit: Callable[[str], str] = str) -> str:
    """vector_search.utils._learning_resource_embedding_context: the text mit-learn embeds for a resource
    (title, descriptions, course numbers), then its own files' `contents` under "## Content", the whole cut
    by `fit` to what the dense model takes (`Chunker.fit_to_model`)."""
    description = " ".join(filter(None, [document.get("description"), document.get("full_description")]))
    parts = [f"# {document.get('title')}", description]
    course = document.get("course")
    course_numbers = document.get("course_numbers") or (
        course.get("course_numbers") if isinstance(course, dict) else None
    )
    if course_numbers:
        numbers = [n.get("value") if isinstance(n, dict) else str(n) for n in course_numbers]
        numbers = [n for n in numbers if n]
        if numbers:
            parts.append(f"Course numbers: {', '.join(numbers)}")
    elif document.get("resource_type_group") == "course" and document.get("readable_id"):
        parts.append(f"Course number: {document.get('readable_id')}")
    context = dedent("\n\n".join(filter(None, parts)))
    content = "\n\n".join(text for text in contents if text)
    return fit(f"{context}\n\n## Content\n{content}") if content else context


# What a point of mit-learn's own holds of the text it embedded: `stored_text` reads it back.
STORED_TEXT_FIELDS = ["title", "description", "full_description", "course_numbers", "course", "resource_type_group",
                      "readable_id", "content_files", "chunk_content", "name"]  # fmt: skip


def stored_text(kind: str, payload: Mapping, fit: Callable[[str], str]) -> str | None:
    """The text mit-learn embedded for a point it wrote, from the point's payload: a resource's context (its
    files' text, which its payload holds in full, folded in and cut by `fit`), a chunk's content, a topic's
    name."""
    if kind == "resources":
        files = [f for f in payload.get("content_files") or [] if isinstance(f, dict)]
        contents = [f["content"] for f in files if isinstance(f.get("content"), str)]
        return embedding_context(payload, contents, fit) if payload.get("title") else None
    return payload.get("chunk_content" if kind == "content_files" else "name")


def iso_date(value) -> str | None:
    """A date as its serializers write it: ISO text (UTC where the database gave no zone)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace(" ", "T"))
        except ValueError:
            return value
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else str(value)
