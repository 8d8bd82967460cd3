"""The sample content written by the team, as rows of mit-learn's tables, and its loader into any
SQLAlchemy database.

`resources.json` holds the resources with their content files (a file's text inline or in `files/`)
and the fields that vary between them; `mit_learn_like.json` a few records shaped like mit-learn's
own (HTML descriptions, several runs and prices, an archived run, files without content, edX module
ids, a resource without a platform, two files under one key); `catalogue.json` the rows they point
at: platforms, offerors, the topic tree, schools and departments. Files of courses, programs and
learning paths belong to a run (`run_readable_id`); the others' belong to their resource directly,
as mit-learn's ETL attaches video transcripts and documents, or are its own (`direct`: a video's or a
document's `direct_learning_resource`, whose text mit-learn folds into the resource's).
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from embedding_pipeline.content import tables
from embedding_pipeline.content.database import analyze_sqlite

HERE = Path(__file__).parent
SAMPLE_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
RUN_TYPES = {"course", "program", "learning_path"}
TEAM_SAMPLE = "resources.json"
MIT_LEARN_LIKE = "mit_learn_like.json"
EVERY_SAMPLE = (TEAM_SAMPLE, MIT_LEARN_LIKE)
RESOURCE_FIELDS = [
    "readable_id", "resource_type", "title", "description", "full_description", "url", "published", "test_mode",
    "certification", "certification_type", "professional", "prices", "ocw_topics", "view_count", "next_start_date",
    "delivery", "availability", "location",
]  # fmt: skip


def checksum(content: str) -> str:
    """A file's checksum as mit-learn computes it (md5 of the content)."""
    return hashlib.md5(content.encode()).hexdigest()


class _Rows(dict):
    """Rows by table, with ids handed out in order."""

    def add(self, table: sa.Table, **row) -> int:
        rows = self.setdefault(table.name, [])
        if "id" in table.c and "id" not in row:
            row["id"] = len(rows) + 1
        rows.append(row)
        return row.get("id")


def _catalogue(rows: _Rows, when: datetime) -> dict[str, dict]:
    """The rows resources point at; returns name → id of topics and of content tags."""
    catalogue = json.loads((HERE / "catalogue.json").read_text())
    stamps = {"created_on": when, "updated_on": when}
    for code, name in catalogue["platforms"].items():
        rows.add(tables.platform, code=code, name=name, **stamps)
    for code, name in catalogue["offerors"].items():
        rows.add(tables.offeror, code=code, name=name, **stamps)
    for school_id, name in catalogue["schools"].items():
        rows.add(tables.school, id=int(school_id), name=name, **stamps)
    for department_id, (name, school_id) in catalogue["departments"].items():
        rows.add(tables.department, department_id=department_id, name=name, school_id=int(school_id), **stamps)
    topics: dict[str, int] = {}
    for parent, children in catalogue["topics"].items():
        for name in [parent, *children]:
            if name not in topics:
                topics[name] = rows.add(tables.topic, name=name, parent_id=None, **stamps)
        for child in children:
            next(r for r in rows[tables.topic.name] if r["id"] == topics[child])["parent_id"] = topics[parent]
    return {"topics": topics, "tags": {}, "instructors": {}, "offered_by": catalogue["offered_by"]}


def _tag(rows: _Rows, names: dict[str, int], name: str, when: datetime) -> int:
    if name not in names:
        names[name] = rows.add(tables.content_tag, name=name, created_on=when, updated_on=when)
    return names[name]


def _image(rows: _Rows, image: dict | None, when: datetime) -> int | None:
    """A LearningResourceImage row ({url, alt, description}) for a resource or a run."""
    return rows.add(tables.image, **image, created_on=when, updated_on=when) if image else None


def _resource(rows: _Rows, entry: dict, number: int, known: dict, when: datetime) -> int:
    fields = {k: entry[k] for k in RESOURCE_FIELDS if k in entry}
    platform = entry.get("platform")
    resource_id = rows.add(
        tables.learning_resource, id=number, created_on=when, updated_on=when, platform_id=platform,
        offered_by_id=entry.get("offered_by", known["offered_by"].get(platform)),
        resource_category=entry["resource_type"], image_id=_image(rows, entry.get("image"), when),
        **{"published": True, **fields},
    )  # fmt: skip
    for _ in range(entry.get("view_events", 0)):
        rows.add(tables.view_event, learning_resource_id=resource_id, event_date=when, created_on=when, updated_on=when)
    for name in entry.get("topics", []):
        if name not in known["topics"]:
            known["topics"][name] = rows.add(tables.topic, name=name, parent_id=None, created_on=when, updated_on=when)
        rows.add(
            tables.resource_topics, learningresource_id=resource_id, learningresourcetopic_id=known["topics"][name]
        )
    for department_id in entry.get("departments", []):
        rows.add(
            tables.resource_departments, learningresource_id=resource_id, learningresourcedepartment_id=department_id
        )
    for name in entry.get("course_feature", []):
        tag = _tag(rows, known["tags"], name, when)
        rows.add(tables.resource_tags, learningresource_id=resource_id, learningresourcecontenttag_id=tag)
    _prices(rows, tables.resource_prices, {"learningresource_id": resource_id}, entry.get("prices", []), when)
    if entry["resource_type"] == "course":
        numbers = entry.get("course_numbers") or [entry["readable_id"].split("-", 1)[-1]]
        course_numbers = [
            {
                "value": n,
                "listing_type": "primary" if i == 0 else "cross-listed",
                "department": None,
                "sort_coursenum": n,
                "primary": i == 0,
            }
            for i, n in enumerate(numbers)
        ]
        rows.add(
            tables.course,
            learning_resource_id=resource_id,
            course_numbers=course_numbers,
            created_on=when,
            updated_on=when,
        )
    return resource_id


