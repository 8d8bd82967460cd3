"""mit-learn's tables, as its Django migrations make them (the subset this pipeline reads); the SQL that
reads them is in `queries.py`.

Table and column names, types and nullability are those of a PostgreSQL database migrated by
mit-learn's `learning_resources` migrations up to 0122 (mitodl/mit-learn 2f304af); arrays are ARRAY
columns on PostgreSQL and JSON text on SQLite, which has none. Django fills NOT NULL columns in
Python, so the defaults below are Python-side too: they let the sample loader and tests insert rows
that name only what matters to them.
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

PREFIX = "learning_resources_"
metadata = sa.MetaData()


def _now() -> datetime:
    return datetime.now(UTC)


def array(item) -> sa.types.TypeEngine:
    """An ARRAY column on PostgreSQL, JSON text on SQLite."""
    return sa.JSON(none_as_null=True).with_variant(postgresql.ARRAY(item), "postgresql")


JSONB = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(), "postgresql")


def _stamps() -> list[sa.Column]:
    """Django's TimestampedModel: `updated_on` moves on every save of the row (auto_now)."""
    return [
        sa.Column("created_on", sa.DateTime(timezone=True), nullable=False, default=_now),
        sa.Column("updated_on", sa.DateTime(timezone=True), nullable=False, default=_now, onupdate=_now),
    ]


def _table(name: str, *columns, **kwargs) -> sa.Table:
    return sa.Table(PREFIX + name, metadata, *columns, **kwargs)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True)


def _fk(name: str, target: str, nullable: bool = True, kind=sa.Integer) -> sa.Column:
    return sa.Column(name, kind, sa.ForeignKey(PREFIX + target), nullable=nullable, index=True)


def _text(name: str, length: int | None = None, default: str | None = "") -> sa.Column:
    """A NOT NULL text column (Django's `blank=True` CharField), or a nullable one when `default` is None."""
    kind = sa.String(length) if length else sa.Text
    if default is None:
        return sa.Column(name, kind)
    return sa.Column(name, kind, nullable=False, default=default)


def _flag(name: str, default: bool = False, index: bool = False) -> sa.Column:
    return sa.Column(name, sa.Boolean, nullable=False, default=default, index=index)


def _strings(name: str, default=list, nullable: bool = False) -> sa.Column:
    return sa.Column(name, array(sa.String), nullable=nullable, default=None if nullable else default)


def _described() -> list[sa.Column]:
    """What a resource and a run both have: descriptions, publication, languages and a URL."""
    return [
        sa.Column("description", sa.Text),
        sa.Column("full_description", sa.Text),
        sa.Column("last_modified", sa.DateTime(timezone=True)),
        _flag("published", default=True, index=True),
        _strings("languages", nullable=True),
        sa.Column("url", sa.String(2048)),
    ]


def _offering() -> list[sa.Column]:
    """How a resource or a run is offered: delivery, availability, format, pace, place and time."""
    weeks_and_hours = ("max_weekly_hours", "max_weeks", "min_weekly_hours", "min_weeks")
    return [
        _strings("delivery", default=lambda: ["online"]),
        sa.Column("availability", sa.String(24)),
        _strings("format", default=lambda: ["asynchronous"]),
        _strings("pace", default=lambda: ["self_paced"]),
        _text("location", 256),
        _text("duration", 256),
        *(sa.Column(name, sa.Integer) for name in weeks_and_hours),
        _text("time_commitment", 256),
    ]


