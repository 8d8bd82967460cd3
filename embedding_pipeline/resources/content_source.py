"""The content source: learning resources and content files from any SQLAlchemy database."""

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

log = logging.getLogger(__name__)

# The schema of DESIGN.md: the sample database is created from it, and the default queries read it.
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


class ContentSourceError(dg.Failure):
    """The content database cannot be read as configured; names CONTENT_DATABASE_URL (password masked).

    Retrying does not help, and nothing is deleted because a source looked empty or unreachable.
    """

    def __init__(self, database_url: str, problem: str):
        super().__init__(f"CONTENT_DATABASE_URL={masked_url(database_url)}: {problem}", allow_retries=False)


def masked_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<not a database URL>"


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
RESOURCE_COLUMNS = [c.name for c in learning_resources.columns]
UNREADABLE = "_unreadable"  # the key of a row the database could not hand over, with the reason
CONTENT_FILE_COLUMNS = [c.name for c in content_files.columns]


class ContentSource(dg.ConfigurableResource):
    """Reads one resource type's published resources and content files.

    Any SQLAlchemy URL works (SQLite, PostgreSQL, ...). Production databases whose tables differ
    give their own queries: each takes the `:resource_type` parameter and returns the columns of
    the default query.
    """

    database_url: str = Field(description="SQLAlchemy URL of the content database.")
    batch_size: int = Field(
        description="Records read, chunked, embedded and written together (QDRANT_CHUNK_SIZE): the unit of "
        "progress a failed run resumes after, and of the memory a run needs.",
    )
    resources_query: str = Field(
        default=DEFAULT_RESOURCES_QUERY,
        description="SQL returning the published learning resources of :resource_type.",
    )
    content_files_query: str = Field(
        default=DEFAULT_CONTENT_FILES_QUERY,
        description="SQL returning the published content files of the resources of :resource_type.",
    )
    changes_query: str = Field(
        default=DEFAULT_CHANGES_QUERY,
        description="SQL returning one row that changes whenever any content is added, edited, deleted or unpublished.",
    )
    fingerprint_query: str = Field(
        default=DEFAULT_FINGERPRINT_QUERY,
        description="SQL returning rows whose first column is a resource type; a type's rows change when its content does.",
    )

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        """A connection for one read; the engine goes with it (no pool held between ticks or runs).

        A SQLite file that does not exist is an error: only `embedding-pipeline setup` creates one.
        """
        try:
            url = sa.engine.make_url(self.database_url)
            path = url.database or ""
            if url.query.get("uri") == "true":  # sqlite:///file:content.db?mode=ro&uri=true
                path = path.removeprefix("file:")
            in_file = url.get_backend_name() == "sqlite" and path not in ("", ":memory:")
            if in_file and not Path(path).is_file():
                raise ContentSourceError(
                    self.database_url,
                    f"no database file {path} (`embedding-pipeline setup` creates the sample one)",
                )
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as error:
            raise ContentSourceError(self.database_url, f"not a usable database URL: {error}") from None
        try:
            conn = engine.connect()
        except sa.exc.OperationalError as error:
            engine.dispose()
            raise ContentSourceError(self.database_url, f"cannot connect: {error.orig}") from None
        try:
            with conn:
                yield conn
        finally:
            engine.dispose()

    def _rows(self, query: str) -> list[tuple]:
        with self._connect() as conn:
            try:
                return [tuple(row) for row in conn.execute(sa.text(with_epoch_ms(query, conn.dialect.name)))]
            except ValueError as error:
                raise ContentSourceError(self.database_url, str(error)) from None
            except sa.exc.DBAPIError as error:
                raise ContentSourceError(self.database_url, f"a query failed: {error.orig}") from None

    def change_marker(self) -> str:
        """A digest that moves whenever any content changes; cheap enough to poll."""
        return _digest(self._rows(self.changes_query))

    def holds_no_resources(self) -> bool:
        """True if the database (default queries' schema) has no learning resource at all: a wrong database,
        not a partition without content. With queries of your own it answers False."""
        if self.resources_query != DEFAULT_RESOURCES_QUERY:
            return False
        return self._rows("SELECT COUNT(*) FROM (SELECT 1 FROM learning_resources LIMIT 1) AS one")[0][0] == 0

    def unembeddable(self, types: list[str]) -> dict[str, list[tuple]]:
        """Published records no partition embeds, by reason: (id, type or resource id) rows.

        Only for the default queries' schema; with queries of your own it reports nothing.
        """
        if self.resources_query != DEFAULT_RESOURCES_QUERY:
            return {}
        found = {}
        with self._connect() as conn:
            for reason, sql in UNEMBEDDABLE_QUERIES.items():
                statement, params = sa.text(sql), {}
                if ":types" in sql:
                    statement, params = statement.bindparams(sa.bindparam("types", expanding=True)), {"types": types}
                rows = [tuple(row) for row in conn.execute(statement, params)]
                if rows:
                    found[reason] = rows
        return found

    def fingerprints(self) -> dict[str, str]:
        """Resource type → a digest of its resources and content files."""
        by_type: dict[str, list] = {}
        for row in self._rows(self.fingerprint_query):
            by_type.setdefault(str(row[0]), []).append(row[1:])
        return {resource_type: _digest(sorted(rows, key=str)) for resource_type, rows in by_type.items()}

    def resource_types(self, ids, types) -> dict[int, str]:
        """Resource id → resource type, for the published resources among `ids` whose type is one of `types`."""
        found = {}
        for resource_type in types:
            with self.reader(resource_type) as reader:
                found.update(dict.fromkeys(reader.resources(ids), resource_type))
        return found

    @contextmanager
    def reader(self, resource_type: str) -> Iterator["ContentReader"]:
        """One connection for a run's reads of one resource type."""
        with self._connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                _keep_statistics(conn, opening=True)
            yield ContentReader(conn, resource_type, self.resources_query, self.content_files_query, self.database_url)
            if sqlite:
                _keep_statistics(conn)


