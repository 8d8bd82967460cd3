"""The SQL that reads mit-learn's tables (`tables.py`): the default queries, what a query of an operator's own
must return (`RESOURCE_COLUMNS`, `CONTENT_FILE_COLUMNS`), and the queries' forms in each database's dialect.
"""

import re
from dataclasses import dataclass

from embedding_pipeline.content.tables import CHANNELS, PREFIX

# The default queries. `JSON_LIST(x)` aggregates into a JSON list, `JSON_OBJECT(k, v, ...)` builds an
# object, `AS_JSON(x)` passes an array or a JSON value on as JSON (SQLite forgets that a subquery's
# column was JSON), and `EPOCH_MS(column)` is a timestamp in whole milliseconds: each written in the
# connected database's SQL (`dialect_sql`). Lists are aggregated from ordered subqueries, so that a
# row reads the same every time (its fingerprint must not move with the database's plan).
_T = PREFIX
# A program's courses and sub-programs as its course information lists them (two levels, in order).
_PROGRAM_RELATIONS = "('PROGRAM_COURSES', 'PROGRAM_PROGRAMS')"
_PROGRAM_COUNT = (
    "(SELECT COUNT(*) FROM {_T}learningresourcerelationship x JOIN {_T}learningresource c ON c.id = x.child_id "
    "WHERE x.parent_id = lr.id AND x.relation_type = '{relation}' AND c.published)"
).replace("{_T}", PREFIX)
_CHILD_FIELDS = (  # the arguments of a JSON_OBJECT
    "'child', {child}.id, 'relation_type', {relation}.relation_type, 'title', {child}.title, "
    "'readable_id', {child}.readable_id, 'description', {child}.description, 'resource_type', {child}.resource_type, "
    "'visible', ({child}.published OR {child}.test_mode), "
    "'topics', AS_JSON((SELECT JSON_LIST(n) FROM (SELECT t.name AS n FROM {_T}learningresource_topics tx "
    "JOIN {_T}learningresourcetopic t ON t.id = tx.learningresourcetopic_id WHERE tx.learningresource_id = {child}.id "
    "ORDER BY t.name) AS st))"
).replace("{_T}", PREFIX)
# A video's or a document's own files (`direct_learning_resource`), published or not, as its serializer
# lists them (VideoResourceSerializer.get_content_files): their text is folded into the resource's, and
# their fields (but the large ones) are its document's `content_files`. A run lists their stamp: those
# fields, the text's date and length.
_DIRECT_FILES = f"FROM {_T}contentfile cf WHERE cf.direct_learning_resource_id = lr.id"
_DIRECT_FIELDS = (  # the arguments of a JSON_OBJECT
    "'id', cf.id, 'uid', cf.uid, 'key', cf.key, 'title', cf.title, 'description', cf.description, "
    "'image_src', cf.image_src, 'url', cf.url, 'file_type', cf.file_type, 'file_extension', cf.file_extension, "
    "'content_type', cf.content_type, 'content_title', cf.content_title, 'content_author', cf.content_author, "
    "'content_language', cf.content_language, 'checksum', cf.checksum, 'source_path', cf.source_path, "
    "'edx_module_id', cf.edx_module_id, 'youtube_id', cf.youtube_id, "
    "'content_feature_type', AS_JSON((SELECT JSON_LIST(n) FROM (SELECT t.name AS n FROM {_T}contentfile_content_tags x "
    "JOIN {_T}learningresourcecontenttag t ON t.id = x.learningresourcecontenttag_id WHERE x.contentfile_id = cf.id "
    "ORDER BY t.name) AS st))"
).replace("{_T}", PREFIX)
# The URL of the first channel of a topic, a unit (offeror) or a department, where it is published
# (mit-learn's `annotate_channel_url`): `:channel_base` is MITOL_APP_BASE_URL's "/c/".
CHANNEL_BASE = "channel_base"
_CHANNEL = (
    f"(SELECT CASE WHEN ch.published THEN CAST(:{CHANNEL_BASE} AS VARCHAR) || ch.channel_type || '/' || ch.name END "
    f"FROM {CHANNELS}channel{{kind}}detail cd JOIN {CHANNELS}channel ch ON ch.id = cd.channel_id "
    "WHERE cd.{column} = {value} ORDER BY ch.id LIMIT 1)"
)
_IMAGE = "JSON_OBJECT('id', {i}.id, 'url', {i}.url, 'description', {i}.description, 'alt', {i}.alt)"
# LearningResourceRelationship.objects.for_serialization(): a learning path's unpublished items are left out.
_SHOWN_CHILD = "NOT (x.relation_type = 'LEARNING_PATH_ITEMS' AND NOT c.published)"
# How many of a resource's children of one relation type are published (the per-type serializers' counts).
_PUBLISHED_CHILDREN = (
    f"(SELECT COUNT(*) FROM {_T}learningresourcerelationship x JOIN {_T}learningresource c ON c.id = x.child_id "
    "WHERE x.parent_id = lr.id AND x.relation_type = '{relation}' AND c.published)"
)
# The per-type object of a resource's document (ProgramSerializer's counts come as columns of their own): the
# row beside it and the counts its serializer annotates. Transcripts, which can be long, are read for the rows
# a run writes (`transcript`) and listed by a stamp (`transcript_stamp`).
_DETAILS = {
    "podcast": "JSON_OBJECT('id', d.id, 'apple_podcasts_url', d.apple_podcasts_url, "
    "'google_podcasts_url', d.google_podcasts_url, 'rss_url', d.rss_url, 'episode_count', "
    f"{_PUBLISHED_CHILDREN.format(relation='PODCAST_EPISODES')}) FROM {_T}podcast d",
    "podcast_episode": "JSON_OBJECT('id', d.id, 'audio_url', d.audio_url, 'episode_link', d.episode_link, "
    f"'duration', d.duration, 'rss', d.rss) FROM {_T}podcastepisode d",
    "video": "JSON_OBJECT('id', d.id, 'duration', d.duration, 'caption_urls', AS_JSON(d.caption_urls), "
    f"'cover_image_url', d.cover_image_url, 'streaming_url', d.streaming_url) FROM {_T}video d",
    "video_playlist": "JSON_OBJECT('id', d.id, 'channel', JSON_OBJECT('channel_id', ch.channel_id, 'title', ch.title), "
    f"'video_count', {_PUBLISHED_CHILDREN.format(relation='PLAYLIST_VIDEOS')}, "
    "'parent_learning_resource_id', d.parent_learning_resource_id, 'parent_title', p.title, 'parent_url', p.url, "
    "'parent_is_course', pc.learning_resource_id IS NOT NULL, 'parent_course_numbers', AS_JSON(pc.course_numbers)) "
    f"FROM {_T}videoplaylist d JOIN {_T}videochannel ch ON ch.channel_id = d.channel_id "
    f"LEFT JOIN {_T}learningresource p ON p.id = d.parent_learning_resource_id "
    f"LEFT JOIN {_T}course pc ON pc.learning_resource_id = p.id",
    "learning_path": f"JSON_OBJECT('id', d.id, 'item_count', {_PUBLISHED_CHILDREN.format(relation='LEARNING_PATH_ITEMS')}) "
    f"FROM {_T}learningpath d",
}
_TRANSCRIPTS = {"video": f"{_T}video", "podcast_episode": f"{_T}podcastepisode"}
_TRANSCRIPT = {kind: f"d.transcript FROM {table} d" for kind, table in _TRANSCRIPTS.items()}
_TRANSCRIPT_STAMP = {
    kind: f"LENGTH(d.transcript) || ':' || EPOCH_MS(d.updated_on) FROM {table} d"
    for kind, table in _TRANSCRIPTS.items()
}


