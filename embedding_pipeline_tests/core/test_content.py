"""The content source: mit-learn's tables through the default queries, an operator's own SQL, clear errors."""

import sqlite3

import pytest
import sqlalchemy as sa

from embedding_pipeline.content import ContentDatabase, ContentSourceError, Queries, tables
from embedding_pipeline.content import database as database_module
from embedding_pipeline.content.database import analyze_sqlite
from embedding_pipeline.content.dialect import sql_text
from embedding_pipeline.content.queries import DEFAULT_CONTENT_FILES_QUERY
from embedding_pipeline.partition.records import list_records
from embedding_pipeline.sample_data import EVERY_SAMPLE, load_sample_data

T = tables.PREFIX


@pytest.fixture
def database_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'content.db'}"
    assert load_sample_data(url) == (44, 15)
    return url


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def test_a_resource_comes_with_its_platform_offeror_topics_departments_tags_and_runs(database_url):
    with ContentDatabase(database_url).reader("course") as reader:
        resources = {r["readable_id"]: r for r in reader.list_resources()}
    assert len(resources) == 8 and "ocw-11.001-retired" not in resources  # unpublished
    course = resources["ocw-18.06"]
    assert (course["platform_code"], course["platform_name"]) == ("ocw", "MIT OpenCourseWare")
    assert (course["offered_by_code"], course["offered_by_name"]) == ("ocw", "MIT OpenCourseWare")
    assert '"name":"Linear Algebra"' in course["topics"] and '"department_id":"18"' in course["departments"]
    assert "Problem Sets" in course["course_feature"] and '"run_id":"fall-2019"' in course["runs"]


def test_the_files_embedded_are_published_with_content_of_published_runs_or_of_their_resource(database_url):
    with ContentDatabase(database_url).reader("course") as reader:
        files = list(reader.list_content_files())
        assert "content" not in files[0]  # never a file's text in the listing
        assert {f["key"] for f in files} == {
            "syllabus.md",
            "lecture-notes-photosynthesis.txt",
            "week1/getting-started.md",
        }
        (syllabus,) = [f for f in files if f["key"] == "syllabus.md"]
        assert syllabus["run_readable_id"] == "spring-2024"  # not draft-exam.md (unpublished), nor old-syllabus.md
        (row,) = reader.content_files([syllabus["id"]]).values()  # (of the unpublished run fall-2019)
        assert len(row["content"]) > 100
    with ContentDatabase(database_url).reader("video") as reader:
        (captions,) = reader.list_content_files()
        assert captions["key"] == "captions.vtt.txt" and captions["run_readable_id"] is None  # the resource's own


def test_a_test_mode_resource_is_listed_and_one_neither_published_nor_in_test_mode_is_not(database_url):
    with ContentDatabase(database_url).reader("program") as reader:
        programs = {r["readable_id"]: (r["published"], r["test_mode"]) for r in reader.list_resources()}
    assert programs["prog-climate-leadership"] == (0, 1) and len(programs) == 5


def _plan_of_reading_files_by_id(path) -> str:
    """How SQLite reads a batch of 100 content files by id through the default query."""
    ids = ", ".join(map(str, range(1, 101)))
    db = sqlite3.connect(path)
    try:
        inner = sql_text(DEFAULT_CONTENT_FILES_QUERY, sa.dialects.sqlite.dialect())
        sql = f"EXPLAIN QUERY PLAN SELECT q.* FROM ({inner}) AS q WHERE q.id IN ({ids})"
        return " / ".join(row[-1] for row in db.execute(sql, {"resource_type": "course"}))
    finally:
        db.close()


def _copies(table: sa.Table, offsets: dict[str, str], n: int = 100) -> str:
    """SQL copying every row of `table` `n` times under new ids (the columns in `offsets` shifted)."""
    columns = [c.name for c in table.columns]
    selected = ", ".join(offsets.get(c, c) for c in columns)
    return (
        f"WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < {n}) "
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {selected} FROM {table.name}, k"
    )


