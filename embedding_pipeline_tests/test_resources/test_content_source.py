"""The content source over SQLAlchemy: default queries, the user's own SQL, clear errors."""

import pytest

from embedding_pipeline.resources.content_source import ContentSource, ContentSourceError
from embedding_pipeline.sample_data import load_sample_data


@pytest.fixture
def database_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'content.db'}"
    assert load_sample_data(url) == (44, 14)
    return url


def test_default_queries_list_the_published_records_of_one_type_then_read_them_by_id(database_url):
    with ContentSource(batch_size=100, database_url=database_url).reader("course") as reader:
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


def test_loading_the_sample_twice_keeps_one_copy(database_url):
    assert load_sample_data(database_url) == (44, 14)
    assert load_sample_data(database_url, replace=True) == (44, 14)


def test_a_user_query_can_map_other_tables(database_url):
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE VIEW catalogue AS SELECT * FROM learning_resources"))
    source = ContentSource(
        batch_size=100,
        database_url=database_url,
        resources_query="SELECT * FROM catalogue WHERE resource_type = :resource_type AND platform = 'ocw'",
    )
    with source.reader("course") as reader:
        resources = list(reader.list_resources())
        assert {r["platform"] for r in resources} == {"ocw"} and len(resources) == 5
        assert {row["title"] for row in reader.resources([r["id"] for r in resources]).values()} > set()


def test_a_query_missing_columns_names_them(database_url):
    source = ContentSource(
        batch_size=100,
        database_url=database_url,
        resources_query="SELECT id, title FROM learning_resources WHERE resource_type = :resource_type",
    )
    with (
        pytest.raises(ContentSourceError, match="resources_query returned no column.*readable_id"),
        source.reader("course") as reader,
    ):
        list(reader.list_resources())
