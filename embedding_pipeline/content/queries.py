"""The SQL that reads mit-learn's tables (`tables.py`): the default queries as SQLAlchemy selects, what a query
of an operator's own (SQL text) must return (`RESOURCE_COLUMNS`, `CONTENT_FILE_COLUMNS`, ...).

What SQLite and PostgreSQL write differently (JSON built in SQL, timestamps in milliseconds) is in `dialect.py`.
Lists are aggregated from ordered subqueries, so that a row reads the same every time (its fingerprint must not
move with the database's plan). Every subquery sees the tables of the queries around it, as SQL's scopes do.
"""

from dataclasses import dataclass
from functools import reduce

import sqlalchemy as sa

from embedding_pipeline.content import tables as t
from embedding_pipeline.content.dialect import as_json, epoch_ms, json_list, json_object
from embedding_pipeline.mit_learn import RESOURCE_TYPES as EMBEDDED_TYPES

ZERO, ONE = sa.literal_column("0"), sa.literal_column("1")
RESOURCE_TYPE = sa.bindparam("resource_type")  # every reader's query is asked for one type
CHANNEL_BASE = "channel_base"  # mit-learn's channel URLs start with MITOL_APP_BASE_URL's "/c/"
TOPICS_PARTITION = "topics"


def _quoted(text: str) -> sa.ColumnElement:
    """A constant of ours written into the SQL (not a parameter), as a hand-written query would have it."""
    return sa.literal_column("'" + text.replace("'", "''") + "'")


def _object(fields: dict) -> json_object:
    return json_object(*(part for key, value in fields.items() for part in (_quoted(key), value)))


def _columns(table: sa.FromClause, *names: str) -> dict:
    return {name: table.c[name] for name in names}


def _concat(*parts) -> sa.ColumnElement:
    return reduce(lambda left, right: left.op("||")(right), parts)


def _true_count(condition) -> sa.ColumnElement:
    return sa.func.sum(sa.case((condition, ONE), else_=ZERO))


def _scalar(select: sa.Select) -> sa.ScalarSelect:
    return select.correlate_except(None).scalar_subquery()


def _json_list(value, from_, *where, order_by, items_are_json=True) -> sa.ScalarSelect:
    """`value` of each row of `from_` (where `where`) in `order_by`'s order, as a JSON list."""
    rows = sa.select(value.label("v")).select_from(from_).where(*where).order_by(*order_by)
    rows = rows.correlate_except(None).subquery()
    return _scalar(sa.select(json_list(as_json(rows.c.v) if items_are_json else rows.c.v)))


def _names(link: sa.Table, owner_column: str, owner_id, target_column: str, names: sa.Table) -> sa.ScalarSelect:
    """The names of what a many-to-many link table ties an owner to, by name (a JSON list of strings)."""
    x, n = link.alias("x"), names.alias("t")
    return _json_list(
        n.c.name,
        x.join(n, n.c.id == x.c[target_column]),
        x.c[owner_column] == owner_id,
        order_by=[n.c.name],
        items_are_json=False,
    )


def _channel_url(detail: sa.Table, column: str, value) -> sa.ScalarSelect:
    """The URL of the first published channel of a topic, a unit (offeror) or a department (mit-learn's
    `annotate_channel_url`)."""
    cd, ch = detail.alias("cd"), t.channel.alias("ch")
    base = sa.cast(sa.bindparam(CHANNEL_BASE, type_=sa.String), sa.String)
    url = sa.case((ch.c.published, _concat(base, ch.c.channel_type, _quoted("/"), ch.c.name)))
    return _scalar(
        sa.select(url)
        .select_from(cd.join(ch, ch.c.id == cd.c.channel_id))
        .where(cd.c[column] == value)
        .order_by(ch.c.id)
        .limit(ONE)
        .offset(ZERO)  # written into the SQL: SQLite's dialect would bind an OFFSET 0 otherwise
    )


def _published_children(parent_id, relation: str) -> sa.ScalarSelect:
    """How many of a resource's children of one relation type are published (the serializers' counts)."""
    x, c = t.relationship.alias("x"), t.learning_resource.alias("c")
    return _scalar(
        sa.select(sa.func.count())
        .select_from(x.join(c, c.c.id == x.c.child_id))
        .where(x.c.parent_id == parent_id, x.c.relation_type == _quoted(relation), c.c.published)
    )


def _image(image_id) -> sa.ScalarSelect:
    i = t.image.alias("i")
    return _scalar(sa.select(_object(_columns(i, "id", "url", "description", "alt"))).where(i.c.id == image_id))


def _prices(link: sa.Table, owner_column: str, owner_id, order_by) -> sa.ScalarSelect:
    x, pr = link.alias("x"), t.price.alias("pr")
    return _json_list(
        _object({"amount": pr.c.amount, "currency": pr.c.currency}),
        x.join(pr, pr.c.id == x.c.learningresourceprice_id),
        x.c[owner_column] == owner_id,
        order_by=[pr.c[name] for name in order_by],
    )


def _topic_names(resource_id) -> sa.ScalarSelect:
    return _names(t.resource_topics, "learningresource_id", resource_id, "learningresourcetopic_id", t.topic)


def _tag_names(link: sa.Table, owner_column: str, owner_id) -> sa.ScalarSelect:
    return _names(link, owner_column, owner_id, "learningresourcecontenttag_id", t.content_tag)