def _prices(rows: _Rows, link: sa.Table, owner: dict, amounts: list, when: datetime) -> None:
    """A price row for each amount, linked to its resource or run (`owner`: the link's column and id)."""
    for amount in amounts:
        price = rows.add(tables.price, amount=amount, currency="USD", created_on=when, updated_on=when)
        rows.add(link, learningresourceprice_id=price, **owner)


def _runs(rows: _Rows, entry: dict, resource_id: int, known: dict, when: datetime) -> dict[str, int]:
    """The resource's runs: those listed, and one for each run its files name; run id → row id. A run's
    prices are its resource prices too, as mit-learn's ETL makes them; its instructors are named in order."""
    listed = {run["run_id"]: run for run in entry.get("runs", [])}
    for file in entry["content_files"]:
        if file.get("run_readable_id"):
            listed.setdefault(file["run_readable_id"], {"run_id": file["run_readable_id"]})
    ids = {}
    for run_id, run in listed.items():
        fields = {k: v for k, v in run.items() if k not in ("instructors", "image")}
        ids[run_id] = rows.add(
            tables.run, learning_resource_id=resource_id, created_on=when, updated_on=when,
            image_id=_image(rows, run.get("image"), when), **{"published": True, "title": entry["title"], **fields},
        )  # fmt: skip
        _prices(rows, tables.run_prices, {"learningresourcerun_id": ids[run_id]}, run.get("prices") or [], when)
        stamps = {"created_on": when, "updated_on": when}
        for position, name in enumerate(run.get("instructors", [])):
            if name not in known["instructors"]:
                first, _, last = name.partition(" ")
                known["instructors"][name] = rows.add(
                    tables.instructor, first_name=first, last_name=last, full_name=name, **stamps
                )
            rows.add(tables.run_instructors, position=position, instructor_id=known["instructors"][name],
                     run_id=ids[run_id], **stamps)  # fmt: skip
    return ids


def _details(rows: _Rows, entry: dict, resource_id: int, when: datetime) -> None:
    """The per-type row mit-learn keeps beside a program, a learning path, a video, a podcast or an episode (its
    fields under the entry's type name: a video's `duration`, `transcript`, `caption_urls`, ...)."""
    stamps = {"learning_resource_id": resource_id, "created_on": when, "updated_on": when}
    kind, fields = entry["resource_type"], entry.get(entry["resource_type"], {})
    if kind == "program":
        rows.add(tables.program, **stamps)
    elif kind == "learning_path":
        rows.add(tables.learning_path, **stamps)
    elif kind == "podcast":
        rows.add(tables.podcast, **fields, **stamps)
    elif kind == "video":
        rows.add(tables.video, duration=entry.get("duration", ""), **fields, **stamps)
    elif kind == "podcast_episode":
        rows.add(tables.podcast_episode, duration=entry.get("duration"), **fields, **stamps)


def _children(rows: _Rows, entries: list[dict], when: datetime) -> None:
    """What relates resources to each other once every resource is in: a program's courses and programs, a learning
    path's items, a podcast's episodes, a playlist's videos ({readable_id, relation_type}, in order), and a playlist's
    channel and the resource it belongs to."""
    ids = {(r["readable_id"]): r["id"] for r in rows[tables.learning_resource.name]}
    stamps = {"created_on": when, "updated_on": when}
    for number, entry in enumerate(entries, start=1):
        for position, child in enumerate(entry.get("children", [])):
            rows.add(
                tables.relationship, position=position, relation_type=child["relation_type"], parent_id=number,
                child_id=ids[child["readable_id"]], **stamps,
            )  # fmt: skip
        playlist = entry.get("video_playlist")
        if playlist:
            channel = playlist["channel"]
            if channel["channel_id"] not in {c["channel_id"] for c in rows.get(tables.video_channel.name, [])}:
                rows.add(tables.video_channel, **channel, **stamps)
            rows.add(
                tables.video_playlist, channel_id=channel["channel_id"], learning_resource_id=number,
                parent_learning_resource_id=ids.get(playlist.get("parent")), **stamps,
            )  # fmt: skip


