"""The course-information chunks mit-learn writes into the content-file collection for every resource it
embeds (vector_search.utils._embed_course_metadata_as_contentfile): the resource's facts as
learning_resources.serializers.LearningResourceMetadataDisplaySerializer renders them, split as JSON
by LangChain's RecursiveJsonSplitter and written out as Markdown (learning_resources.utils.json_to_markdown).

Each function below follows the serializer method of the same name (`_price` its `get_price`, `_runs`
its `get_runs`, ...), on the resource's document (the payload `points.resource_document` makes) and
the facts that document lacks (`Extra`). Where mit-learn lists a
Python set (levels, languages, instructors), its order changes from process to process; here it is sorted.
"""

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

PROGRAM_RELATIONS = ("PROGRAM_COURSES", "PROGRAM_PROGRAMS")
DURATION_TYPES = ("video", "podcast_episode")
CHUNK_KEY = "course_information"  # vector_point_key(doc, document_type="course_information")
FILE_KEY = "course_metadata"  # the chunks' `key` and `file_type`


@dataclass(frozen=True)
class Extra:
    """What the display serializer reads beyond the resource's payload: a program's counts and children
    (each {child, relation_type, title, readable_id, description, resource_type, visible, topics, children}),
    a video's or an episode's duration."""

    course_count: int = 0
    program_count: int = 0
    children: list[dict] = field(default_factory=list)
    duration: str | None = None


def key(document: Mapping) -> str:
    """The chunks' `key` payload: `{platform}.{readable_id}.course_metadata`."""
    return f"{(document.get('platform') or {}).get('code', '')}.{document['readable_id']}.{FILE_KEY}"


def record_key(document_key: str) -> str:
    """The chunks' point key without their number: `{platform}.{readable_id}.course_information`."""
    return f"{document_key}.{CHUNK_KEY}"


def checksum(rendered: Mapping) -> str:
    """checksum_for_content(str(serialized_document)): md5 of the rendered document's Python repr."""
    return hashlib.md5(str(rendered).encode()).hexdigest()  # mit-learn's checksum, not security


def chunks(rendered: Mapping, resource_type: str, chunk_size: int) -> list[str]:
    """LearningResourceMetadataDisplaySerializer.render_chunks: JSON pieces of at most 4 × chunk_size
    characters, each as Markdown under a title."""
    from langchain_text_splitters import RecursiveJsonSplitter

    pieces = RecursiveJsonSplitter(max_chunk_size=chunk_size * 4).split_text(
        json_data=dict(rendered), convert_lists=False
    )
    return [
        f"# Information about this {resource_type or 'course'}:\n\n{json_to_markdown(json.loads(piece))}"
        for piece in pieces
    ]


def json_to_markdown(obj, indent: int = 0) -> str:
    """learning_resources.utils.json_to_markdown."""
    pad = " " * (indent * 2)
    if isinstance(obj, dict):
        return "".join(
            f"\n{pad}**{name.replace('_', ' ').title()}**\n\n{json_to_markdown(value, indent + 1)}"
            for name, value in obj.items()
            if value is not None
        )
    if isinstance(obj, list):
        if all(isinstance(item, dict) for item in obj):
            columns = sorted({name for item in obj for name in item})
            rows = [f"| {' | '.join(columns)} |\n", f"| {' | '.join(['---'] * len(columns))} |\n"]
            for item in obj:
                cells = [re.sub(r"[\[\]{}]", "", str(item.get(name, "N/A"))) for name in columns]
                rows.append(f"| {' | '.join(cells)} |\n")
            return "".join(rows)
        return "".join(f"{pad}- {json_to_markdown(item, indent + 1).strip()}\n" for item in obj)
    if obj is None:
        return f"{pad}N/A\n\n"
    return f"{pad}{obj}\n\n"


def render(document: Mapping, extra: Extra) -> dict:
    """render_document: each section's help text → its value, sections without a value left out."""
    identical = _all_runs_are_identical(document)
    anytime = _show_start_anytime(document)
    dates = _dates_for_runs(document, anytime)
    show_format = _should_show_format(document, identical)
    resource_type = document.get("resource_type")
    sections = {
        "Title": _text(document.get("title")),
        "Description": _text(document.get("description")),
        "Full Description": _text(document.get("full_description")),
        "Website": _text(document.get("url")),
        "Free": None if document.get("free") is None else bool(document.get("free")),
        "Topics": [t["name"] for t in document.get("topics") or []],
        "Price": _price(document, identical),
        "Extra Price Information": _extra_price_info(document, identical),
        "Certificate": _certification(document),
        "Instructors": _instructors(document),
        "Runs/Sessions": _runs(document, identical),
        "Offered By": (document.get("offered_by") or {}).get("name"),
        "Languages": _across_runs(document, lambda run: run.get("languages") or []),
        "Levels": _across_runs(document, lambda run: [level["name"] for level in run.get("level") or []]),
        "Departments": [_department(d) for d in document.get("departments") or []] or None,
        "Platform": (document.get("platform") or {}).get("name"),
        "Number of Courses": extra.course_count if resource_type == "program" else None,
        "Number of Programs": extra.program_count if resource_type == "program" else None,
        "Child courses and programs included in this learning resource": (
            _program_courses(extra.children) if resource_type == "program" else None
        ),
        "Location": document.get("location") if show_format and _in_person(document) else None,
        "Starts": "Anytime" if anytime else (dates or None) if identical else None,
        "Format": [d["name"] for d in document.get("delivery") or []] if show_format else None,
        "As Taught In": dates if dates and anytime else None,
        "Duration": _duration(extra.duration) if resource_type in DURATION_TYPES and extra.duration else None,
    }
    return {name: value for name, value in sections.items() if value is not None}


