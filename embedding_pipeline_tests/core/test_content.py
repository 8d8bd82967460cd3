"""The content source over SQLAlchemy: default queries, the user's own SQL, clear errors."""

import sqlite3

import pytest

from embedding_pipeline.content import ContentDatabase, ContentSourceError, Queries
from embedding_pipeline.content.schema import DEFAULT_CONTENT_FILES_QUERY
from embedding_pipeline.sample_data import load_sample_data


@pytest.fixture
def database_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'content.db'}"
    assert load_sample_data(url) == (44, 14)
    return url


def test_default_queries_list_the_published_records_of_one_type_then_read_them_by_id(database_url):
    with ContentDatabase(database_url).reader("course") as reader:
        resources, files = list(reader.list_resources()), list(reader.list_content_files())
        assert "title" in resources[0] and "content" not in files[0]  # a resource's fields, never a file's text
        assert len(resources) == 8 and "ocw-11.001-retired" not in {r["readable_id"] for r in resources}
        assert {f["key"] for f in files} == {
            "syllabus.md",
            "lecture-notes-photosynthesis.txt",
            "week1/getting-started.md",
        }
        assert {f["resource_id"] for f in files} <= {r["id"] for r in resources}
        rows = reader.resources([resources[0]["id"], resources[1]["id"], 999])
        assert set(rows) == {resources[0]["id"], resources[1]["id"]} and rows[resources[0]["id"]]["title"]
        (content,) = reader.content_files([files[0]["id"]]).values()
        assert len(content["content"]) > 100


def _plan_of_reading_files_by_id(path) -> str:
    """How SQLite reads a batch of 100 content files by id through the default query."""
    ids = ", ".join(map(str, range(1, 101)))
    db = sqlite3.connect(path)
    try:
        sql = f"EXPLAIN QUERY PLAN SELECT q.* FROM ({DEFAULT_CONTENT_FILES_QUERY}) AS q WHERE q.id IN ({ids})"
        return " / ".join(row[-1] for row in db.execute(sql, {"resource_type": "course"}))
    finally:
        db.close()


def test_a_sqlite_file_never_analyzed_gets_statistics_so_files_are_read_by_id(database_url, tmp_path):
    """Without statistics SQLite reads a batch of content files by scanning every resource of the type (a
    full run's reads then grow with the square of the partition); a run's reader gathers them."""
    db = sqlite3.connect(tmp_path / "content.db")  # the sample a hundred times over, under new ids
    copies = "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 100) "
    db.execute(
        copies
        + "INSERT INTO learning_resources SELECT id + n * 1000, readable_id || '-' || n, platform, resource_type, "
        "title, description, full_description, url, topics, published, created_on, updated_on FROM learning_resources, k"
    )
    db.execute(
        copies + "INSERT INTO content_files SELECT id + n * 1000, resource_id + n * 1000, run_readable_id, key, title, "
        "content, file_type, file_extension, url, checksum, published, updated_on FROM content_files, k"
    )
    db.commit()
    db.close()
    assert "SEARCH cf USING INTEGER PRIMARY KEY" not in _plan_of_reading_files_by_id(tmp_path / "content.db")
    with ContentDatabase(database_url).reader("course") as reader:
        files = list(reader.list_content_files())
        assert len(reader.content_files([f["id"] for f in files[:100]])) == 100
    assert _plan_of_reading_files_by_id(tmp_path / "content.db").startswith("SEARCH cf USING INTEGER PRIMARY KEY")


def test_a_sqlite_file_opened_read_only_is_read_as_it_is(database_url, tmp_path):
    """Statistics are not gathered where the file may not be written; nothing else changes."""
    read_only = f"sqlite:///file:{tmp_path / 'content.db'}?mode=ro&uri=true"
    with ContentDatabase(read_only).reader("course") as reader:
        assert len(list(reader.list_resources())) == 8


def test_loading_the_sample_twice_keeps_one_copy(database_url):
    assert load_sample_data(database_url) == (44, 14)
    assert load_sample_data(database_url, replace=True) == (44, 14)


def test_a_user_query_can_map_other_tables(database_url):
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE VIEW catalogue AS SELECT * FROM learning_resources"))
    source = ContentDatabase(
        database_url,
        Queries(resources="SELECT * FROM catalogue WHERE resource_type = :resource_type AND platform = 'ocw'"),
    )
    with source.reader("course") as reader:
        resources = list(reader.list_resources())
        assert {r["platform"] for r in resources} == {"ocw"} and len(resources) == 5
        assert {row["title"] for row in reader.resources([r["id"] for r in resources]).values()} > set()


def test_a_query_missing_columns_names_them(database_url):
    source = ContentDatabase(
        database_url, Queries(resources="SELECT id, title FROM learning_resources WHERE resource_type = :resource_type")
    )
    with (
        pytest.raises(ContentSourceError, match="resources_query returned no column.*readable_id"),
        source.reader("course") as reader,
    ):
        list(reader.list_resources())


def test_the_sensors_marker_moves_with_any_edit_and_fingerprints_name_the_type(database_url):
    database = ContentDatabase(database_url)
    marker, fingerprints = database.change_marker(), database.fingerprints()
    assert database.change_marker() == marker and len(fingerprints) == 8
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE content_files SET updated_on = '2030-01-01' WHERE key = 'lab-safety.md'"))
    engine.dispose()
    changed = database.fingerprints()
    assert database.change_marker() != marker
    assert [t for t in fingerprints if fingerprints[t] != changed[t]] == ["document"]


def test_a_missing_sqlite_file_is_named_and_never_created(tmp_path):
    missing = tmp_path / "nowhere.db"
    with pytest.raises(ContentSourceError, match=f"CONTENT_DATABASE_URL=sqlite:///{missing}: no database file"):
        ContentDatabase(f"sqlite:///{missing}").change_marker()
    assert not missing.exists()


def test_a_password_in_the_url_is_never_shown():
    with pytest.raises(ContentSourceError) as error:
        ContentDatabase("postgresql://reader:s3cret@127.0.0.1:9/content").change_marker()
    assert "s3cret" not in str(error.value) and "reader:***@127.0.0.1:9" in str(error.value)