def _by_type(select: dict[str, str], alias: str) -> str:
    """A column whose value comes from the per-type table of the resource's type (NULL for other types)."""
    cases = " ".join(
        f"WHEN '{kind}' THEN (SELECT {sql} WHERE d.learning_resource_id = lr.id)" for kind, sql in select.items()
    )
    return f"CASE lr.resource_type {cases} END AS {alias}"


DEFAULT_RESOURCES_QUERY = f"""
SELECT lr.id, lr.readable_id, lr.resource_type, lr.title, lr.description, lr.full_description, lr.url,
       lr.published, lr.test_mode, lr.resource_category, lr.certification, lr.certification_type,
       lr.professional, lr.ocw_topics, lr.delivery, lr.prices, lr.languages, lr.next_start_date,
       lr.view_count, lr.created_on, lr.updated_on, lr.last_modified, lr.format, lr.pace, lr.availability,
       lr.location, lr.duration, lr.min_weeks, lr.max_weeks, lr.min_weekly_hours, lr.max_weekly_hours,
       lr.time_commitment, lr.license_cc, lr.continuing_ed_credits, lr.require_summaries, lr.completeness,
       lr.platform_id AS platform_code, p.name AS platform_name,
       lr.offered_by_id AS offered_by_code, o.name AS offered_by_name, o.display_facet AS offered_by_display_facet,
       {_CHANNEL.format(kind="unit", column="unit_id", value="o.code")} AS offered_by_channel_url,
       (SELECT JSON_LIST(AS_JSON(v)) FROM (
          SELECT JSON_OBJECT('id', t.id, 'name', t.name, 'icon', t.icon, 'parent', t.parent_id,
                             'channel_url', {_CHANNEL.format(kind="topic", column="topic_id", value="t.id")}) AS v
            FROM {_T}learningresource_topics x JOIN {_T}learningresourcetopic t ON t.id = x.learningresourcetopic_id
           WHERE x.learningresource_id = lr.id ORDER BY t.name) AS s) AS topics,
       (SELECT JSON_LIST(AS_JSON(v)) FROM (
          SELECT JSON_OBJECT('department_id', d.department_id, 'name', d.name,
                             'school_id', sc.id, 'school_name', sc.name, 'school_url', sc.url,
                             'channel_url', {_CHANNEL.format(kind="department", column="department_id", value="d.department_id")}) AS v
            FROM {_T}learningresource_departments x
            JOIN {_T}learningresourcedepartment d ON d.department_id = x.learningresourcedepartment_id
            LEFT JOIN {_T}learningresourceschool sc ON sc.id = d.school_id
           WHERE x.learningresource_id = lr.id ORDER BY d.department_id) AS s) AS departments,
       (SELECT JSON_LIST(v) FROM (
          SELECT t.name AS v
            FROM {_T}learningresource_resource_tags x JOIN {_T}learningresourcecontenttag t ON t.id = x.learningresourcecontenttag_id
           WHERE x.learningresource_id = lr.id ORDER BY t.name) AS s) AS course_feature,
       (SELECT JSON_LIST(AS_JSON(v)) FROM (
          SELECT JSON_OBJECT('amount', pr.amount, 'currency', pr.currency) AS v
            FROM {_T}learningresource_resource_prices x JOIN {_T}learningresourceprice pr ON pr.id = x.learningresourceprice_id
           WHERE x.learningresource_id = lr.id ORDER BY pr.currency, pr.amount) AS s) AS resource_prices,
       (SELECT JSON_LIST(AS_JSON(v)) FROM (
          SELECT JSON_OBJECT(
                   'id', r.id, 'run_id', r.run_id, 'title', r.title, 'published', r.published,
                   'level', AS_JSON(r.level), 'delivery', AS_JSON(r.delivery), 'prices', AS_JSON(r.prices),
                   'semester', r.semester, 'year', r.year, 'start_date', r.start_date, 'end_date', r.end_date,
                   'enrollment_start', r.enrollment_start, 'enrollment_end', r.enrollment_end, 'url', r.url,
                   'is_variant', r.is_variant, 'updated_on', r.updated_on, 'description', r.description,
                   'full_description', r.full_description, 'last_modified', r.last_modified,
                   'languages', AS_JSON(r.languages), 'slug', r.slug, 'checksum', r.checksum,
                   'format', AS_JSON(r.format), 'pace', AS_JSON(r.pace), 'availability', r.availability,
                   'location', r.location, 'duration', r.duration, 'min_weeks', r.min_weeks, 'max_weeks', r.max_weeks,
                   'min_weekly_hours', r.min_weekly_hours, 'max_weekly_hours', r.max_weekly_hours,
                   'time_commitment', r.time_commitment,
                   'image', AS_JSON((SELECT {_IMAGE.format(i="i")} FROM {_T}learningresourceimage i WHERE i.id = r.image_id)),
                   'instructors', AS_JSON((SELECT JSON_LIST(AS_JSON(w)) FROM (
                      SELECT JSON_OBJECT('id', i.id, 'first_name', i.first_name, 'last_name', i.last_name,
                                         'full_name', i.full_name) AS w
                        FROM {_T}runinstructorrelationship ri JOIN {_T}learningresourceinstructor i ON i.id = ri.instructor_id
                       WHERE ri.run_id = r.id ORDER BY ri.position, i.last_name, i.first_name) AS si)),
                   'resource_prices', AS_JSON((SELECT JSON_LIST(AS_JSON(w)) FROM (
                      SELECT JSON_OBJECT('amount', pr.amount, 'currency', pr.currency) AS w
                        FROM {_T}learningresourcerun_resource_prices x JOIN {_T}learningresourceprice pr ON pr.id = x.learningresourceprice_id
                       WHERE x.learningresourcerun_id = r.id ORDER BY pr.amount, pr.id) AS sp))) AS v
            FROM {_T}learningresourcerun r WHERE r.learning_resource_id = lr.id ORDER BY r.id) AS s) AS runs,
       (SELECT c.course_numbers FROM {_T}course c WHERE c.learning_resource_id = lr.id) AS course_numbers,
       COALESCE((SELECT v.duration FROM {_T}video v WHERE v.learning_resource_id = lr.id),
                (SELECT e.duration FROM {_T}podcastepisode e WHERE e.learning_resource_id = lr.id)) AS media_duration,
       {_PROGRAM_COUNT.format(relation="PROGRAM_COURSES")} AS course_count,
       {_PROGRAM_COUNT.format(relation="PROGRAM_PROGRAMS")} AS program_count,
       (SELECT JSON_LIST(AS_JSON(v)) FROM (
          SELECT JSON_OBJECT({_CHILD_FIELDS.format(child="c", relation="x")},
                 'children', AS_JSON((SELECT JSON_LIST(AS_JSON(w)) FROM (
                    SELECT JSON_OBJECT({_CHILD_FIELDS.format(child="g", relation="y")}) AS w
                      FROM {_T}learningresourcerelationship y JOIN {_T}learningresource g ON g.id = y.child_id
                     WHERE y.parent_id = c.id AND y.relation_type IN {_PROGRAM_RELATIONS}
                     ORDER BY y.position, y.id) AS sg))) AS v
            FROM {_T}learningresourcerelationship x JOIN {_T}learningresource c ON c.id = x.child_id
           WHERE lr.resource_type = 'program' AND x.parent_id = lr.id AND x.relation_type IN {_PROGRAM_RELATIONS}
           ORDER BY x.position, x.id) AS s) AS program_children,
       (SELECT {_IMAGE.format(i="i")} FROM {_T}learningresourceimage i WHERE i.id = lr.image_id) AS image,
       (SELECT JSON_LIST(AS_JSON(v)) FROM (
          SELECT JSON_OBJECT('child', x.child_id, 'position', x.position, 'relation_type', x.relation_type,
                             'title', c.title, 'readable_id', c.readable_id) AS v
            FROM {_T}learningresourcerelationship x JOIN {_T}learningresource c ON c.id = x.child_id
           WHERE x.parent_id = lr.id AND {_SHOWN_CHILD} ORDER BY x.position, x.id) AS s) AS children,
       CASE WHEN lr.resource_type IN ('video', 'podcast_episode') THEN (SELECT JSON_LIST(AS_JSON(v)) FROM (
          SELECT JSON_OBJECT('id', x.parent_id, 'relation_type', x.relation_type, 'title', p.title,
                             'readable_id', p.readable_id) AS v
            FROM {_T}learningresourcerelationship x JOIN {_T}learningresource p ON p.id = x.parent_id
           WHERE x.child_id = lr.id AND x.relation_type IN ('PLAYLIST_VIDEOS', 'PODCAST_EPISODES')
           ORDER BY x.position, x.id) AS s) END AS parents,
       CASE WHEN EXISTS (
          SELECT 1 FROM {_T}learningresourcerelationship x JOIN {CHANNELS}channel ch ON ch.featured_list_id = x.parent_id
           WHERE x.child_id = lr.id AND x.relation_type = 'LEARNING_PATH_ITEMS')
        THEN (SELECT MIN(x.position) FROM {_T}learningresourcerelationship x
               WHERE x.child_id = lr.id AND x.parent_id IN (SELECT featured_list_id FROM {CHANNELS}channel)) END
         AS featured_position,
       CASE WHEN lr.view_count IS NULL THEN
         (SELECT COUNT(*) FROM {_T}learningresourceviewevent e WHERE e.learning_resource_id = lr.id) END AS view_events,
       {_by_type(_DETAILS, "detail")},
       {_by_type(_TRANSCRIPT_STAMP, "transcript_stamp")},
       {_by_type(_TRANSCRIPT, "transcript")},
       CASE WHEN lr.resource_type IN ('video', 'document') THEN (SELECT JSON_LIST(AS_JSON(v)) FROM (
          SELECT JSON_OBJECT({_DIRECT_FIELDS}, 'content', cf.content, 'summary', cf.summary,
                             'flashcards', AS_JSON(cf.flashcards)) AS v
            {_DIRECT_FILES} ORDER BY cf.id) AS s) END AS direct_content_files,
       CASE WHEN lr.resource_type IN ('video', 'document') THEN (SELECT JSON_LIST(AS_JSON(v)) FROM (
          SELECT JSON_OBJECT({_DIRECT_FIELDS}, 'updated_on', EPOCH_MS(cf.updated_on), 'size', LENGTH(cf.content)) AS v
            {_DIRECT_FILES} ORDER BY cf.id) AS s) END AS direct_content_stamp
FROM {_T}learningresource lr
LEFT JOIN {_T}learningresourceplatform p ON p.code = lr.platform_id
LEFT JOIN {_T}learningresourceofferor o ON o.code = lr.offered_by_id
WHERE lr.resource_type = :resource_type AND (lr.published OR lr.test_mode)
ORDER BY lr.id
"""
# The files mit-learn embeds: published, with content, of a run that is published (or of the resource
# itself: a run-less file), of a resource embedded here. A file only `direct_learning_resource` names
# is shown with its resource, never embedded (vector_search.tasks, embeddings_healthcheck).
DEFAULT_CONTENT_FILES_QUERY = f"""
SELECT cf.id, lr.id AS resource_id, cf.run_id, r.run_id AS run_readable_id, r.title AS run_title,
       r.updated_on AS run_updated_on, cf.key, cf.title, cf.description, cf.content, cf.checksum,
       cf.file_type, cf.file_extension, cf.url, cf.edx_module_id, cf.content_type, cf.source_path, cf.summary, cf.flashcards,
       cf.published, cf.created_on, cf.updated_on,
       (SELECT JSON_LIST(v) FROM (
          SELECT t.name AS v
            FROM {_T}contentfile_content_tags x JOIN {_T}learningresourcecontenttag t ON t.id = x.learningresourcecontenttag_id
           WHERE x.contentfile_id = cf.id ORDER BY t.name) AS s) AS content_feature_type
FROM {_T}contentfile cf
LEFT JOIN {_T}learningresourcerun r ON r.id = cf.run_id
JOIN {_T}learningresource lr ON lr.id = COALESCE(r.learning_resource_id, cf.learning_resource_id)
WHERE lr.resource_type = :resource_type AND (lr.published OR lr.test_mode)
  AND cf.published AND (r.id IS NULL OR r.published) AND cf.content IS NOT NULL AND cf.content <> ''
ORDER BY cf.id
"""