def test_a_loaded_file_is_analyzed_so_that_content_files_are_read_by_id(database_url, tmp_path):
    """Without statistics SQLite may read a batch of content files by scanning the type's resources (a full
    run's reads then grow with the square of the partition): what loads a file (the sample, the benchmark's
    corpus) gathers them, since readers write nothing."""
    with sqlite3.connect(tmp_path / "content.db") as db:
        assert db.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] > 0
    shift = "{0} + n * 1000"
    execute(
        database_url,
        _copies(tables.learning_resource, {"id": shift.format("id"), "readable_id": "readable_id || '-' || n"}),
        _copies(tables.run, {"id": shift.format("id"), "learning_resource_id": shift.format("learning_resource_id")}),
        _copies(
            tables.content_file,
            {
                "id": shift.format("id"),
                "run_id": shift.format("run_id"),
                "learning_resource_id": shift.format("learning_resource_id"),
            },
        ),
    )
    analyze_sqlite(sa.create_engine(database_url))
    with ContentDatabase(database_url).reader("course") as reader:
        files = list(reader.list_content_files())
        assert len(files) == 3 * 101 and len(reader.content_files([f["id"] for f in files[:100]])) == 100
    assert "SEARCH cf USING INTEGER PRIMARY KEY" in _plan_of_reading_files_by_id(tmp_path / "content.db")


def test_reading_a_content_database_writes_nothing_into_it(database_url, tmp_path):
    """Every read a run or the sensor makes leaves the file byte for byte as it was; a file with no tables
    is named as such and stays empty."""
    path = tmp_path / "content.db"
    before = path.read_bytes()
    database = ContentDatabase(database_url)
    database.change_marker(), database.fingerprints(), database.unembeddable(["course"])
    with database.reader("course") as reader:
        files = list(reader.list_content_files())
        assert reader.content_files([f["id"] for f in files]) and list(reader.list_resources())
    assert path.read_bytes() == before
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(ContentSourceError, match="no such table"):
        ContentDatabase(f"sqlite:///{empty}").unembeddable(["course"])
    assert empty.stat().st_size == 0


def test_a_sqlite_file_opened_read_only_is_read(database_url, tmp_path):
    read_only = f"sqlite:///file:{tmp_path / 'content.db'}?mode=ro&uri=true"
    with ContentDatabase(read_only).reader("course") as reader:
        assert len(list(reader.list_resources())) == 8


def test_loading_the_sample_twice_keeps_one_copy(database_url):
    assert load_sample_data(database_url) == (44, 15)
    assert load_sample_data(database_url, replace=True) == (44, 15)


# A schema of one's own, as this project's earlier versions read it, served by queries returning the
# documented columns (README: "Pointing it at your own tables").
OLD_SCHEMA = [
    "CREATE TABLE learning_resources (id INTEGER PRIMARY KEY, readable_id TEXT, platform TEXT, resource_type TEXT, "
    "title TEXT, description TEXT, topics TEXT, published BOOLEAN, updated_on TIMESTAMP)",
    "CREATE TABLE content_files (id INTEGER PRIMARY KEY, resource_id INTEGER, run_readable_id TEXT, key TEXT, "
    "content TEXT, checksum TEXT, published BOOLEAN, updated_on TIMESTAMP)",
    "INSERT INTO learning_resources VALUES (1, '18.06', 'ocw', 'course', 'Linear Algebra', 'Matrices.', "
    "'[\"Mathematics\"]', 1, '2024-01-01'), (2, '8.04', 'ocw', 'course', 'Quantum Physics', '', '[]', 0, NULL)",
    "INSERT INTO content_files VALUES (1, 1, 'fall', 'notes.md', '# Notes', 'c1', 1, '2024-01-01')",
]
OLD_QUERIES = Queries(
    resources="SELECT id, readable_id, platform AS platform_code, resource_type, title, description, topics, "
    "published, updated_on FROM learning_resources WHERE resource_type = :resource_type",
    content_files="SELECT cf.id, cf.resource_id, cf.run_readable_id, cf.key, cf.content, cf.checksum, cf.published, "
    "cf.updated_on FROM content_files cf JOIN learning_resources lr ON lr.id = cf.resource_id "
    "WHERE lr.resource_type = :resource_type",
    changes="SELECT (SELECT COUNT(*) || ':' || SUM(julianday(updated_on)) FROM learning_resources), "
    "(SELECT COUNT(*) || ':' || SUM(julianday(updated_on)) FROM content_files)",  # as README's example
    fingerprint="SELECT resource_type, COUNT(*), SUM(id), SUM(julianday(updated_on)) FROM learning_resources "
    "GROUP BY resource_type",
)


