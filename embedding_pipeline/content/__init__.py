"""The content database: its schema, the default SQL, and reading it (SQLAlchemy Core, no Dagster)."""

from embedding_pipeline.content.database import (
    UNREADABLE,
    ContentDatabase,
    ContentReader,
    ContentSourceError,
    masked_url,
)
from embedding_pipeline.content.schema import Queries

__all__ = ["UNREADABLE", "ContentDatabase", "ContentReader", "ContentSourceError", "Queries", "masked_url"]
