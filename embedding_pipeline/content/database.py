"""Reading the content database: one connection per use, the configured queries, errors named by setting."""

import logging
import re
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin

import sqlalchemy as sa

from embedding_pipeline.content.blocklist import BLOCKLISTED_TYPE, read_blocklist
from embedding_pipeline.content.dialect import sql_text
from embedding_pipeline.content.queries import (
    ANY_RESOURCE_QUERY,
    CHANNEL_BASE,
    CONTENT_FILE_COLUMNS,
    CONTENT_FILE_LISTING,
    DEFAULT_TOPICS_QUERY,
    KEY_COLUMNS,
    LATEST_SAVE_QUERY,
    RESOURCE_COLUMNS,
    RESOURCE_NOT_LISTED,
    SAVED_SINCE_QUERY,
    TOPIC_COLUMNS,
    TOPICS_PARTITION,
    UNEMBEDDABLE_QUERIES,
    Queries,
)
from embedding_pipeline.digests import digest
from embedding_pipeline.errors import PermanentError

log = logging.getLogger(__name__)

UNREADABLE = "_unreadable"  # the key of a row the database could not hand over, with the reason
# A connection dropped (pg_terminate_backend, a failover, an idle timeout) or a server restarting: connected
# again after these many seconds, one line each, before the run gives up. A wrong password or a missing table is
# no such error, and fails at once.
RECONNECT_AFTER = (0.5, 1.0, 2.0, 4.0, 8.0)
_DROPPED = re.compile(
    r"server closed the connection|terminating connection|connection refused|could not connect|"
    r"the database system is (starting up|shutting down|in recovery)|connection (reset|timed out|already closed)|"
    r"no connection to the server|SSL connection has been closed|server conn crashed",
    re.IGNORECASE,
)
NO_RESOURCES = "the database holds no published learning resource of the eight types at all; nothing was written"
LISTING_BATCH = 1000  # rows read by id at a time once a listing had to fall back to that


class ContentSourceError(PermanentError):
    """The content database cannot be read as configured; names CONTENT_DATABASE_URL (password masked).

    Nothing is deleted because a source looked empty or unreachable.
    """

    def __init__(self, database_url: str, problem: str):
        super().__init__(f"CONTENT_DATABASE_URL={masked_url(database_url)}: {problem}")


def masked_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<not a database URL>"


def never_embedded_line(never: dict[str, list[tuple]]) -> str:
    """`ContentDatabase.unembeddable`'s findings in one line, with the first ten records of each reason."""
    parts = []
    for reason, rows in never.items():
        shown = ", ".join(f"id {row[0]} ({row[1]})" for row in rows[:10]) + (", ..." if len(rows) > 10 else "")
        parts.append(f"{len(rows)} {reason}: {shown}")
    return "Never embedded: " + "; ".join(parts)


def never_embedded_summary(never: dict[str, list[tuple]]) -> str:
    """The same in one short line: how many of each (a run's tag, its source_content metadata)."""
    return "; ".join(f"{len(rows)} {reason}" for reason, rows in never.items())