def test_queries_of_ones_own_read_another_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'own.db'}"
    execute(url, *OLD_SCHEMA)
    database = ContentDatabase(url, OLD_QUERIES)
    with database.reader("course") as reader:
        (resource,) = reader.list_resources()  # 8.04 is not published
        assert (resource["platform_code"], resource["topics"]) == ("ocw", '["Mathematics"]')
        (file,) = reader.list_content_files()
        assert reader.content_files([file["id"]])[1]["content"] == "# Notes"
        assert reader.holds_no_resources() is False
    assert database.fingerprints().keys() == {"course"} and database.change_marker()


def test_a_query_missing_a_column_it_must_return_names_it(database_url):
    source = ContentDatabase(
        database_url,
        Queries(resources=f"SELECT id, title FROM {T}learningresource WHERE resource_type = :resource_type"),
    )
    with (
        pytest.raises(ContentSourceError, match="resources_query returned no column.*readable_id, resource_type"),
        source.reader("course") as reader,
    ):
        list(reader.list_resources())


@pytest.mark.parametrize(
    ("change", "types"),
    [
        (f"UPDATE {T}contentfile SET updated_on = '2030-01-01' WHERE key = 'lab-safety.md'", ["document"]),
        (f"UPDATE {T}learningresourceplatform SET name = 'OCW', updated_on = '2030-01-01' WHERE code = 'ocw'",
         ["course", "learning_path"]),
        (f"UPDATE {T}learningresourcetopic SET name = 'Algebra', updated_on = '2030-01-01' WHERE name = 'Linear Algebra'",
         ["course", "topics"]),
        (f"INSERT INTO {T}learningresource_topics (learningresource_id, learningresourcetopic_id) VALUES (30, 1)",
         ["video"]),
        (f"INSERT INTO {T}learningresourcerun (run_id, title, learning_resource_id, published, level, delivery, format, "
         "pace, location, duration, time_commitment, is_b2b, is_variant, created_on, updated_on) VALUES ('fall-2025', "
         "'Biology', 2, 1, '[]', '[]', '[]', '[]', '', '', '', 0, 0, '2025-09-01', '2025-09-01')", ["course"]),
        (f"UPDATE {T}learningresourceofferor SET name = 'CSAIL Alliances', updated_on = '2030-01-01' WHERE code = 'csail'",
         ["video", "video_playlist"]),
        # what a document shows of other resources: a child's or a parent's title, not the rest of its row
        (f"UPDATE {T}learningresource SET description = 'Edited.', updated_on = '2030-01-01' WHERE readable_id = 'yt-crispr'",
         ["video"]),
        (f"UPDATE {T}learningresource SET title = 'CRISPR', updated_on = '2030-01-01' WHERE readable_id = 'yt-crispr'",
         ["learning_path", "video", "video_playlist"]),  # in a learning path and a playlist
        (f"INSERT INTO {T}learningresourcerelationship (created_on, updated_on, position, relation_type, child_id, "
         f"parent_id) SELECT '2030-01-01', '2030-01-01', 0, 'PLAYLIST_VIDEOS', c.id, p.id FROM {T}learningresource c, "
         f"{T}learningresource p WHERE c.readable_id = 'yt-sourdough' AND p.readable_id = 'pl-spanish'",
         ["video", "video_playlist"]),
        (f"UPDATE {T}learningresourcerelationship SET position = 5 WHERE position = 0 AND parent_id = "
         f"(SELECT id FROM {T}learningresource WHERE readable_id = 'pl-intro-chemistry')", ["video", "video_playlist"]),
        (f"UPDATE {T}learningresourceimage SET alt = 'A network', updated_on = '2030-01-01' "
         "WHERE url LIKE '%neural-networks.jpg'", ["video"]),
        (f"UPDATE {T}video SET transcript = 'New words.', updated_on = '2030-01-01' WHERE learning_resource_id = "
         f"(SELECT id FROM {T}learningresource WHERE readable_id = 'yt-neural-networks')", ["video"]),
        ("UPDATE channels_channel SET published = 0, updated_on = '2030-01-01' WHERE name = 'physics'",
         ["course", "podcast_episode"]),  # the resources with the topic Physics show its channel's URL
        (f"INSERT INTO {T}learningresourceviewevent (created_on, updated_on, event_date, learning_resource_id) "
         f"SELECT '2030-01-01', '2030-01-01', '2030-01-01', id FROM {T}learningresource WHERE readable_id = 'ocw-8.04'",
         ["course"]),  # its views are counted from its view events: it has no view count
        (f"UPDATE {T}learningresource SET view_count = 99 WHERE readable_id = 'ocw-18.06'", ["course"]),
    ],
)  # fmt: skip
def test_the_sensors_marker_moves_with_any_change_and_the_fingerprints_name_the_types_it_touches(
    database_url, change, types
):
    database = ContentDatabase(database_url)
    marker, fingerprints = database.change_marker(), database.fingerprints()
    assert database.change_marker() == marker and len(fingerprints) == 8 + 1  # the types and the topics
    execute(database_url, change)
    changed = database.fingerprints()
    assert database.change_marker() != marker
    assert [t for t in fingerprints if fingerprints[t] != changed[t]] == types