# The topics mit-learn embeds into `{base}.topics` (vector_search.utils.embed_topics): every topic, for the
# topics partition alone (`:resource_type` is "topics"; a resource type's reader lists none).
TOPICS_PARTITION = "topics"
DEFAULT_TOPICS_QUERY = f"""
SELECT t.id, t.topic_uuid, t.name, t.updated_on, 1 AS published
FROM {_T}learningresourcetopic t
WHERE :resource_type = '{TOPICS_PARTITION}'
ORDER BY t.id
"""

# What the sensor polls. One cheap row per tick: counts, id sums and the sum of every row's
# `updated_on` of each table a point is made from; only when it moves, one row per resource type and
# table. Django moves a row's `updated_on` on every save (renaming a platform, a topic or an offeror
# moves that row's, not its resources'), and a many-to-many link has no date, only an id: so each
# table counts for itself, and a link table by its count and the sum of its ids. Dates are summed over
# every row, so an edit is seen whatever date it carries (a clock behind, a repeated date), and a row
# dated in the future hides nothing.
_DATED = ["learningresource", "learningresourcerun", "contentfile", "learningresourceplatform",
          "learningresourceofferor", "learningresourcetopic", "learningresourcedepartment", "learningresourceschool",
          "learningresourcecontenttag", "learningresourceprice", "course", "learningresourceinstructor",
          "runinstructorrelationship", "learningresourcerelationship", "video", "podcastepisode",
          "learningresourceimage", "podcast", "learningpath", "videochannel", "videoplaylist"]  # fmt: skip