platform = _table(
    "learningresourceplatform",
    *_stamps(),
    sa.Column("code", sa.String(12), primary_key=True),
    sa.Column("url", sa.String(200)),
    _flag("is_edx"),
    _flag("has_content_files"),
    _text("name", 256),
)
offeror = _table(
    "learningresourceofferor",
    *_stamps(),
    sa.Column("code", sa.String(12), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    _flag("professional"),
    *(_strings(name) for name in ("audience", "certifications", "content_types", "fee", "formats")),
    _text("more_information", 200),
    _strings("offerings"),
    _text("value_prop"),
    _flag("display_facet", default=True),
)
topic = _table(
    "learningresourcetopic",
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(128), nullable=False),
    _fk("parent_id", "learningresourcetopic.id"),
    _text("icon", 128),
    sa.Column("topic_uuid", sa.Uuid, nullable=False, default=uuid.uuid4),
)
school = _table("learningresourceschool", _id(), *_stamps(), _text("name", 256), _text("url", 200))
department = _table(
    "learningresourcedepartment",
    *_stamps(),
    sa.Column("department_id", sa.String(6), primary_key=True),
    _text("name", 256),
    _fk("school_id", "learningresourceschool.id"),
)
content_tag = _table(
    "learningresourcecontenttag", _id(), *_stamps(), sa.Column("name", sa.String(128), nullable=False, unique=True)
)
image = _table(
    "learningresourceimage",
    _id(),
    *_stamps(),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.String(1024)),
    sa.Column("alt", sa.String(1024)),
)
price = _table(
    "learningresourceprice",
    _id(),
    *_stamps(),
    sa.Column("amount", sa.Numeric(12, 2), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False, default="USD"),
)
learning_resource = _table(
    "learningresource",
    _id(),
    *_stamps(),
    sa.Column("readable_id", sa.String(512), nullable=False),
    sa.Column("title", sa.String(256), nullable=False),
    *_described(),
    sa.Column("resource_type", sa.String(24), nullable=False, index=True),
    _fk("image_id", "learningresourceimage.id"),
    _fk("platform_id", "learningresourceplatform.code", kind=sa.String(12)),
    _text("etl_source", 12),
    _flag("professional"),
    _fk("offered_by_id", "learningresourceofferor.code", kind=sa.String(12)),
    sa.Column("next_start_date", sa.DateTime(timezone=True), index=True),
    _flag("certification"),
    _text("certification_type", 24, default="none"),
    sa.Column("prices", array(sa.Numeric(12, 2)), nullable=False, default=list),
    sa.Column("completeness", sa.Float, nullable=False, default=1.0),
    sa.Column("continuing_ed_credits", sa.Numeric(5, 2)),
    _flag("license_cc"),
    _strings("ocw_topics"),
    *_offering(),
    _flag("test_mode"),
    _flag("require_summaries"),
    _text("resource_category", 256),
    sa.Column("view_count", sa.BigInteger),
    sa.UniqueConstraint("platform_id", "readable_id", "resource_type"),
)
run = _table(
    "learningresourcerun",
    _id(),
    *_stamps(),
    sa.Column("run_id", sa.String(128), nullable=False),
    _text("title", 256),
    *_described(),
    _strings("level"),
    sa.Column("slug", sa.String(1024)),
    sa.Column("semester", sa.String(20)),
    sa.Column("year", sa.Integer),
    *(
        sa.Column(name, sa.DateTime(timezone=True))
        for name in ("start_date", "end_date", "enrollment_start", "enrollment_end")
    ),
    sa.Column("prices", array(sa.Numeric(12, 2))),
    _fk("image_id", "learningresourceimage.id"),
    _fk("learning_resource_id", "learningresource.id", nullable=False),
    sa.Column("checksum", sa.String(32)),
    *_offering(),
    _flag("is_b2b", index=True),
    _flag("is_variant", index=True),
    sa.Column("archive_key", sa.String(512)),
    sa.UniqueConstraint("learning_resource_id", "run_id"),
)
content_file = _table(
    "contentfile",
    _id(),
    *_stamps(),
    sa.Column("uid", sa.String(36)),
    sa.Column("key", sa.String(1024)),
    sa.Column("title", sa.String(1024)),
    sa.Column("description", sa.Text),
    sa.Column("image_src", sa.String(200)),
    sa.Column("url", sa.Text),
    sa.Column("file_type", sa.String(128)),
    sa.Column("content", sa.Text),
    *(sa.Column(name, sa.String(1024)) for name in ("content_title", "content_author")),
    sa.Column("content_language", sa.String(24)),
    _text("content_type", 10, default="file"),
    _flag("published", default=True),
    sa.Column("checksum", sa.String(32)),
    _fk("run_id", "learningresourcerun.id"),
    sa.Column("file_extension", sa.String(32)),
    sa.Column("source_path", sa.String(1024)),
    sa.Column("edx_module_id", sa.String(1024), index=True),
    _fk("learning_resource_id", "learningresource.id"),
    sa.Column("flashcards", JSONB, nullable=False, default=list),
    _text("summary"),
    sa.Column("archive_checksum", sa.String(32)),
    sa.Column("duration", sa.String(11)),
    _fk("direct_learning_resource_id", "learningresource.id"),
    sa.Column("youtube_id", sa.String(32)),
    sa.UniqueConstraint("key", "run_id", "learning_resource_id", "direct_learning_resource_id"),
)
course = _table(
    "course",
    *_stamps(),
    sa.Column("learning_resource_id", sa.Integer, sa.ForeignKey(PREFIX + "learningresource.id"), primary_key=True),
    sa.Column("course_numbers", JSONB),
)
program = _table(
    "program",
    *_stamps(),
    sa.Column("learning_resource_id", sa.Integer, sa.ForeignKey(PREFIX + "learningresource.id"), primary_key=True),
)
video = _table(
    "video",
    _id(),
    *_stamps(),
    _fk("learning_resource_id", "learningresource.id", nullable=False),
    _text("duration", 11),
    _text("transcript"),
    sa.Column("caption_urls", JSONB, nullable=False, default=list),
    _text("cover_image_url", 2048),
    _text("streaming_url", 2048),
)
podcast_episode = _table(
    "podcastepisode",
    _id(),
    *_stamps(),
    _fk("learning_resource_id", "learningresource.id", nullable=False),
    sa.Column("duration", sa.String(10)),
    _text("transcript"),
    _text("audio_url", 2048),
    sa.Column("episode_link", sa.String(2048)),
    sa.Column("rss", sa.Text),
)
podcast = _table(
    "podcast",
    _id(),
    *_stamps(),
    *(sa.Column(name, sa.String(2048)) for name in ("apple_podcasts_url", "google_podcasts_url", "rss_url")),
    _fk("learning_resource_id", "learningresource.id", nullable=False),
)
learning_path = _table(
    "learningpath",
    _id(),
    *_stamps(),
    sa.Column("author_id", sa.BigInteger, nullable=False, default=1),  # a user of mit-learn's: not read here
    _fk("learning_resource_id", "learningresource.id", nullable=False),
)
video_channel = _table(
    "videochannel",
    *_stamps(),
    sa.Column("channel_id", sa.String(80), primary_key=True),
    sa.Column("title", sa.String(256), nullable=False),
    _flag("published", default=True),
    _text("etl_source", 12),
)
video_playlist = _table(
    "videoplaylist",
    _id(),
    *_stamps(),
    _fk("channel_id", "videochannel.channel_id", nullable=False, kind=sa.String(80)),
    _fk("learning_resource_id", "learningresource.id", nullable=False),
    _fk("parent_learning_resource_id", "learningresource.id"),
)
view_event = _table(  # LearningResourceViewEvent: a resource's views, counted where `view_count` is not set
    "learningresourceviewevent",
    _id(),
    *_stamps(),
    sa.Column("event_date", sa.DateTime(timezone=True), nullable=False, default=_now),
    _fk("learning_resource_id", "learningresource.id", nullable=False),
    sa.Column("event_uuid", sa.Uuid),
)
instructor = _table(
    "learningresourceinstructor",
    _id(),
    *_stamps(),
    *(sa.Column(name, sa.String(128)) for name in ("first_name", "last_name")),
    sa.Column("full_name", sa.String(256), unique=True),
)
run_instructors = _table(  # RunInstructorRelationship: a run's instructors, in order
    "runinstructorrelationship",
    _id(),
    *_stamps(),
    sa.Column("position", sa.Integer, nullable=False, default=0),
    _fk("instructor_id", "learningresourceinstructor.id", nullable=False),
    _fk("run_id", "learningresourcerun.id", nullable=False),
)
relationship = _table(  # LearningResourceRelationship: a program's courses and programs, a path's items, ...
    "learningresourcerelationship",
    _id(),
    *_stamps(),
    sa.Column("position", sa.Integer, nullable=False, default=0),
    sa.Column("relation_type", sa.String(256), nullable=False),
    _fk("child_id", "learningresource.id", nullable=False),
    _fk("parent_id", "learningresource.id", nullable=False),
)