def test_a_missing_sqlite_file_is_named_and_never_created(tmp_path):
    missing = tmp_path / "nowhere.db"
    with pytest.raises(ContentSourceError, match=f"CONTENT_DATABASE_URL=sqlite:///{missing}: no database file"):
        ContentDatabase(f"sqlite:///{missing}").change_marker()
    assert not missing.exists()


def test_a_server_that_refuses_connections_is_tried_again_and_its_password_is_never_shown(monkeypatch, caplog):
    """A refused connection may be a server restarting: tried again after each pause (shortened here), said
    each time, then one error; none of it shows the password."""
    monkeypatch.setattr(database_module, "RECONNECT_AFTER", (0.01, 0.02))
    with pytest.raises(ContentSourceError) as error:
        ContentDatabase("postgresql://reader:s3cret@127.0.0.1:9/content").change_marker()
    assert "s3cret" not in str(error.value) and "reader:***@127.0.0.1:9" in str(error.value)
    said = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
    assert [line.rsplit("(", 1)[1] for line in said] == ["attempt 1 of 2)", "attempt 2 of 2)"]
    assert not any("s3cret" in line for line in said)


def test_a_videos_own_files_are_listed_by_their_stamp_and_their_edit_moves_only_that_video(tmp_path):
    """The text of a resource's own files (`direct_learning_resource`) is folded into its text: a run lists
    their stamp, not their text, and reads the text only with the rows it writes."""
    url = f"sqlite:///{tmp_path / 'content.db'}"
    load_sample_data(url, samples=EVERY_SAMPLE)
    database = ContentDatabase(url)
    with database.reader("video") as reader:
        before = {r.record_key: r.fingerprint for r in list_records(reader).records.values()}
        listed = next(r for r in reader.list_resources() if r["readable_id"] == "PLnotYouTube123")
        full = reader.resources([listed["id"]])[listed["id"]]
    assert "direct_content_files" not in listed and "notYouTube123-notes" in listed["direct_content_stamp"]
    assert "representations, constraints" in full["direct_content_files"]
    fingerprints = database.fingerprints()
    execute(
        url,
        f"UPDATE {T}contentfile SET content = 'New notes.', updated_on = '2030-01-01' WHERE key = 'notYouTube123-notes'",
    )
    assert [t for t, f in database.fingerprints().items() if f != fingerprints[t]] == ["video"]
    with database.reader("video") as reader:
        after = {r.record_key: r.fingerprint for r in list_records(reader).records.values()}
    # the video and its course information; not its transcript file, whose chunks show nothing of the edit
    assert [key for key in before if before[key] != after[key]] == [
        "youtube.PLnotYouTube123", "youtube.PLnotYouTube123.course_information"
    ]  # fmt: skip