class ContentDatabase:
    """Any SQLAlchemy database (SQLite, PostgreSQL, ...) read through `queries`.

    Each query takes the `:resource_type` parameter and returns the columns of the default one.
    """

    def __init__(self, url: str, queries: Queries | None = None, app_base_url: str = "", blocklist_url: str = ""):
        self.url, self.queries = url.strip(), queries or Queries()
        self.channel_base = urljoin(app_base_url, "/c/")  # mit-learn's channel URLs: `{base}/c/{type}/{name}`
        self.blocklist_url = blocklist_url.strip()

    def blocklist(self) -> frozenset[str]:
        """The readable ids of the courses mit-learn's blocklist (BLOCKLISTED_COURSES_URL) excludes, read now."""
        return read_blocklist(self.blocklist_url)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection for one read; the engine goes with it (no pool held between ticks or runs).

        A SQLite file that does not exist is an error: only `embedding-pipeline setup` creates one.
        """
        try:
            url = sa.engine.make_url(self.url)
            path = url.database or ""
            if url.query.get("uri") == "true":  # sqlite:///file:content.db?mode=ro&uri=true
                path = path.removeprefix("file:")
            in_file = url.get_backend_name() == "sqlite" and path not in ("", ":memory:")
            if in_file and not Path(path).is_file():
                raise ContentSourceError(
                    self.url, f"no database file {path} (`embedding-pipeline setup` creates the sample one)"
                )
            engine = sa.create_engine(url)
            if url.get_backend_name() == "sqlite":
                sa.event.listen(engine, "connect", _read_only)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as error:
            raise ContentSourceError(self.url, f"not a usable database URL: {error}") from None
        try:
            conn = self.connected(engine)
        except sa.exc.OperationalError as error:
            engine.dispose()
            raise ContentSourceError(self.url, f"cannot connect: {error.orig}") from None
        try:
            with conn:
                yield conn
        finally:
            engine.dispose()

    def connected(self, engine: sa.Engine) -> sa.Connection:
        """A new connection, the server tried again while it looks dropped or restarting (RECONNECT_AFTER)."""
        pauses, attempt = iter(RECONNECT_AFTER), 0
        while True:
            try:
                conn = engine.connect()
                if conn.dialect.name == "postgresql":
                    _without_jit(conn)
                return conn
            except sa.exc.OperationalError as error:
                pause, attempt = next(pauses, None), attempt + 1
                if pause is None or not dropped(error):
                    raise
                log.warning(
                    f"The content database {masked_url(self.url)} does not answer ({_first_line(error)}); "
                    f"connecting again in {pause:g}s (attempt {attempt} of {len(RECONNECT_AFTER)})"
                )
                time.sleep(pause)

    def _rows(self, query: str | sa.Select, conn: sa.Connection, params: dict | None = None) -> list[tuple]:
        try:
            return [tuple(row) for row in conn.execute(sa.text(sql_text(query, conn.dialect)), params or {})]
        except sa.exc.CompileError as error:  # a default query on a database it has no form for
            raise ContentSourceError(self.url, str(error)) from None
        except sa.exc.DBAPIError as error:
            raise ContentSourceError(self.url, f"a query failed: {error.orig}") from None

    def change_marker(self) -> str:
        """A digest that moves whenever any content changes; cheap enough to poll."""
        with self.connect() as conn:
            return digest(self._rows(self.queries.changes, conn))

    def fingerprints(self) -> dict[str, str]:
        """Resource type → a digest of its resources and content files."""
        by_type: dict[str, list] = {}
        with self.connect() as conn:
            for row in self._rows(self.queries.fingerprint, conn):
                by_type.setdefault(str(row[0]), []).append(row[1:])
        return {resource_type: digest(sorted(rows, key=str)) for resource_type, rows in by_type.items()}

    def latest_save(self) -> int | None:
        """When a resource or a content file was last saved (ms since the epoch); None with queries of your own."""
        if not self.queries.default_schema:
            return None
        with self.connect() as conn:
            (row,) = self._rows(LATEST_SAVE_QUERY, conn)
        return max((int(value) for value in row if value is not None), default=0)

    def saved_since(self, since: int) -> dict[str, int]:
        """Resources and content files saved after `since` (`latest_save`), per type: how many records a change
        touched, deletions and renamed topics, platforms and the like aside. Only for the default queries' schema."""
        counts: dict[str, int] = {}
        with self.connect() as conn:
            for resource_type, count in self._rows(SAVED_SINCE_QUERY, conn, {"since": since}):
                counts[resource_type] = counts.get(resource_type, 0) + int(count)
        return counts

    def unembeddable(self, types: list[str]) -> dict[str, list[tuple]]:
        """Published records no partition embeds, by reason: (id, type or resource id) rows.

        Only for the default queries' schema; with queries of your own it reports nothing.
        """
        if not self.queries.default_schema:
            return {}
        found = {}
        with self.connect() as conn:
            for reason, query in UNEMBEDDABLE_QUERIES.items():
                try:
                    rows = [tuple(row) for row in conn.execute(query, {"types": types})]
                except sa.exc.DBAPIError as error:
                    raise ContentSourceError(
                        self.url, f"the content source's tables cannot be read: {error.orig}"
                    ) from None
                if rows:
                    found[reason] = rows
        return found

    def resource_types(self, ids, types) -> dict[int, str]:
        """Resource id → resource type, for the published resources among `ids` whose type is one of `types`."""
        found = {}
        for resource_type in types:
            with self.reader(resource_type) as reader:
                found.update(dict.fromkeys(reader.resources(ids), resource_type))
        return found

    def holds_no_resources(self) -> bool:
        """No learning resource any partition embeds (`ContentReader.holds_no_resources`): a wrong database."""
        with self.reader(TOPICS_PARTITION) as reader:
            return reader.holds_no_resources()

    @contextmanager
    def reader(self, resource_type: str) -> Iterator["ContentReader"]:
        """One connection for a run's reads of one resource type."""
        with self.connect() as conn:
            reader = ContentReader(conn, resource_type, self)
            try:
                yield reader
            finally:
                if reader.conn is not conn:  # connected again after a drop
                    reader.conn.close()