# The resources: a row per published (or test-mode) resource of the type, with everything its document shows.
lr = t.learning_resource.alias("lr")
_platform, _offeror = t.platform.alias("p"), t.offeror.alias("o")
_PROGRAM_RELATIONS = [_quoted("PROGRAM_COURSES"), _quoted("PROGRAM_PROGRAMS")]


def _topics() -> sa.ScalarSelect:
    x, tp = t.resource_topics.alias("x"), t.topic.alias("t")
    topic = {"id": tp.c.id, "name": tp.c.name, "icon": tp.c.icon, "parent": tp.c.parent_id}
    channel_url = _channel_url(t.channel_topic, "topic_id", tp.c.id)
    return _json_list(
        _object({**topic, "channel_url": channel_url}),
        x.join(tp, tp.c.id == x.c.learningresourcetopic_id),
        x.c.learningresource_id == lr.c.id,
        order_by=[tp.c.name],
    )


def _departments() -> sa.ScalarSelect:
    x, d, sc = t.resource_departments.alias("x"), t.department.alias("d"), t.school.alias("sc")
    department = {"department_id": d.c.department_id, "name": d.c.name, "school_id": sc.c.id}
    school = {"school_name": sc.c.name, "school_url": sc.c.url}
    channel_url = _channel_url(t.channel_department, "department_id", d.c.department_id)
    return _json_list(
        _object({**department, **school, "channel_url": channel_url}),
        x.join(d, d.c.department_id == x.c.learningresourcedepartment_id).outerjoin(sc, sc.c.id == d.c.school_id),
        x.c.learningresource_id == lr.c.id,
        order_by=[d.c.department_id],
    )


def _runs() -> sa.ScalarSelect:
    r = t.run.alias("r")
    ri, i = t.run_instructors.alias("ri"), t.instructor.alias("i")
    instructors = _json_list(
        _object(_columns(i, "id", "first_name", "last_name", "full_name")),
        ri.join(i, i.c.id == ri.c.instructor_id),
        ri.c.run_id == r.c.id,
        order_by=[ri.c.position, i.c.last_name, i.c.first_name],
    )
    names = ("id", "run_id", "title", "published", "level", "delivery", "prices", "semester", "year", "start_date",
             "end_date", "enrollment_start", "enrollment_end", "url", "is_variant", "updated_on", "description",
             "full_description", "last_modified", "languages", "slug", "checksum", "format", "pace", "availability",
             "location", "duration", "min_weeks", "max_weeks", "min_weekly_hours", "max_weekly_hours",
             "time_commitment")  # fmt: skip
    arrays = {"level", "delivery", "prices", "languages", "format", "pace"}
    fields = {name: as_json(r.c[name]) if name in arrays else r.c[name] for name in names}
    fields |= {
        "image": as_json(_image(r.c.image_id)),
        "instructors": as_json(instructors),
        "resource_prices": as_json(_prices(t.run_prices, "learningresourcerun_id", r.c.id, ("amount", "id"))),
    }
    return _json_list(_object(fields), r, r.c.learning_resource_id == lr.c.id, order_by=[r.c.id])


def _child_fields(child, relation) -> dict:
    """A program's child (or grandchild) as its course information lists it."""
    return {
        "child": child.c.id,
        "relation_type": relation.c.relation_type,
        **_columns(child, "title", "readable_id", "description", "resource_type"),
        "visible": sa.or_(child.c.published, child.c.test_mode),
        "topics": as_json(_topic_names(child.c.id)),
    }


def _program_children() -> sa.ScalarSelect:
    """A program's courses and sub-programs as its course information lists them (two levels, in order)."""
    x, c = t.relationship.alias("x"), t.learning_resource.alias("c")
    y, g = t.relationship.alias("y"), t.learning_resource.alias("g")
    grandchildren = _json_list(
        _object(_child_fields(g, y)),
        y.join(g, g.c.id == y.c.child_id),
        y.c.parent_id == c.c.id,
        y.c.relation_type.in_(_PROGRAM_RELATIONS),
        order_by=[y.c.position, y.c.id],
    )
    return _json_list(
        _object({**_child_fields(c, x), "children": as_json(grandchildren)}),
        x.join(c, c.c.id == x.c.child_id),
        lr.c.resource_type == _quoted("program"),
        x.c.parent_id == lr.c.id,
        x.c.relation_type.in_(_PROGRAM_RELATIONS),
        order_by=[x.c.position, x.c.id],
    )


def _children() -> sa.ScalarSelect:
    """LearningResourceRelationship.objects.for_serialization(): a learning path's unpublished items are left
    out."""
    x, c = t.relationship.alias("x"), t.learning_resource.alias("c")
    fields = {"child": x.c.child_id, "position": x.c.position, "relation_type": x.c.relation_type}
    return _json_list(
        _object({**fields, "title": c.c.title, "readable_id": c.c.readable_id}),
        x.join(c, c.c.id == x.c.child_id),
        x.c.parent_id == lr.c.id,
        sa.not_(sa.and_(x.c.relation_type == _quoted("LEARNING_PATH_ITEMS"), sa.not_(c.c.published))),
        order_by=[x.c.position, x.c.id],
    )


def _parents() -> sa.ScalarSelect:
    """The playlists a video is in, the podcasts an episode is of."""
    x, p = t.relationship.alias("x"), t.learning_resource.alias("p")
    fields = {"id": x.c.parent_id, "relation_type": x.c.relation_type, "title": p.c.title}
    return _json_list(
        _object({**fields, "readable_id": p.c.readable_id}),
        x.join(p, p.c.id == x.c.parent_id),
        x.c.child_id == lr.c.id,
        x.c.relation_type.in_([_quoted("PLAYLIST_VIDEOS"), _quoted("PODCAST_EPISODES")]),
        order_by=[x.c.position, x.c.id],
    )


