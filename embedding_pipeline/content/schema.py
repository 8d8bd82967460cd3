"""The tables the default queries read, and the SQL itself: the one place that knows the content schema.

The embedded sample database is created from these tables. Another database gives its own queries
(`Queries`, from the settings), which must return the columns listed here.
"""

import re
from dataclasses import dataclass

import sqlalchemy as sa

metadata = sa.MetaData()
learning_resources = sa.Table(
    "learning_resources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("readable_id", sa.String(256), nullable=False),
    sa.Column("platform", sa.String(64), nullable=False),
    sa.Column("resource_type", sa.String(64), nullable=False, index=True),
    sa.Column("title", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("full_description", sa.Text),
    sa.Column("url", sa.Text),
    sa.Column("topics", sa.JSON),
    sa.Column("published", sa.Boolean, nullable=False, default=True),
    sa.Column("created_on", sa.DateTime(timezone=True)),
    sa.Column("updated_on", sa.DateTime(timezone=True), index=True),
    sa.UniqueConstraint("platform", "readable_id"),
)
content_files = sa.Table(
    "content_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("resource_id", sa.Integer, sa.ForeignKey("learning_resources.id"), nullable=False, index=True),
    sa.Column("run_readable_id", sa.String(256)),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("content", sa.Text),
    sa.Column("file_type", sa.String(64)),
    sa.Column("file_extension", sa.String(16)),
    sa.Column("url", sa.Text),
    sa.Column("checksum", sa.String(128)),
    sa.Column("published", sa.Boolean, nullable=False, default=True),
    sa.Column("updated_on", sa.DateTime(timezone=True), index=True),
)

DEFAULT_RESOURCES_QUERY = """
SELECT id, readable_id, platform, resource_type, title, description, full_description,
       url, topics, published, created_on, updated_on
FROM learning_resources
WHERE resource_type = :resource_type AND published
ORDER BY id
"""
DEFAULT_CONTENT_FILES_QUERY = """
SELECT cf.id, cf.resource_id, cf.run_readable_id, cf.key, cf.title, cf.content, cf.file_type,
       cf.file_extension, cf.url, cf.checksum, cf.published, cf.updated_on
FROM content_files cf JOIN learning_resources lr ON lr.id = cf.resource_id
WHERE lr.resource_type = :resource_type AND lr.published AND cf.published
ORDER BY cf.id
"""
# What the sensor polls. One cheap row per tick: counts and dates of each table; only when it moves,
# one row per resource type. The dates are summed over every row (EPOCH_MS, below), so an edit is
# seen whatever date it carries: one older than the newest (a clock behind, a repeated date) moves
# the sum as much as a new one, and a row dated in the future (a typo, a bad import) hides nothing.
DEFAULT_CHANGES_QUERY = """
SELECT (SELECT COUNT(*) FROM learning_resources) AS resources,
       (SELECT SUM(CASE WHEN published THEN 1 ELSE 0 END) FROM learning_resources) AS published_resources,
       (SELECT SUM(EPOCH_MS(updated_on)) FROM learning_resources) AS resources_updated,
       (SELECT COUNT(*) FROM content_files) AS files,
       (SELECT SUM(CASE WHEN published THEN 1 ELSE 0 END) FROM content_files) AS published_files,
       (SELECT SUM(EPOCH_MS(updated_on)) FROM content_files) AS files_updated
"""
DEFAULT_FINGERPRINT_QUERY = """
SELECT resource_type, 'resources' AS part, COUNT(*), SUM(id), SUM(EPOCH_MS(updated_on)),
       SUM(CASE WHEN published THEN 1 ELSE 0 END)
FROM learning_resources GROUP BY resource_type
UNION ALL
SELECT lr.resource_type, 'files' AS part, COUNT(*), SUM(cf.id), SUM(EPOCH_MS(cf.updated_on)),
       SUM(CASE WHEN cf.published THEN 1 ELSE 0 END)
FROM content_files cf JOIN learning_resources lr ON lr.id = cf.resource_id GROUP BY lr.resource_type
"""
# Whether the database holds any learning resource at all (an empty one is a wrong database).
ANY_RESOURCE_QUERY = "SELECT COUNT(*) FROM (SELECT 1 FROM learning_resources LIMIT 1) AS one"
# What no partition embeds, in the schema of the default queries: published resources of another
# type, and published content files whose resource does not exist.
UNEMBEDDABLE_QUERIES = {
    "learning resources of a type that is not one of the eight": (
        "SELECT id, resource_type FROM learning_resources WHERE published AND resource_type NOT IN :types ORDER BY id"
    ),
    "content files whose resource does not exist": (
        "SELECT cf.id, cf.resource_id FROM content_files cf WHERE cf.published AND NOT EXISTS "
        "(SELECT 1 FROM learning_resources lr WHERE lr.id = cf.resource_id) ORDER BY cf.id"
    ),
}

# The columns a resources or content-files query must return.
RESOURCE_COLUMNS = [c.name for c in learning_resources.columns]
CONTENT_FILE_COLUMNS = [c.name for c in content_files.columns]
# What a run lists of every record, to tell which records changed: every column of a resource (all
# of them shape its point, and none is long), a content file's columns but its text.
RESOURCE_LISTING = RESOURCE_COLUMNS
CONTENT_FILE_LISTING = ["id", "resource_id", "run_readable_id", "key", "updated_on", "checksum", "published"]
# What names a record whose other columns cannot be read: it then keeps its points.
KEY_COLUMNS = {
    "resources_query": ["id", "platform", "readable_id", "published"],
    "content_files_query": ["id", "resource_id", "run_readable_id", "key", "published"],
}

# `EPOCH_MS(column)` in the sensor's queries: a timestamp as whole milliseconds, in the database's
# own SQL (an integer, so a sum is the same whatever order the database adds the rows in).
EPOCH_MS = {
    "sqlite": "(CAST(strftime('%s', {0}) AS INTEGER) * 1000 + CAST(SUBSTR(strftime('%f', {0}), 4, 3) AS INTEGER))",
    "postgresql": "CAST(FLOOR(EXTRACT(EPOCH FROM {0}) * 1000) AS BIGINT)",
    "mysql": "CAST(FLOOR(UNIX_TIMESTAMP({0}) * 1000) AS SIGNED)",
}


def with_epoch_ms(query: str, dialect: str) -> str:
    """`query` with each EPOCH_MS(column) written in `dialect`'s SQL."""
    if "EPOCH_MS(" not in query:
        return query
    if dialect not in EPOCH_MS:
        raise ValueError(f"EPOCH_MS() has no form for {dialect}; give the sensor's queries of your own")
    return re.sub(r"EPOCH_MS\(([\w.]+)\)", lambda m: EPOCH_MS[dialect].format(m.group(1)), query)


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
        """The records come from the default tables (checks that read those tables directly apply)."""
        return self.resources == DEFAULT_RESOURCES_QUERY