_DATED = [_T + name for name in _DATED] + [f"{CHANNELS}channel{kind}" for kind in ("", "topicdetail", "unitdetail",
                                                                               "departmentdetail")]  # fmt: skip
_LINKS = ["learningresource_topics", "learningresource_departments", "learningresource_resource_tags",
          "learningresource_resource_prices", "contentfile_content_tags", "learningresourcerun_resource_prices"]  # fmt: skip
DEFAULT_CHANGES_QUERY = "SELECT " + ",\n       ".join(
    [f"(SELECT COUNT(*) || ':' || COALESCE(SUM(EPOCH_MS(updated_on)), 0) FROM {name}) AS {name}" for name in _DATED]
    + [f"(SELECT COUNT(*) || ':' || COALESCE(SUM(id), 0) FROM {_T}{name}) AS {name}" for name in _LINKS]
    + [
        # view counts are saved without moving `updated_on` (bulk_update); view events count where no count is set
        f"(SELECT SUM(CASE WHEN published THEN 1 ELSE 0 END) || ':' || SUM(CASE WHEN test_mode THEN 1 ELSE 0 END) "
        f"|| ':' || COALESCE(SUM(view_count), 0) FROM {_T}learningresource) AS published_resources",
        f"(SELECT COUNT(*) || ':' || COALESCE(SUM(e.id), 0) FROM {_T}learningresourceviewevent e JOIN {_T}learningresource "
        "lr ON lr.id = e.learning_resource_id WHERE lr.view_count IS NULL) AS uncounted_views",
        # a list reordered by a bulk update (QuerySet.update) moves no `updated_on`
        f"(SELECT COALESCE(SUM(position), 0) FROM {_T}learningresourcerelationship) AS positions",
        f"(SELECT SUM(CASE WHEN published THEN 1 ELSE 0 END) FROM {_T}learningresourcerun) AS published_runs",
        f"(SELECT SUM(CASE WHEN published THEN 1 ELSE 0 END) FROM {_T}contentfile) AS published_files",
    ]
)
# Per resource type: the resources, their runs, files, links and the rows those link to. A change to a
# topic, platform, offeror, department, tag or price moves the sums of the types whose resources use it.
_OF_TYPE = f"FROM {_T}learningresource lr"
_FILE_OF_TYPE = (
    f"FROM {_T}contentfile cf LEFT JOIN {_T}learningresourcerun r ON r.id = cf.run_id "
    f"JOIN {_T}learningresource lr ON lr.id = COALESCE(r.learning_resource_id, cf.learning_resource_id)"
)
_DESCENDANTS = (  # a resource's children and grandchildren: (program_id, relation_id, updated_on, child_id)
    f"(SELECT x.parent_id AS program_id, x.id AS relation_id, x.updated_on, x.child_id "
    f"FROM {_T}learningresourcerelationship x UNION ALL "
    f"SELECT x.parent_id, y.id, y.updated_on, y.child_id FROM {_T}learningresourcerelationship x "
    f"JOIN {_T}learningresourcerelationship y ON y.parent_id = x.child_id)"
)
_FINGERPRINT_PARTS = {
    "resources": f"COUNT(*), SUM(lr.id), SUM(EPOCH_MS(lr.updated_on)), "
    f"SUM(CASE WHEN lr.published THEN 1 ELSE 0 END), SUM(CASE WHEN lr.test_mode THEN 1 ELSE 0 END) {_OF_TYPE}",
    "runs": f"COUNT(*), SUM(r.id), SUM(EPOCH_MS(r.updated_on)), SUM(CASE WHEN r.published THEN 1 ELSE 0 END), 0 "
    f"{_OF_TYPE} JOIN {_T}learningresourcerun r ON r.learning_resource_id = lr.id",
    "files": f"COUNT(*), SUM(cf.id), SUM(EPOCH_MS(cf.updated_on)), SUM(CASE WHEN cf.published THEN 1 ELSE 0 END), 0 "
    f"{_FILE_OF_TYPE}",
    "own files": f"COUNT(*), SUM(cf.id), SUM(EPOCH_MS(cf.updated_on)), SUM(CASE WHEN cf.published THEN 1 ELSE 0 END), 0 "
    f"{_OF_TYPE} JOIN {_T}contentfile cf ON cf.direct_learning_resource_id = lr.id",
    "own file tags": f"COUNT(*), SUM(x.id), SUM(EPOCH_MS(t.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_T}contentfile cf ON cf.direct_learning_resource_id = lr.id "
    f"JOIN {_T}contentfile_content_tags x ON x.contentfile_id = cf.id "
    f"JOIN {_T}learningresourcecontenttag t ON t.id = x.learningresourcecontenttag_id",
    "file tags": f"COUNT(*), SUM(x.id), SUM(EPOCH_MS(t.updated_on)), 0, 0 {_FILE_OF_TYPE} "
    f"JOIN {_T}contentfile_content_tags x ON x.contentfile_id = cf.id "
    f"JOIN {_T}learningresourcecontenttag t ON t.id = x.learningresourcecontenttag_id",
    "platforms": f"COUNT(p.code), 0, SUM(EPOCH_MS(p.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_T}learningresourceplatform p ON p.code = lr.platform_id",
    "offerors": f"COUNT(o.code), 0, SUM(EPOCH_MS(o.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_T}learningresourceofferor o ON o.code = lr.offered_by_id",
    "course numbers": f"COUNT(*), 0, SUM(EPOCH_MS(c.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_T}course c ON c.learning_resource_id = lr.id",
    "run instructors": f"COUNT(*), SUM(ri.id), SUM(EPOCH_MS(ri.updated_on) + EPOCH_MS(i.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_T}learningresourcerun r ON r.learning_resource_id = lr.id "
    f"JOIN {_T}runinstructorrelationship ri ON ri.run_id = r.id JOIN {_T}learningresourceinstructor i ON i.id = ri.instructor_id",
    "run prices": f"COUNT(*), SUM(x.id), SUM(EPOCH_MS(pr.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_T}learningresourcerun r ON r.learning_resource_id = lr.id "
    f"JOIN {_T}learningresourcerun_resource_prices x ON x.learningresourcerun_id = r.id "
    f"JOIN {_T}learningresourceprice pr ON pr.id = x.learningresourceprice_id",
    # the per-type rows (a duration, a transcript, a podcast's links, a playlist's channel and parent resource)
    "details": f"COUNT(*), SUM(m.id), SUM(EPOCH_MS(m.updated_on)), 0, 0 {_OF_TYPE} JOIN ("
    + " UNION ALL ".join(
        f"SELECT id, learning_resource_id, updated_on FROM {_T}{table}"
        for table in ("video", "podcastepisode", "podcast", "learningpath", "videoplaylist")
    )
    + ") m ON m.learning_resource_id = lr.id",
    "playlist channels": f"COUNT(*), 0, SUM(EPOCH_MS(ch.updated_on) + COALESCE(EPOCH_MS(pc.updated_on), 0)), "
    f"SUM(COALESCE(hashtext(p.title || '|' || COALESCE(p.url, '')), 0)), 0 {_OF_TYPE} "
    f"JOIN {_T}videoplaylist d ON d.learning_resource_id = lr.id "
    f"JOIN {_T}videochannel ch ON ch.channel_id = d.channel_id "
    f"LEFT JOIN {_T}learningresource p ON p.id = d.parent_learning_resource_id "
    f"LEFT JOIN {_T}course pc ON pc.learning_resource_id = p.id",
    "images": f"COUNT(*), SUM(i.id), SUM(EPOCH_MS(i.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_T}learningresourceimage i ON i.id = lr.image_id",
    "run images": f"COUNT(*), SUM(i.id), SUM(EPOCH_MS(i.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_T}learningresourcerun r ON r.learning_resource_id = lr.id JOIN {_T}learningresourceimage i ON i.id = r.image_id",
    # a document lists its children, a video's names its playlists and an episode's its podcasts: their titles and
    # readable ids (hashed: a child saved for another reason moves nothing), their order, a child's publication
    "children": f"COUNT(*), SUM(x.id + x.position), SUM(EPOCH_MS(x.updated_on)), "
    f"SUM(hashtext(c.title || '|' || c.readable_id)), SUM(CASE WHEN c.published THEN 1 ELSE 0 END) {_OF_TYPE} "
    f"JOIN {_T}learningresourcerelationship x ON x.parent_id = lr.id JOIN {_T}learningresource c ON c.id = x.child_id",
    "parents": f"COUNT(*), SUM(x.id + x.position), SUM(EPOCH_MS(x.updated_on)), "
    f"SUM(hashtext(p.title || '|' || p.readable_id)), 0 {_OF_TYPE} "
    f"JOIN {_T}learningresourcerelationship x ON x.child_id = lr.id JOIN {_T}learningresource p ON p.id = x.parent_id "
    "WHERE lr.resource_type IN ('video', 'podcast_episode')",
    "featured in": f"COUNT(*), SUM(ch.id + x.id + x.position), SUM(EPOCH_MS(ch.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_T}learningresourcerelationship x ON x.child_id = lr.id JOIN {CHANNELS}channel ch ON ch.featured_list_id = x.parent_id",
    # the channels whose URLs its topics, offeror and departments show
    "topic channels": f"COUNT(*), SUM(ch.id), SUM(EPOCH_MS(ch.updated_on) + EPOCH_MS(cd.updated_on)), "
    f"SUM(CASE WHEN ch.published THEN 1 ELSE 0 END), 0 {_OF_TYPE} "
    f"JOIN {_T}learningresource_topics tx ON tx.learningresource_id = lr.id "
    f"JOIN {CHANNELS}channeltopicdetail cd ON cd.topic_id = tx.learningresourcetopic_id "
    f"JOIN {CHANNELS}channel ch ON ch.id = cd.channel_id",
    "unit channels": f"COUNT(*), SUM(ch.id), SUM(EPOCH_MS(ch.updated_on) + EPOCH_MS(cd.updated_on)), "
    f"SUM(CASE WHEN ch.published THEN 1 ELSE 0 END), 0 {_OF_TYPE} "
    f"JOIN {CHANNELS}channelunitdetail cd ON cd.unit_id = lr.offered_by_id JOIN {CHANNELS}channel ch ON ch.id = cd.channel_id",
    "department channels": f"COUNT(*), SUM(ch.id), SUM(EPOCH_MS(ch.updated_on) + EPOCH_MS(cd.updated_on)), "
    f"SUM(CASE WHEN ch.published THEN 1 ELSE 0 END), 0 {_OF_TYPE} "
    f"JOIN {_T}learningresource_departments x ON x.learningresource_id = lr.id "
    f"JOIN {CHANNELS}channeldepartmentdetail cd ON cd.department_id = x.learningresourcedepartment_id "
    f"JOIN {CHANNELS}channel ch ON ch.id = cd.channel_id",
    # views: the count mit-learn saves without moving `updated_on`, or the view events where it saved none
    "views": f"COUNT(*), SUM(COALESCE(lr.view_count, 0)), 0, 0, 0 {_OF_TYPE}",
    "view events": f"COUNT(*), SUM(e.id), 0, 0, 0 {_OF_TYPE} "
    f"JOIN {_T}learningresourceviewevent e ON e.learning_resource_id = lr.id WHERE lr.view_count IS NULL",
    # a program's course information lists its children and theirs: their rows, topics and order
    "program children": f"COUNT(*), SUM(d.relation_id + c.id), SUM(EPOCH_MS(d.updated_on) + EPOCH_MS(c.updated_on)), "
    f"SUM(CASE WHEN c.published THEN 1 ELSE 0 END), SUM(CASE WHEN c.test_mode THEN 1 ELSE 0 END) {_OF_TYPE} "
    f"JOIN {_DESCENDANTS} d ON d.program_id = lr.id JOIN {_T}learningresource c ON c.id = d.child_id "
    "WHERE lr.resource_type = 'program'",
    "program children topics": f"COUNT(*), SUM(tx.id), SUM(EPOCH_MS(t.updated_on)), 0, 0 {_OF_TYPE} "
    f"JOIN {_DESCENDANTS} d ON d.program_id = lr.id "
    f"JOIN {_T}learningresource_topics tx ON tx.learningresource_id = d.child_id "
    f"JOIN {_T}learningresourcetopic t ON t.id = tx.learningresourcetopic_id WHERE lr.resource_type = 'program'",
    **{
        name: f"COUNT(*), SUM(x.id), SUM(EPOCH_MS(y.updated_on)), 0, 0 {_OF_TYPE} "
        f"JOIN {_T}{link} x ON x.learningresource_id = lr.id JOIN {_T}{target} y ON y.{key} = x.{column}"
        for name, link, target, key, column in [
            ("topics", "learningresource_topics", "learningresourcetopic", "id", "learningresourcetopic_id"),
            (
                "departments",
                "learningresource_departments",
                "learningresourcedepartment",
                "department_id",
                "learningresourcedepartment_id",
            ),
            (
                "tags",
                "learningresource_resource_tags",
                "learningresourcecontenttag",
                "id",
                "learningresourcecontenttag_id",
            ),
            ("prices", "learningresource_resource_prices", "learningresourceprice", "id", "learningresourceprice_id"),
        ]
    },
}
DEFAULT_FINGERPRINT_QUERY = "\nUNION ALL\n".join(
    [
        f"SELECT lr.resource_type, '{part}' AS part, {select} GROUP BY lr.resource_type"
        for part, select in _FINGERPRINT_PARTS.items()
    ]
    + [
        f"SELECT '{TOPICS_PARTITION}', 'topics', COUNT(*), SUM(id), SUM(EPOCH_MS(updated_on)), 0, 0 FROM {_T}learningresourcetopic"
    ]
)
# How large a change is, for the sensor: the resources and content files of each type saved after `:since`
# (milliseconds since the epoch), and the latest save of either table (the next tick's `:since`).
SAVED_SINCE_QUERY = (
    f"SELECT lr.resource_type, COUNT(*) {_OF_TYPE} WHERE EPOCH_MS(lr.updated_on) > :since GROUP BY lr.resource_type "
    f"UNION ALL SELECT lr.resource_type, COUNT(*) {_FILE_OF_TYPE} WHERE EPOCH_MS(cf.updated_on) > :since "
    "GROUP BY lr.resource_type"
)
LATEST_SAVE_QUERY = (
    f"SELECT (SELECT MAX(EPOCH_MS(updated_on)) FROM {_T}learningresource), "
    f"(SELECT MAX(EPOCH_MS(updated_on)) FROM {_T}contentfile)"
)
# Whether the database holds any learning resource at all (an empty one is a wrong database).
ANY_RESOURCE_QUERY = f"SELECT COUNT(*) FROM (SELECT 1 FROM {_T}learningresource LIMIT 1) AS one"
# What no partition embeds, in the default schema: published resources of another type, and published
# content files with content whose resource (through their run, or directly) does not exist.
UNEMBEDDABLE_QUERIES = {
    "learning resources of a type that is not one of the eight": (
        f"SELECT id, resource_type FROM {_T}learningresource WHERE published AND resource_type NOT IN :types ORDER BY id"
    ),
    "content files whose resource does not exist": (
        f"SELECT cf.id, COALESCE(cf.run_id, cf.learning_resource_id) FROM {_T}contentfile cf "
        f"LEFT JOIN {_T}learningresourcerun r ON r.id = cf.run_id "
        f"LEFT JOIN {_T}learningresource lr ON lr.id = COALESCE(r.learning_resource_id, cf.learning_resource_id) "
        "WHERE cf.published AND lr.id IS NULL AND (cf.run_id IS NOT NULL OR cf.learning_resource_id IS NOT NULL) "
        "ORDER BY cf.id"
    ),
}

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