def _featured_position() -> sa.Case:
    """A resource's place in a channel's featured list (mit-learn adds a random fraction: `featured_rank`)."""
    x, ch = t.relationship.alias("x"), t.channel.alias("ch")
    featured = (
        sa.select(ONE)
        .select_from(x.join(ch, ch.c.featured_list_id == x.c.parent_id))
        .where(x.c.child_id == lr.c.id, x.c.relation_type == _quoted("LEARNING_PATH_ITEMS"))
        .correlate_except(None)
        .exists()
    )
    y, lists = t.relationship.alias("x"), t.channel
    position = _scalar(
        sa.select(sa.func.min(y.c.position)).where(
            y.c.child_id == lr.c.id, y.c.parent_id.in_(sa.select(lists.c.featured_list_id))
        )
    )
    return sa.case((featured, position))


def _view_events() -> sa.Case:
    """The views of a resource whose `view_count` is not set."""
    e = t.view_event.alias("e")
    count = _scalar(sa.select(sa.func.count()).select_from(e).where(e.c.learning_resource_id == lr.c.id))
    return sa.case((lr.c.view_count.is_(None), count))


def _by_type(values: dict) -> sa.Case:
    """A column whose value comes from the per-type table of the resource's type (NULL for other types)."""
    return sa.case(*((_quoted(kind), value) for kind, value in values.items()), value=lr.c.resource_type)


def _details() -> dict[str, sa.ScalarSelect]:
    """The per-type object of a resource's document (ProgramSerializer's counts come as columns of their own): the
    row beside it and the counts its serializer annotates."""
    podcast, episode, video, path, playlist = (
        table.alias("d") for table in (t.podcast, t.podcast_episode, t.video, t.learning_path, t.video_playlist)
    )
    ch, p, pc = t.video_channel.alias("ch"), t.learning_resource.alias("p"), t.course.alias("pc")

    def of(d: sa.FromClause, fields: dict, from_: sa.FromClause | None = None) -> sa.ScalarSelect:
        select = sa.select(_object(fields)).select_from(d if from_ is None else from_)
        return _scalar(select.where(d.c.learning_resource_id == lr.c.id))

    return {
        "podcast": of(podcast, {
            **_columns(podcast, "id", "apple_podcasts_url", "google_podcasts_url", "rss_url"),
            "episode_count": _published_children(lr.c.id, "PODCAST_EPISODES"),
        }),
        "podcast_episode": of(episode, _columns(episode, "id", "audio_url", "episode_link", "duration", "rss")),
        "video": of(video, {
            **_columns(video, "id", "duration"), "caption_urls": as_json(video.c.caption_urls),
            **_columns(video, "cover_image_url", "streaming_url"),
        }),
        "video_playlist": of(playlist, {
            "id": playlist.c.id,
            "channel": _object(_columns(ch, "channel_id", "title")),
            "video_count": _published_children(lr.c.id, "PLAYLIST_VIDEOS"),
            "parent_learning_resource_id": playlist.c.parent_learning_resource_id,
            "parent_title": p.c.title,
            "parent_url": p.c.url,
            "parent_is_course": pc.c.learning_resource_id.is_not(None),
            "parent_course_numbers": as_json(pc.c.course_numbers),
        }, playlist.join(ch, ch.c.channel_id == playlist.c.channel_id)
            .outerjoin(p, p.c.id == playlist.c.parent_learning_resource_id)
            .outerjoin(pc, pc.c.learning_resource_id == p.c.id)),
        "learning_path": of(path, {"id": path.c.id, "item_count": _published_children(lr.c.id, "LEARNING_PATH_ITEMS")}),
    }  # fmt: skip


# Transcripts, which can be long, are read for the rows a run writes (`transcript`) and listed by a stamp
# (`transcript_stamp`): their length and date.
_TRANSCRIPTS = {"video": t.video, "podcast_episode": t.podcast_episode}


def _transcript(table: sa.Table, stamp: bool) -> sa.ScalarSelect:
    d = table.alias("d")
    value = _concat(sa.func.length(d.c.transcript), _quoted(":"), epoch_ms(d.c.updated_on)) if stamp else d.c.transcript
    return _scalar(sa.select(value).where(d.c.learning_resource_id == lr.c.id))


def _direct_files(stamp: bool) -> sa.Case:
    """A video's or a document's own files (`direct_learning_resource`), published or not, as its serializer
    lists them (VideoResourceSerializer.get_content_files): their text is folded into the resource's, and
    their fields (but the large ones) are its document's `content_files`. A run lists their stamp: those
    fields, the text's date and length."""
    cf = t.content_file.alias("cf")
    names = ("id", "uid", "key", "title", "description", "image_src", "url", "file_type", "file_extension")
    names += ("content_type", "content_title", "content_author", "content_language", "checksum", "source_path")
    names += ("edx_module_id", "youtube_id")
    fields = _columns(cf, *names)
    fields["content_feature_type"] = as_json(_tag_names(t.content_file_tags, "contentfile_id", cf.c.id))
    if stamp:
        fields |= {"updated_on": epoch_ms(cf.c.updated_on), "size": sa.func.length(cf.c.content)}
    else:
        fields |= {"content": cf.c.content, "summary": cf.c.summary, "flashcards": as_json(cf.c.flashcards)}
    files = _json_list(_object(fields), cf, cf.c.direct_learning_resource_id == lr.c.id, order_by=[cf.c.id])
    return sa.case((lr.c.resource_type.in_([_quoted("video"), _quoted("document")]), files))