def _department(department: Mapping) -> str:
    school = department.get("school")
    return f"{department['name']} ({school['name']})" if school else department["name"]


def _text(value) -> str | None:
    return None if value is None else str(value)


def _all_runs_are_identical(document: Mapping) -> bool:
    prices, deliveries, locations = set(), set(), set()
    for run in document.get("runs") or []:
        prices.add(tuple((p["currency"], p["amount"]) for p in run.get("resource_prices") or []))
        deliveries.update(d["code"] for d in run.get("delivery") or [])
        if run.get("location"):
            locations.add(run["location"])
    if len(prices) > 1 or len(deliveries) != 1:
        return False
    in_person = _in_person(document)
    return not ((in_person and len(locations) != 1) or (not in_person and locations))


def _in_person(document: Mapping) -> bool:
    """Delivered in person or hybrid (the resource's delivery, not its runs')."""
    return bool({d["code"] for d in document.get("delivery") or []} & {"in_person", "hybrid"})


def _show_start_anytime(document: Mapping) -> bool:
    return document.get("resource_type") in ("program", "course") and document.get("availability") == "anytime"


def _should_show_format(document: Mapping, identical: bool) -> bool:
    return document.get("resource_type") in ("program", "course") and identical and bool(document.get("delivery"))


def _start(run: Mapping) -> datetime | None:
    """_parse_run_start: the run's start as a UTC datetime."""
    try:
        parsed = datetime.fromisoformat(str(run["start_date"])) if run.get("start_date") else None
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _dates_for_runs(document: Mapping, as_taught_in: bool) -> list[str]:
    latest = datetime.max.replace(tzinfo=UTC)
    runs = sorted(document.get("runs") or [], key=lambda run: _start(run) or latest)
    return [date for date in (_run_date(run, as_taught_in) for run in runs) if date]


def _run_date(run: Mapping, as_taught_in: bool) -> str | None:
    start = _start(run)
    if as_taught_in:
        semester = (run.get("semester") or "").capitalize()
        if semester and run.get("year"):
            return f"{semester} {run['year']}"
        if semester and run.get("start_date"):
            return f"{semester} {run['start_date']}"
        if start:
            return start.strftime("%B, %Y")
    return start.strftime("%B %d, %Y") if start else None


def _runs(document: Mapping, identical: bool) -> list[dict] | None:
    if identical:
        return None
    runs = [
        {
            "start_date": start.strftime("%B %d, %Y") if (start := _start(run)) else "",
            "location": run.get("location") or "Online",
            "instructors": [i["full_name"] for i in run.get("instructors") or [] if i.get("full_name")],
            "duration": run.get("duration"),
            "format": [d["name"] for d in run.get("delivery") or []],
            "price": f"${run['prices'][0]}" if run.get("prices") else None,
        }
        for run in document.get("runs") or []
    ]
    return runs or None


def _instructors(document: Mapping) -> list | None:
    names = {i.get("full_name") for run in document.get("runs") or [] for i in run.get("instructors") or []}
    return sorted(names, key=lambda name: (name is not None, name or "")) or None


def _across_runs(document: Mapping, values) -> list | None:
    return sorted({value for run in document.get("runs") or [] for value in values(run)}) or None


def _certification(document: Mapping) -> str | None:
    certification = document.get("certification_type")
    if certification and not document.get("free"):
        return certification.get("name")
    if document.get("free") and certification and certification.get("code") == "none":
        return "No Certificate"
    return None


def _price(document: Mapping, identical: bool) -> str | None:
    if not identical:
        return None
    prices = document.get("prices") or []
    return f"${prices[0]}" if not document.get("free") and prices else "Free"


def _extra_price_info(document: Mapping, identical: bool) -> str | None:
    prices = document.get("prices") or []
    completion = (document.get("certification_type") or {}).get("code") == "completion"
    if identical and document.get("free") and completion and len(prices) > 1:
        return f"Earn a certificate: ${prices[1]}"
    return None


def _program_courses(children: list[dict]) -> list[dict] | None:
    """get_program_courses: the program's courses and programs, a sub-program's own courses after it."""
    return _collect([c for c in children if c.get("relation_type") in PROGRAM_RELATIONS], 2, set(), None) or None


def _collect(children: list[dict], depth: int, visited: set, parent_title: str | None) -> list[dict]:
    """_collect_courses_from_children: published (or test-mode) children, at most `depth` levels down."""
    fresh = [c["child"] for c in children if c["child"] not in visited]
    if depth <= 0 or not fresh:
        return []
    visited.update(fresh)
    fresh_ids = set(fresh)
    courses = []
    for child in children:
        if child["child"] not in fresh_ids or not child.get("visible"):
            continue
        entry = {
            "title": child.get("title"),
            "readable_id": child.get("readable_id"),
            "description": child.get("description") or "",
            "resource_type": child.get("resource_type"),
            "topics": list(child.get("topics") or []),
        }
        if parent_title:
            entry["parent_program"] = parent_title
        courses.append(entry)
        if child.get("resource_type") == "program" and child.get("relation_type") == "PROGRAM_PROGRAMS":
            grandchildren = [c for c in child.get("children") or [] if c.get("relation_type") in PROGRAM_RELATIONS]
            courses.extend(_collect(grandchildren, depth - 1, visited, child.get("title")))
    return courses


def _duration(value: str) -> str:
    """get_duration: str(isodate.parse_duration(value)); mit-learn's ETL stores ISO 8601 durations."""
    import isodate

    try:
        return str(isodate.parse_duration(value))
    except (isodate.ISO8601Error, ValueError):
        raise ValueError(f"is not an ISO 8601 duration: {value!r}") from None