def _keep_statistics(conn: sa.Connection, opening: bool = False) -> None:
    """SQLite plans queries from statistics that only ANALYZE gathers. With none (a file never analyzed),
    it reads a batch of content files by id by scanning every resource of the type: 222 ms a batch at
    90,000 resources, 1 ms with statistics, so a full run's reads grew with the square of the partition.
    A reader therefore analyzes a file that never was, and ends with `PRAGMA optimize`, which analyzes
    again the tables it used that grew much since (SQLite's advice for every connection). A file this
    process may not write, or one busy with a writer, is read as it is."""
    try:
        if not opening:
            conn.exec_driver_sql("PRAGMA optimize")
        elif conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is None:
            conn.exec_driver_sql("ANALYZE")
        conn.commit()
    except sa.exc.OperationalError as error:
        conn.rollback()
        log.debug(f"SQLite statistics not updated: {error.orig}")


# What a run lists of every record, to tell which records changed: every column of a resource (all
# of them shape its point, and none is long), a content file's columns but its text.
RESOURCE_LISTING = RESOURCE_COLUMNS
CONTENT_FILE_LISTING = ["id", "resource_id", "run_readable_id", "key", "updated_on", "checksum", "published"]
# What names a record whose other columns cannot be read: it then keeps its points.
KEY_COLUMNS = {
    "resources_query": ["id", "platform", "readable_id", "published"],
    "content_files_query": ["id", "resource_id", "run_readable_id", "key", "published"],
}
LISTING_BATCH = 1000  # rows read by id at a time once a listing had to fall back to that