def _media_duration() -> sa.ColumnElement:
    v, e = t.video.alias("v"), t.podcast_episode.alias("e")
    return sa.func.coalesce(
        _scalar(sa.select(v.c.duration).where(v.c.learning_resource_id == lr.c.id)),
        _scalar(sa.select(e.c.duration).where(e.c.learning_resource_id == lr.c.id)),
    )


def _course_numbers() -> sa.ScalarSelect:
    c = t.course.alias("c")
    return _scalar(sa.select(c.c.course_numbers).where(c.c.learning_resource_id == lr.c.id))


def _shown(resource: sa.FromClause) -> sa.ColumnElement:
    """What mit-learn embeds: published resources, and test-mode ones."""
    return sa.and_(resource.c.resource_type == RESOURCE_TYPE, sa.or_(resource.c.published, resource.c.test_mode))


_OWN_COLUMNS = (
    "id", "readable_id", "resource_type", "title", "description", "full_description", "url", "published",
    "test_mode", "resource_category", "certification", "certification_type", "professional", "ocw_topics",
    "delivery", "prices", "languages", "next_start_date", "view_count", "created_on", "updated_on",
    "last_modified", "format", "pace", "availability", "location", "duration", "min_weeks", "max_weeks",
    "min_weekly_hours", "max_weekly_hours", "time_commitment", "license_cc", "continuing_ed_credits",
    "require_summaries", "completeness",
)  # fmt: skip
DEFAULT_RESOURCES_QUERY = (
    sa.select(
        *(lr.c[name] for name in _OWN_COLUMNS),
        lr.c.platform_id.label("platform_code"),
        _platform.c.name.label("platform_name"),
        lr.c.offered_by_id.label("offered_by_code"),
        _offeror.c.name.label("offered_by_name"),
        _offeror.c.display_facet.label("offered_by_display_facet"),
        _channel_url(t.channel_unit, "unit_id", _offeror.c.code).label("offered_by_channel_url"),
        _topics().label("topics"),
        _departments().label("departments"),
        _tag_names(t.resource_tags, "learningresource_id", lr.c.id).label("course_feature"),
        _prices(t.resource_prices, "learningresource_id", lr.c.id, ("currency", "amount")).label("resource_prices"),
        _runs().label("runs"),
        _course_numbers().label("course_numbers"),
        _media_duration().label("media_duration"),
        _published_children(lr.c.id, "PROGRAM_COURSES").label("course_count"),
        _published_children(lr.c.id, "PROGRAM_PROGRAMS").label("program_count"),
        _program_children().label("program_children"),
        _image(lr.c.image_id).label("image"),
        _children().label("children"),
        sa.case((lr.c.resource_type.in_([_quoted("video"), _quoted("podcast_episode")]), _parents())).label("parents"),
        _featured_position().label("featured_position"),
        _view_events().label("view_events"),
        _by_type(_details()).label("detail"),
        _by_type({kind: _transcript(table, stamp=True) for kind, table in _TRANSCRIPTS.items()}).label(
            "transcript_stamp"
        ),
        _by_type({kind: _transcript(table, stamp=False) for kind, table in _TRANSCRIPTS.items()}).label("transcript"),
        _direct_files(stamp=False).label("direct_content_files"),
        _direct_files(stamp=True).label("direct_content_stamp"),
    )
    .select_from(
        lr.outerjoin(_platform, _platform.c.code == lr.c.platform_id).outerjoin(
            _offeror, _offeror.c.code == lr.c.offered_by_id
        )
    )
    .where(_shown(lr))
    .order_by(lr.c.id)
)


def _files_with_resources():
    """Content files joined to their resource: through their run, or directly (a run-less file)."""
    cf, r, resource = t.content_file.alias("cf"), t.run.alias("r"), t.learning_resource.alias("lr")
    joined = cf.outerjoin(r, r.c.id == cf.c.run_id).join(
        resource, resource.c.id == sa.func.coalesce(r.c.learning_resource_id, cf.c.learning_resource_id)
    )
    return cf, r, resource, joined


def _content_files_query() -> sa.Select:
    """The files mit-learn embeds: published, with content, of a run that is published (or of the resource
    itself: a run-less file), of a resource embedded here. A file only `direct_learning_resource` names
    is shown with its resource, never embedded (vector_search.tasks, embeddings_healthcheck)."""
    cf, r, resource, joined = _files_with_resources()
    own = ("key", "title", "description", "content", "checksum", "file_type", "file_extension", "url")
    own += ("edx_module_id", "content_type", "source_path", "summary", "flashcards", "published")
    return (
        sa.select(
            cf.c.id,
            resource.c.id.label("resource_id"),
            cf.c.run_id,
            r.c.run_id.label("run_readable_id"),
            r.c.title.label("run_title"),
            r.c.updated_on.label("run_updated_on"),
            *(cf.c[name] for name in own),
            cf.c.created_on,
            cf.c.updated_on,
            _tag_names(t.content_file_tags, "contentfile_id", cf.c.id).label("content_feature_type"),
        )
        .select_from(joined)
        .where(
            _shown(resource),
            cf.c.published,
            sa.or_(r.c.id.is_(None), r.c.published),
            cf.c.content.is_not(None),
            cf.c.content != _quoted(""),
        )
        .order_by(cf.c.id)
    )