def _link(name: str, left: str, right: str, right_kind=sa.Integer) -> sa.Table:
    """A Django many-to-many table: an id, and a foreign key to each side (`<model>_id`), unique together."""
    left_column, right_column = (f"{side.split('.')[0]}_id" for side in (left, right))
    return _table(
        name,
        _id(),
        _fk(left_column, left, nullable=False),
        _fk(right_column, right, nullable=False, kind=right_kind),
        sa.UniqueConstraint(left_column, right_column),
    )


resource_topics = _link("learningresource_topics", "learningresource.id", "learningresourcetopic.id")
resource_departments = _link(
    "learningresource_departments", "learningresource.id", "learningresourcedepartment.department_id", sa.String(6)
)
resource_tags = _link("learningresource_resource_tags", "learningresource.id", "learningresourcecontenttag.id")
resource_prices = _link("learningresource_resource_prices", "learningresource.id", "learningresourceprice.id")
run_prices = _link("learningresourcerun_resource_prices", "learningresourcerun.id", "learningresourceprice.id")
content_file_tags = _link("contentfile_content_tags", "contentfile.id", "learningresourcecontenttag.id")

# mit-learn's channels (its `channels` app): a topic's, a unit's (offeror's) or a department's channel gives
# those their `channel_url` in a document, and a channel's featured list ranks its items (`featured_rank`).
CHANNELS = "channels_"
channel = sa.Table(
    CHANNELS + "channel",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("title", sa.String(100), nullable=False, default=""),
    *(sa.Column(name, sa.String(2083)) for name in ("avatar", "banner")),
    sa.Column("about", JSONB),
    _text("ga_tracking_id", 24),
    _text("public_description"),
    _fk("featured_list_id", "learningresource.id"),
    sa.Column("widget_list_id", sa.Integer),
    sa.Column("channel_type", sa.String(100), nullable=False),
    sa.Column("configuration", JSONB, default=dict),
    _text("search_filter", 2048),
    _flag("published", default=True, index=True),
)


def _channel_detail(kind: str, column: str, target: str, target_kind=sa.Integer) -> sa.Table:
    """ChannelTopicDetail, ChannelUnitDetail, ChannelDepartmentDetail: a channel and what it is the channel of."""
    return sa.Table(
        f"{CHANNELS}channel{kind}detail",
        metadata,
        *_stamps(),
        sa.Column("channel_id", sa.Integer, sa.ForeignKey(CHANNELS + "channel.id"), primary_key=True),
        _fk(column, target, kind=target_kind),
    )


channel_topic = _channel_detail("topic", "topic_id", "learningresourcetopic.id")
channel_unit = _channel_detail("unit", "unit_id", "learningresourceofferor.code", sa.String(12))
channel_department = _channel_detail(
    "department", "department_id", "learningresourcedepartment.department_id", sa.String(6)
)