def _channels(rows: _Rows, channels: list[dict], topics: dict[str, int], when: datetime) -> None:
    """mit-learn's channels: a topic's, a unit's or a department's (whose URL their documents show), and those
    whose featured list is a learning path (whose items get a `featured_rank`)."""
    ids = {(r["readable_id"]): r["id"] for r in rows[tables.learning_resource.name]}
    stamps = {"created_on": when, "updated_on": when}
    for channel in channels:
        channel_id = rows.add(
            tables.channel, name=channel["name"], title=channel["title"], channel_type=channel["channel_type"],
            published=channel.get("published", True), featured_list_id=ids.get(channel.get("featured_list")), **stamps,
        )  # fmt: skip
        if "topic" in channel:
            rows.add(tables.channel_topic, channel_id=channel_id, topic_id=topics[channel["topic"]], **stamps)
        if "unit" in channel:
            rows.add(tables.channel_unit, channel_id=channel_id, unit_id=channel["unit"], **stamps)
        if "department" in channel:
            rows.add(tables.channel_department, channel_id=channel_id, department_id=channel["department"], **stamps)


def _files(rows: _Rows, entry: dict, resource_id: int, runs: dict[str, int], known: dict, when: datetime) -> None:
    for file in entry["content_files"]:
        content = file["content"] if "content" in file else (HERE / "files" / file["file"]).read_text()
        run_id = runs.get(file.get("run_readable_id") or "")
        owner = "direct_learning_resource_id" if file.get("direct") else "learning_resource_id"
        fields = {
            k: v for k, v in file.items() if k not in ("file", "run_readable_id", "content_feature_type", "direct")
        }
        file_id = rows.add(
            tables.content_file, run_id=run_id, **({} if run_id else {owner: resource_id}),
            url=f"{entry['url']}/{file['key']}", created_on=when, updated_on=when,
            **{"published": True, **fields, "content": content, "checksum": checksum(content)},
        )  # fmt: skip
        for name in file.get("content_feature_type", []):
            tag = _tag(rows, known["tags"], name, when)
            rows.add(tables.content_file_tags, contentfile_id=file_id, learningresourcecontenttag_id=tag)


def sample_rows(samples: tuple[str, ...] = (TEAM_SAMPLE,)) -> dict[str, list[dict]]:
    """Table name → rows of the samples, ids and checksums included."""
    rows = _Rows()
    known = _catalogue(rows, SAMPLE_EPOCH)
    entries = [entry for sample in samples for entry in json.loads((HERE / sample).read_text())]
    for number, entry in enumerate(entries, start=1):
        when = SAMPLE_EPOCH + timedelta(days=number)
        resource_id = _resource(rows, entry, number, known, when)
        runs = _runs(rows, entry, resource_id, known, when) if entry["resource_type"] in RUN_TYPES else {}
        _details(rows, entry, resource_id, when)
        _files(rows, entry, resource_id, runs, known, when)
    _children(rows, entries, SAMPLE_EPOCH)
    _channels(
        rows, json.loads((HERE / "catalogue.json").read_text()).get("channels", []), known["topics"], SAMPLE_EPOCH
    )
    return rows


def load_sample_data(
    database_url: str, replace: bool = False, samples: tuple[str, ...] = (TEAM_SAMPLE,)
) -> tuple[int, int]:
    """Create mit-learn's tables where they are missing and load the samples; a database that already holds
    learning resources is left alone unless `replace`. Returns the (resources, content files) it then holds."""
    engine = sa.create_engine(database_url)
    try:
        tables.metadata.create_all(engine)
        with engine.begin() as conn:
            has_rows = _count(conn, tables.learning_resource)
            if has_rows and replace:
                for table in reversed(tables.metadata.sorted_tables):
                    conn.execute(table.delete())
            if not has_rows or replace:
                rows = sample_rows(samples)
                for table in tables.metadata.sorted_tables:
                    if rows.get(table.name):
                        conn.execute(table.insert(), [complete(table, row) for row in rows[table.name]])
                _restart_identities(conn, rows)
            loaded = _count(conn, tables.learning_resource), _count(conn, tables.content_file)
        if not has_rows or replace:
            analyze_sqlite(engine)
        return loaded
    finally:
        engine.dispose()


def complete(table: sa.Table, row: dict) -> dict:
    """The row with every column of the table (rows of one insert name the same ones): its Python-side
    defaults, or NULL; dates given as ISO text are read."""
    complete = {}
    for column in table.columns:
        if column.name in row:
            value = row[column.name]
            if isinstance(value, str) and isinstance(column.type, sa.DateTime):
                value = datetime.fromisoformat(value)
        elif column.default is not None:
            value = column.default.arg(None) if callable(column.default.arg) else column.default.arg
        else:
            value = None
        complete[column.name] = value
    return complete


def _restart_identities(conn: sa.Connection, rows: dict) -> None:
    """PostgreSQL's identity columns continue after the ids the sample gave, so rows added later get new ones."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables.metadata.sorted_tables:
        if "id" in table.c and rows.get(table.name) and table.c.id.primary_key:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), (SELECT MAX(id) FROM {table.name}))"
            )


def _count(conn: sa.Connection, table: sa.Table) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