def dropped(error: sa.exc.DBAPIError) -> bool:
    """The connection was lost or the server is restarting: worth connecting again, unlike a refused password."""
    return bool(error.connection_invalidated or _DROPPED.search(str(error.orig)))


def _first_line(error: BaseException | None) -> str:
    text = str(getattr(error, "orig", error) or "").strip()
    return text.splitlines()[0] if text else type(error).__name__


def _without_jit(conn: sa.Connection) -> None:
    """PostgreSQL compiles a query it estimates costly (its many per-row subqueries make the resources query
    look so) with LLVM first: 1.55 s of a 1.76 s listing of 3,750 resources, for 0.2 s of work. The
    session's queries here are read once each; compiling them never pays."""
    try:
        conn.exec_driver_sql("SET jit = off")
        conn.commit()
    except sa.exc.DBAPIError:  # a server older than PostgreSQL 11 has no JIT
        conn.rollback()


def _read_only(dbapi_conn, _record) -> None:
    """A reader writes nothing into the file it reads (no statistics, no journal, no table); PostgreSQL's
    `hashtext`, which the sensor's queries use, is there too."""
    dbapi_conn.execute("PRAGMA query_only = ON")
    dbapi_conn.create_function("hashtext", 1, _hashtext, deterministic=True)


def _hashtext(text: str | None) -> int | None:
    """A 32-bit hash of a text, as PostgreSQL's `hashtext` gives one (not the same value: each database compares
    its own)."""
    return None if text is None else zlib.crc32(text.encode()) - 2**31