DEFAULT_CONTENT_FILES_QUERY = _content_files_query()

# The topics mit-learn embeds into `{base}.topics` (vector_search.utils.embed_topics): every topic, for the
# topics partition alone (`:resource_type` is "topics"; a resource type's reader lists none).
_topic = t.topic.alias("t")
DEFAULT_TOPICS_QUERY = (
    sa.select(_topic.c.id, _topic.c.topic_uuid, _topic.c.name, _topic.c.updated_on, ONE.label("published"))
    .where(RESOURCE_TYPE == _quoted(TOPICS_PARTITION))
    .order_by(_topic.c.id)
)

# What the sensor polls. One cheap row per tick: counts, id sums and the sum of every row's
# `updated_on` of each table a point is made from; only when it moves, one row per resource type and
# table. Django moves a row's `updated_on` on every save (renaming a platform, a topic or an offeror
# moves that row's, not its resources'), and a many-to-many link has no date, only an id: so each
# table counts for itself, and a link table by its count and the sum of its ids. Dates are summed over
# every row, so an edit is seen whatever date it carries (a clock behind, a repeated date), and a row
# dated in the future hides nothing.
_DATED = [t.learning_resource, t.run, t.content_file, t.platform, t.offeror, t.topic, t.department, t.school,
          t.content_tag, t.price, t.course, t.instructor, t.run_instructors, t.relationship, t.video,
          t.podcast_episode, t.image, t.podcast, t.learning_path, t.video_channel, t.video_playlist, t.channel,
          t.channel_topic, t.channel_unit, t.channel_department]  # fmt: skip
_LINKS = [t.resource_topics, t.resource_departments, t.resource_tags, t.resource_prices, t.content_file_tags,
          t.run_prices]  # fmt: skip


def _count_and(table: sa.Table, summed, where=()) -> sa.ScalarSelect:
    """`count:sum` of a table's rows."""
    return (
        sa.select(_concat(sa.func.count(), _quoted(":"), sa.func.coalesce(sa.func.sum(summed), ZERO)))
        .select_from(table)
        .where(*where)
        .scalar_subquery()
    )


def _changes_query() -> sa.Select:
    resources, runs, files = t.learning_resource, t.run, t.content_file
    e, viewed = t.view_event.alias("e"), t.learning_resource.alias("lr")
    return sa.select(
        *(_count_and(table, epoch_ms(table.c.updated_on)).label(table.name) for table in _DATED),
        *(_count_and(table, table.c.id).label(table.name) for table in _LINKS),
        # view counts are saved without moving `updated_on` (bulk_update); view events count where no count is set
        sa.select(
            _concat(
                _true_count(resources.c.published),
                _quoted(":"),
                _true_count(resources.c.test_mode),
                _quoted(":"),
                sa.func.coalesce(sa.func.sum(resources.c.view_count), ZERO),
            )
        )
        .scalar_subquery()
        .label("published_resources"),
        _count_and(
            e.join(viewed, viewed.c.id == e.c.learning_resource_id), e.c.id, [viewed.c.view_count.is_(None)]
        ).label("uncounted_views"),
        # a list reordered by a bulk update (QuerySet.update) moves no `updated_on`
        sa.select(sa.func.coalesce(sa.func.sum(t.relationship.c.position), ZERO)).scalar_subquery().label("positions"),
        sa.select(_true_count(runs.c.published)).scalar_subquery().label("published_runs"),
        sa.select(_true_count(files.c.published)).scalar_subquery().label("published_files"),
    )


DEFAULT_CHANGES_QUERY = _changes_query()


# The fingerprints, per resource type and part (its resources, their runs, files, links and the rows those link
# to): a count and four sums (ids, dates, and publication or hashed titles where they matter). A change to a
# topic, platform, offeror, department, tag or price moves the sums of the types whose resources use it.
_COUNT, _SUM = sa.func.count(), sa.func.sum


def _dates(*columns) -> sa.ColumnElement:
    return _SUM(reduce(lambda left, right: left + right, (epoch_ms(column) for column in columns)))


def _titles(resource: sa.FromClause) -> sa.ColumnElement:
    """Titles and readable ids, hashed: a child saved for another reason moves nothing."""
    return _SUM(sa.func.hashtext(_concat(resource.c.title, _quoted("|"), resource.c.readable_id)))


def _part(name: str, sums: list, from_=lr, *where, of=lr) -> sa.Select:
    sums = [*sums, *[ZERO] * (5 - len(sums))]
    select = sa.select(of.c.resource_type, _quoted(name).label("part"), *sums).select_from(from_).where(*where)
    return select.group_by(of.c.resource_type)