class ContentReader:
    """The records of one resource type: a listing of all of them, then full rows by id, batch by batch.

    The configured queries are used as subqueries, so a user's own SQL serves the listing (only its
    cheap columns travel) and the fetches by id (only the rows asked for travel).
    """

    def __init__(
        self, conn: sa.Connection, resource_type: str, resources_query: str, content_files_query: str, url: str
    ):
        self.conn, self.params, self.url = conn, {"resource_type": resource_type}, url
        self.queries = {"resources_query": resources_query, "content_files_query": content_files_query}
        self._checked: set[str] = set()

    def _select(self, query_name: str, columns: list[str] | None, ids=None) -> sa.TextClause:
        inner = self.queries[query_name].strip().rstrip(";")
        selected = ", ".join(f"q.{c}" for c in columns) if columns else "q.*"
        sql = f"SELECT {selected} FROM ({inner}) AS q" + (" WHERE q.id IN :ids" if ids is not None else "")
        statement = sa.text(sql)
        return statement.bindparams(sa.bindparam("ids", expanding=True)) if ids is not None else statement

    def _execute(self, query_name: str, statement: sa.TextClause, params: dict) -> sa.CursorResult:
        try:
            return self.conn.execute(statement, params)
        except sa.exc.DBAPIError as error:
            raise ContentSourceError(self.url, f"the content source's {query_name} failed: {error.orig}") from None

    def _require(self, query_name: str, required: list[str]) -> None:
        """The query returns the columns the pipeline reads (asked once, with no rows)."""
        if query_name in self._checked:
            return
        inner = self.queries[query_name].strip().rstrip(";")
        columns = self._execute(query_name, sa.text(f"SELECT * FROM ({inner}) AS q LIMIT 0"), self.params).keys()
        missing = [c for c in required if c not in columns]
        if missing:
            raise ContentSourceError(
                self.url, f"the content source's {query_name} returned no column(s) {', '.join(missing)}"
            )
        self._checked.add(query_name)

    def _rows(self, query_name: str, columns: list[str] | None, ids=None) -> Iterator[dict]:
        self._require(query_name, RESOURCE_COLUMNS if query_name == "resources_query" else CONTENT_FILE_COLUMNS)
        params = {**self.params, **({"ids": list(ids)} if ids is not None else {})}
        result = self._execute(query_name, self._select(query_name, columns, ids), params)
        names = list(result.keys())
        for values in result:
            row = dict(zip(names, values))  # a third faster than SQLAlchemy's row mappings, per listed row
            # A user's query may not filter on publication; what is not published is never embedded.
            if row["published"]:
                yield row

    def list_resources(self) -> Iterator[dict]:
        return self._listed("resources_query", RESOURCE_LISTING)

    def list_content_files(self) -> Iterator[dict]:
        return self._listed("content_files_query", CONTENT_FILE_LISTING)

    def _listed(self, query_name: str, columns: list[str]) -> Iterator[dict]:
        """The listing, streamed. Should the driver fail to decode a row, the rest is read by id, so
        that only that row comes back unreadable (with its key columns where those can be read)."""
        seen = set()
        try:
            for row in self._rows(query_name, columns):
                seen.add(row["id"])
                yield row
            return
        except sa.exc.OperationalError:
            self.conn.rollback()
        rest = [row["id"] for row in self._rows(query_name, ["id", "published"]) if row["id"] not in seen]
        for start in range(0, len(rest), LISTING_BATCH):
            for row in self._by_id(query_name, columns, rest[start : start + LISTING_BATCH]).values():
                if UNREADABLE in row:
                    keys = self._by_id(query_name, KEY_COLUMNS[query_name], [row["id"]])[row["id"]]
                    row = {**keys, **row}
                yield row

    def resources(self, ids) -> dict[int, dict]:
        """Full rows of these resources, by id (ids no longer published are absent)."""
        return self._by_id("resources_query", None, list(ids))

    def content_files(self, ids) -> dict[int, dict]:
        return self._by_id("content_files_query", None, list(ids))

    def _by_id(self, query_name: str, columns: list[str] | None, ids: list) -> dict[int, dict]:
        """Rows by id (`columns`, or all). A row the database driver cannot decode (invalid UTF-8, ...)
        is read again on its own, so that only it fails: it comes back as `{UNREADABLE: reason}`."""
        try:
            return {row["id"]: row for row in self._rows(query_name, columns, ids)}
        except sa.exc.OperationalError as error:
            self.conn.rollback()
            if len(ids) == 1:
                return {ids[0]: {"id": ids[0], UNREADABLE: str(error.orig)}}
        rows = {}
        for one in ids:
            rows.update(self._by_id(query_name, columns, [one]))
        return rows


def _digest(rows) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