def analyze_sqlite(engine: sa.Engine) -> None:
    """Gather SQLite's statistics once a file is loaded. Without them SQLite may read a batch of content files
    by id by scanning every resource of the type: 222 ms a batch at 90,000 resources, 1 ms with them, so a
    full run's reads grew with the square of the partition. Readers never write them (they write nothing)."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


class ContentReader:
    """The records of one resource type: a listing of all of them, then full rows by id, batch by batch.

    The configured queries are used as subqueries, so a user's own SQL serves the listing (only its
    cheap columns travel) and the fetches by id (only the rows asked for travel).
    """

    def __init__(self, conn: sa.Connection, resource_type: str, database: ContentDatabase):
        self.conn, self.database = conn, database
        self.params = {"resource_type": resource_type, CHANNEL_BASE: database.channel_base}
        self._blocked: frozenset[str] | None = None  # the blocklisted courses' readable ids, read before any row
        self._blocked_ids: set | None = None  # their ids, asked with the first content files
        try:
            self.queries = {  # SQL text, which the listing and the reads by id wrap
                "resources_query": sql_text(database.queries.resources, conn.dialect),
                "content_files_query": sql_text(database.queries.content_files, conn.dialect),
                "topics_query": sql_text(DEFAULT_TOPICS_QUERY, conn.dialect),
            }
        except sa.exc.CompileError as error:  # a default query on a database it has no form for
            raise ContentSourceError(database.url, str(error)) from None
        self._columns: dict[str, list[str]] = {}

    def holds_no_resources(self) -> bool:
        """True if the database (default queries' schema) has no learning resource any partition embeds: a wrong
        database, not a partition without content. With queries of your own it answers False."""
        if not self.database.queries.default_schema:
            return False
        return self._execute("resources_query", ANY_RESOURCE_QUERY, {}).scalar() == 0

    def _select(self, query_name: str, columns: list[str] | None, ids=None) -> sa.TextClause:
        inner = self.queries[query_name]
        selected = ", ".join(f"q.{c}" for c in columns) if columns else "q.*"
        sql = f"SELECT {selected} FROM ({inner}) AS q" + (" WHERE q.id IN :ids" if ids is not None else "")
        statement = sa.text(sql)
        return statement.bindparams(sa.bindparam("ids", expanding=True)) if ids is not None else statement

    def _execute(self, query_name: str, statement: sa.Executable, params: dict) -> sa.CursorResult:
        """The statement, on a new connection if the server dropped this one (or restarted): reads only."""
        try:
            for _ in RECONNECT_AFTER:
                try:
                    return self.conn.execute(statement, params)
                except sa.exc.DBAPIError as error:
                    if not dropped(error):
                        raise
                    log.warning(f"The content database dropped the connection ({_first_line(error)}); connecting again")
                    self.conn.invalidate()
                    self.conn = self.database.connected(self.conn.engine)
            return self.conn.execute(statement, params)
        except sa.exc.DBAPIError as error:
            raise ContentSourceError(
                self.database.url, f"the content source's {query_name} failed: {error.orig}"
            ) from None

    def columns(self, query_name: str) -> list[str]:
        """The columns the query returns (asked once, with no rows); one it must return and does not is named."""
        if query_name not in self._columns:
            probe = sa.text(f"SELECT * FROM ({self.queries[query_name]}) AS q LIMIT 0")
            columns = list(self._execute(query_name, probe, self.params).keys())
            required = {"resources_query": RESOURCE_COLUMNS, "topics_query": TOPIC_COLUMNS}.get(
                query_name, CONTENT_FILE_COLUMNS
            )
            missing = [c for c in required if c not in columns]
            if missing:
                raise ContentSourceError(
                    self.database.url, f"the content source's {query_name} returned no column(s) {', '.join(missing)}"
                )
            self._columns[query_name] = columns
        return self._columns[query_name]

    def _rows(self, query_name: str, columns: list[str] | None, ids=None) -> Iterator[dict]:
        available = self.columns(query_name)  # a column a query of one's own does not return is left out
        if columns is not None:
            columns = [c for c in columns if c in available]
        params = {**self.params, **({"ids": list(ids)} if ids is not None else {})}
        if self.blocklisted() and self._blocked_ids is None and query_name == "content_files_query":
            found = self._execute(
                "resources_query", self._select("resources_query", ["id", "readable_id"]), self.params
            )
            self._blocked_ids = {row_id for row_id, readable_id in found if readable_id in self._blocked}
        result = self._execute(query_name, self._select(query_name, columns, ids), params)
        names = list(result.keys())
        for values in result:
            row = dict(zip(names, values))  # a third faster than SQLAlchemy's row mappings, per listed row
            # A user's query may not filter on publication; what is neither published nor in test mode
            # is never embedded.
            if (row["published"] or row.get("test_mode")) and not self._blocklisted(query_name, row):
                yield row

    def blocklisted(self) -> frozenset[str]:
        """The readable ids of the blocklisted courses, read once, before any row of a course: they and their
        content files are never listed or read (BlocklistUnreadable when the blocklist cannot be read)."""
        if self._blocked is None:
            self._blocked = (
                self.database.blocklist() if self.params["resource_type"] == BLOCKLISTED_TYPE else frozenset()
            )
        return self._blocked

    def _blocklisted(self, query_name: str, row: dict) -> bool:
        """A blocklisted course, or a content file of one."""
        if not self._blocked:
            return False
        if query_name == "resources_query":
            return row.get("readable_id") in self._blocked
        return query_name == "content_files_query" and row.get("resource_id") in self._blocked_ids

    def list_resources(self) -> Iterator[dict]:
        columns = [c for c in self.columns("resources_query") if c not in RESOURCE_NOT_LISTED]
        return self._listed("resources_query", columns)

    def list_content_files(self) -> Iterator[dict]:
        return self._listed("content_files_query", CONTENT_FILE_LISTING)

    def list_topics(self) -> Iterator[dict]:
        """The topics, for the topics partition's reader (none for a resource type's); mit-learn's tables only."""
        if not self.database.queries.default_schema or self.params["resource_type"] != TOPICS_PARTITION:
            return iter(())
        return self._listed("topics_query", None)

    def _listed(self, query_name: str, columns: list[str] | None) -> Iterator[dict]:
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
        rest = [row["id"] for row in self._rows(query_name, ["id", "published", "test_mode"]) if row["id"] not in seen]
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

    def topics(self, ids) -> dict[int, dict]:
        return self._by_id("topics_query", None, list(ids))

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