def _own_parts() -> list[sa.Select]:
    """A resource's own row, its runs and what it or they name: images, platform, offeror, prices, ..."""
    r, i, course, e = t.run.alias("r"), t.image.alias("i"), t.course.alias("c"), t.view_event.alias("e")
    ri, instructor = t.run_instructors.alias("ri"), t.instructor.alias("i")
    run_price, price = t.run_prices.alias("x"), t.price.alias("pr")
    platform, offeror = t.platform.alias("p"), t.offeror.alias("o")
    runs = lr.join(r, r.c.learning_resource_id == lr.c.id)
    # the per-type rows (a duration, a transcript, a podcast's links, a playlist's channel and parent resource)
    details = sa.union_all(
        *(
            sa.select(table.c.id, table.c.learning_resource_id, table.c.updated_on)
            for table in (t.video, t.podcast_episode, t.podcast, t.learning_path, t.video_playlist)
        )
    ).subquery("m")
    return [
        _part("resources", [_COUNT, _SUM(lr.c.id), _dates(lr.c.updated_on), _true_count(lr.c.published),
                            _true_count(lr.c.test_mode)]),
        _part("runs", [_COUNT, _SUM(r.c.id), _dates(r.c.updated_on), _true_count(r.c.published)], runs),
        _part("platforms", [sa.func.count(platform.c.code), ZERO, _dates(platform.c.updated_on)],
              lr.join(platform, platform.c.code == lr.c.platform_id)),
        _part("offerors", [sa.func.count(offeror.c.code), ZERO, _dates(offeror.c.updated_on)],
              lr.join(offeror, offeror.c.code == lr.c.offered_by_id)),
        _part("course numbers", [_COUNT, ZERO, _dates(course.c.updated_on)],
              lr.join(course, course.c.learning_resource_id == lr.c.id)),
        _part("run instructors", [_COUNT, _SUM(ri.c.id), _dates(ri.c.updated_on, instructor.c.updated_on)],
              runs.join(ri, ri.c.run_id == r.c.id).join(instructor, instructor.c.id == ri.c.instructor_id)),
        _part("run prices", [_COUNT, _SUM(run_price.c.id), _dates(price.c.updated_on)],
              runs.join(run_price, run_price.c.learningresourcerun_id == r.c.id)
              .join(price, price.c.id == run_price.c.learningresourceprice_id)),
        _part("details", [_COUNT, _SUM(details.c.id), _dates(details.c.updated_on)],
              lr.join(details, details.c.learning_resource_id == lr.c.id)),
        _part("images", [_COUNT, _SUM(i.c.id), _dates(i.c.updated_on)], lr.join(i, i.c.id == lr.c.image_id)),
        _part("run images", [_COUNT, _SUM(i.c.id), _dates(i.c.updated_on)], runs.join(i, i.c.id == r.c.image_id)),
        # views: the count mit-learn saves without moving `updated_on`, or the view events where it saved none
        _part("views", [_COUNT, _SUM(sa.func.coalesce(lr.c.view_count, ZERO))]),
        _part("view events", [_COUNT, _SUM(e.c.id)], lr.join(e, e.c.learning_resource_id == lr.c.id),
              lr.c.view_count.is_(None)),
    ]  # fmt: skip


def _file_parts() -> list[sa.Select]:
    """A resource's content files (through its runs, or its own) and their tags."""
    cf, x, tag = t.content_file.alias("cf"), t.content_file_tags.alias("x"), t.content_tag.alias("t")
    file, _, file_resource, of_files = _files_with_resources()
    own_files = lr.join(cf, cf.c.direct_learning_resource_id == lr.c.id)
    return [
        _part("files", [_COUNT, _SUM(file.c.id), _dates(file.c.updated_on), _true_count(file.c.published)],
              of_files, of=file_resource),
        _part("own files", [_COUNT, _SUM(cf.c.id), _dates(cf.c.updated_on), _true_count(cf.c.published)],
              own_files),
        _part("own file tags", [_COUNT, _SUM(x.c.id), _dates(tag.c.updated_on)],
              own_files.join(x, x.c.contentfile_id == cf.c.id).join(tag, tag.c.id == x.c.learningresourcecontenttag_id)),
        _part("file tags", [_COUNT, _SUM(x.c.id), _dates(tag.c.updated_on)],
              of_files.join(x, x.c.contentfile_id == file.c.id).join(tag, tag.c.id == x.c.learningresourcecontenttag_id),
              of=file_resource),
    ]  # fmt: skip


def _relation_parts() -> list[sa.Select]:
    """What a document shows of other resources: a list's children, a video's playlists and an episode's podcasts
    (titles, order, publication), a channel's featured list, a playlist's channel and parent."""
    x, c, p, ch = t.relationship.alias("x"), t.learning_resource.alias("c"), t.learning_resource.alias("p"), t.channel
    playlist, channel, parent_course = t.video_playlist.alias("d"), t.video_channel.alias("ch"), t.course.alias("pc")
    parent_title = _concat(p.c.title, _quoted("|"), sa.func.coalesce(p.c.url, _quoted("")))
    return [
        _part("children", [_COUNT, _SUM(x.c.id + x.c.position), _dates(x.c.updated_on), _titles(c),
                           _true_count(c.c.published)],
              lr.join(x, x.c.parent_id == lr.c.id).join(c, c.c.id == x.c.child_id)),
        _part("parents", [_COUNT, _SUM(x.c.id + x.c.position), _dates(x.c.updated_on), _titles(p)],
              lr.join(x, x.c.child_id == lr.c.id).join(p, p.c.id == x.c.parent_id),
              lr.c.resource_type.in_([_quoted("video"), _quoted("podcast_episode")])),
        _part("featured in", [_COUNT, _SUM(ch.c.id + x.c.id + x.c.position), _dates(ch.c.updated_on)],
              lr.join(x, x.c.child_id == lr.c.id).join(ch, ch.c.featured_list_id == x.c.parent_id)),
        _part("playlist channels",
              [_COUNT, ZERO,
               _SUM(epoch_ms(channel.c.updated_on) + sa.func.coalesce(epoch_ms(parent_course.c.updated_on), ZERO)),
               _SUM(sa.func.coalesce(sa.func.hashtext(parent_title), ZERO))],
              lr.join(playlist, playlist.c.learning_resource_id == lr.c.id)
              .join(channel, channel.c.channel_id == playlist.c.channel_id)
              .outerjoin(p, p.c.id == playlist.c.parent_learning_resource_id)
              .outerjoin(parent_course, parent_course.c.learning_resource_id == p.c.id)),
    ]  # fmt: skip