# The dialects' forms of the queries' macros.
DIALECT_SQL = {
    "sqlite": {
        "EPOCH_MS": "(CAST(strftime('%s', {0}) AS INTEGER) * 1000 + CAST(SUBSTR(strftime('%f', {0}), 4, 3) AS INTEGER))",
        "JSON_LIST(": "json_group_array(",
        "JSON_OBJECT(": "json_object(",
        "AS_JSON(": "json(",
    },
    "postgresql": {
        "EPOCH_MS": "CAST(FLOOR(EXTRACT(EPOCH FROM {0}) * 1000) AS BIGINT)",
        "JSON_LIST(": "json_agg(",
        "JSON_OBJECT(": "json_build_object(",
        "AS_JSON(": "to_json(",
    },
}
MACROS = ("EPOCH_MS(", "JSON_LIST(", "JSON_OBJECT(", "AS_JSON(")


def dialect_sql(query: str, dialect: str) -> str:
    """`query` with its macros written in `dialect`'s SQL."""
    if not any(macro in query for macro in MACROS):
        return query
    if dialect not in DIALECT_SQL:
        raise ValueError(f"the default queries have no form for {dialect}; give queries of your own")
    forms = DIALECT_SQL[dialect]
    query = re.sub(r"EPOCH_MS\(([\w.]+)\)", lambda m: forms["EPOCH_MS"].format(m.group(1)), query)
    for macro in ("JSON_LIST(", "JSON_OBJECT(", "AS_JSON("):
        query = query.replace(macro, forms[macro])
    return query


@dataclass(frozen=True)
class Queries:
    """The SQL a content source runs; empty fields take the defaults above."""

    resources: str = ""
    content_files: str = ""
    changes: str = ""
    fingerprint: str = ""

    def __post_init__(self):
        defaults = {
            "resources": DEFAULT_RESOURCES_QUERY,
            "content_files": DEFAULT_CONTENT_FILES_QUERY,
            "changes": DEFAULT_CHANGES_QUERY,
            "fingerprint": DEFAULT_FINGERPRINT_QUERY,
        }
        for name, default in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, default)

    @property
    def default_schema(self) -> bool:
        """The records come from mit-learn's tables (checks that read those tables directly apply)."""
        return self.resources == DEFAULT_RESOURCES_QUERY
