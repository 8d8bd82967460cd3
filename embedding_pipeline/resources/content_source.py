"""The content database as a Dagster resource: its URL and queries as configuration, read through
`embedding_pipeline.content.ContentDatabase`."""

import dagster as dg
from pydantic import Field

from embedding_pipeline.content import ContentDatabase, Queries


class ContentSource(dg.ConfigurableResource):
    """Reads one resource type's published resources and content files from any SQLAlchemy database.

    Production databases whose tables differ give their own queries: each takes the `:resource_type`
    parameter and returns the columns of the default query.
    """

    database_url: str = Field(description="SQLAlchemy URL of the content database (CONTENT_DATABASE_URL).")
    batch_size: int = Field(
        description="Records read, chunked, embedded and written together (QDRANT_CHUNK_SIZE): the unit of "
        "progress a failed run resumes after, and of the memory a run needs.",
    )
    resources_query: str = Field(
        default="", description="SQL returning the published learning resources of :resource_type; empty: built in."
    )
    content_files_query: str = Field(
        default="",
        description="SQL returning the published content files of the resources of :resource_type; empty: built in.",
    )
    changes_query: str = Field(
        default="",
        description="SQL returning one row that changes whenever any content is added, edited, deleted or "
        "unpublished; empty: built in.",
    )
    fingerprint_query: str = Field(
        default="",
        description="SQL returning rows whose first column is a resource type and that change when the type's "
        "content does; empty: built in.",
    )

    app_base_url: str = Field(
        default="",
        description="mit-learn's front end (MITOL_APP_BASE_URL): the channel URLs of documents start with it.",
    )
    blocklisted_courses_url: str = Field(
        default="",
        description="mit-learn's course blocklist (BLOCKLISTED_COURSES_URL): courses whose readable id it lists, and "
        "their content files, are not embedded; empty: none.",
    )

    def database(self) -> ContentDatabase:
        queries = Queries(self.resources_query, self.content_files_query, self.changes_query, self.fingerprint_query)
        return ContentDatabase(self.database_url, queries, self.app_base_url, self.blocklisted_courses_url)