def _program_parts() -> list[sa.Select]:
    """A program's course information lists its children and theirs: their rows, topics and order."""
    x, y, c = t.relationship.alias("x"), t.relationship.alias("y"), t.learning_resource.alias("c")
    topic_link, topic = t.resource_topics.alias("tx"), t.topic.alias("t")
    descendants = sa.union_all(  # (program_id, relation_id, updated_on, child_id)
        sa.select(x.c.parent_id.label("program_id"), x.c.id.label("relation_id"), x.c.updated_on, x.c.child_id),
        sa.select(x.c.parent_id, y.c.id, y.c.updated_on, y.c.child_id).select_from(
            x.join(y, y.c.parent_id == x.c.child_id)
        ),
    ).subquery("d")
    programs = lr.join(descendants, descendants.c.program_id == lr.c.id)
    only_programs = lr.c.resource_type == _quoted("program")
    return [
        _part("program children", [_COUNT, _SUM(descendants.c.relation_id + c.c.id),
                                   _dates(descendants.c.updated_on, c.c.updated_on), _true_count(c.c.published),
                                   _true_count(c.c.test_mode)],
              programs.join(c, c.c.id == descendants.c.child_id), only_programs),
        _part("program children topics", [_COUNT, _SUM(topic_link.c.id), _dates(topic.c.updated_on)],
              programs.join(topic_link, topic_link.c.learningresource_id == descendants.c.child_id)
              .join(topic, topic.c.id == topic_link.c.learningresourcetopic_id),
              only_programs),
    ]  # fmt: skip


def _link_parts() -> list[sa.Select]:
    """What a resource is tied to, and the channels whose URLs its topics, offeror and departments show."""
    parts = []
    for name, link, target, column in [
        ("topics", t.resource_topics, t.topic, "learningresourcetopic_id"),
        ("departments", t.resource_departments, t.department, "learningresourcedepartment_id"),
        ("tags", t.resource_tags, t.content_tag, "learningresourcecontenttag_id"),
        ("prices", t.resource_prices, t.price, "learningresourceprice_id"),
    ]:
        x, y = link.alias("x"), target.alias("y")
        key = next(iter(x.c[column].foreign_keys)).column.name  # the target's primary key
        linked = lr.join(x, x.c.learningresource_id == lr.c.id).join(y, y.c[key] == x.c[column])
        parts.append(_part(name, [_COUNT, _SUM(x.c.id), _dates(y.c.updated_on)], linked))
    topics, departments = t.resource_topics.alias("tx"), t.resource_departments.alias("x")
    for name, detail, joined in [
        ("topic channels", t.channel_topic, lambda cd: lr.join(topics, topics.c.learningresource_id == lr.c.id).join(
            cd, cd.c.topic_id == topics.c.learningresourcetopic_id)),
        ("unit channels", t.channel_unit, lambda cd: lr.join(cd, cd.c.unit_id == lr.c.offered_by_id)),
        ("department channels", t.channel_department, lambda cd: lr.join(
            departments, departments.c.learningresource_id == lr.c.id).join(
            cd, cd.c.department_id == departments.c.learningresourcedepartment_id)),
    ]:  # fmt: skip
        cd, ch = detail.alias("cd"), t.channel.alias("ch")
        sums = [_COUNT, _SUM(ch.c.id), _dates(ch.c.updated_on, cd.c.updated_on), _true_count(ch.c.published)]
        parts.append(_part(name, sums, joined(cd).join(ch, ch.c.id == cd.c.channel_id)))
    return parts


def _fingerprint_query() -> sa.CompoundSelect:
    topics = sa.select(
        _quoted(TOPICS_PARTITION), _quoted("topics"), _COUNT, _SUM(t.topic.c.id), _dates(t.topic.c.updated_on), ZERO,
        ZERO,
    )  # fmt: skip
    return sa.union_all(*_own_parts(), *_file_parts(), *_relation_parts(), *_program_parts(), *_link_parts(), topics)


DEFAULT_FINGERPRINT_QUERY = _fingerprint_query()


def _saved_since_query() -> sa.CompoundSelect:
    """How large a change is, for the sensor: the resources and content files of each type saved after `:since`
    (milliseconds since the epoch)."""
    since, resource = sa.bindparam("since"), t.learning_resource.alias("lr")
    file, _, file_resource, of_files = _files_with_resources()
    return sa.union_all(
        sa.select(resource.c.resource_type, sa.func.count())
        .where(epoch_ms(resource.c.updated_on) > since)
        .group_by(resource.c.resource_type),
        sa.select(file_resource.c.resource_type, sa.func.count())
        .select_from(of_files)
        .where(epoch_ms(file.c.updated_on) > since)
        .group_by(file_resource.c.resource_type),
    )


SAVED_SINCE_QUERY = _saved_since_query()
# The latest save of a resource or a content file (the next tick's `:since`).
LATEST_SAVE_QUERY = sa.select(
    *(sa.select(sa.func.max(epoch_ms(table.c.updated_on))).scalar_subquery() for table in (t.learning_resource,
                                                                                             t.content_file))
)  # fmt: skip
# Whether the database holds any learning resource a partition embeds (published or in test mode, of one of the
# eight types): one that holds none is a wrong database (or one emptied by mistake), not an empty catalogue.
ANY_RESOURCE_QUERY = sa.select(sa.func.count()).select_from(
    sa.select(ONE)
    .select_from(t.learning_resource)
    .where(
        t.learning_resource.c.resource_type.in_(EMBEDDED_TYPES),
        sa.or_(t.learning_resource.c.published, t.learning_resource.c.test_mode),
    )
    .limit(ONE)
    .offset(ZERO)
    .subquery("one")
)


def _unembeddable_queries() -> dict[str, sa.Select]:
    """What no partition embeds, in the default schema: published resources of another type (`:types` are the
    eight), and published content files with content whose resource (through their run, or directly) does not
    exist."""
    resource, cf, r = t.learning_resource, t.content_file.alias("cf"), t.run.alias("r")
    missing = t.learning_resource.alias("lr")
    return {
        "learning resources of a type that is not one of the eight": (
            sa.select(resource.c.id, resource.c.resource_type)
            .where(resource.c.published, resource.c.resource_type.not_in(sa.bindparam("types", expanding=True)))
            .order_by(resource.c.id)
        ),
        "content files whose resource does not exist": (
            sa.select(cf.c.id, sa.func.coalesce(cf.c.run_id, cf.c.learning_resource_id))
            .select_from(
                cf.outerjoin(r, r.c.id == cf.c.run_id).outerjoin(
                    missing, missing.c.id == sa.func.coalesce(r.c.learning_resource_id, cf.c.learning_resource_id)
                )
            )
            .where(
                cf.c.published,
                missing.c.id.is_(None),
                sa.or_(cf.c.run_id.is_not(None), cf.c.learning_resource_id.is_not(None)),
            )
            .order_by(cf.c.id)
        ),
    }


UNEMBEDDABLE_QUERIES = _unembeddable_queries()

# The columns a resources or content-files query returns: the first ones it must, the rest it may
# (a column it does not return is read as empty). Nested columns are JSON (or arrays, on PostgreSQL).
RESOURCE_COLUMNS = ["id", "readable_id", "resource_type", "title", "published"]
RESOURCE_OPTIONAL = [
    "platform_code", "platform_name", "offered_by_code", "offered_by_name", "offered_by_display_facet", "description",
    "full_description",
    "url", "test_mode", "resource_category", "certification", "certification_type", "professional", "ocw_topics",
    "delivery", "prices", "languages", "next_start_date", "view_count", "created_on", "updated_on",
    "last_modified", "topics", "departments", "course_feature", "resource_prices", "runs", "course_numbers",
    "format", "pace", "availability", "location", "duration", "min_weeks", "max_weeks", "min_weekly_hours",
    "max_weekly_hours", "time_commitment", "license_cc", "continuing_ed_credits", "require_summaries", "completeness",
    "media_duration", "course_count", "program_count", "program_children", "direct_content_files",
    "direct_content_stamp", "offered_by_channel_url", "image", "children", "parents", "featured_position",
    "view_events", "detail", "transcript_stamp", "transcript",
]  # fmt: skip
# What a run lists of every resource: every column but its own files' text and its transcript, for which their
# stamps stand; the rows it writes are read in full.
RESOURCE_NOT_LISTED = ["direct_content_files", "transcript"]
CONTENT_FILE_COLUMNS = ["id", "resource_id", "key", "content", "published"]
TOPIC_COLUMNS = ["id", "topic_uuid", "name", "published"]
CONTENT_FILE_OPTIONAL = [
    "run_id", "run_readable_id", "run_title", "run_updated_on", "title", "description", "checksum", "file_type",
    "file_extension", "url", "edx_module_id", "content_type", "source_path", "created_on", "updated_on",
    "content_feature_type", "summary", "flashcards",
]  # fmt: skip
# What a run lists of every record, to tell which records changed: every column of a resource (all
# of them shape its point), a content file's columns but its text and those that follow its `updated_on`.
CONTENT_FILE_LISTING = [
    "id", "resource_id", "run_id", "run_readable_id", "run_updated_on", "key", "updated_on", "checksum",
    "published", "content_feature_type",
]  # fmt: skip
# What names a record whose other columns cannot be read: it then keeps its points.
KEY_COLUMNS = {
    "resources_query": ["id", "platform_code", "readable_id", "published", "test_mode"],
    "content_files_query": ["id", "resource_id", "run_readable_id", "key", "published"],
    "topics_query": ["id", "topic_uuid", "published"],
}


@dataclass(frozen=True)
class Queries:
    """The SQL a content source runs: an operator's own SQL text, or (left empty) the default selects above."""

    resources: str | sa.Select = ""
    content_files: str | sa.Select = ""
    changes: str | sa.Select = ""
    fingerprint: str | sa.Select = ""

    def __post_init__(self):
        defaults = {
            "resources": DEFAULT_RESOURCES_QUERY,
            "content_files": DEFAULT_CONTENT_FILES_QUERY,
            "changes": DEFAULT_CHANGES_QUERY,
            "fingerprint": DEFAULT_FINGERPRINT_QUERY,
        }
        for name, default in defaults.items():
            if getattr(self, name) in ("", None):
                object.__setattr__(self, name, default)

    @property
    def default_schema(self) -> bool:
        """The records come from mit-learn's tables (checks that read those tables directly apply)."""
        return self.resources is DEFAULT_RESOURCES_QUERY
