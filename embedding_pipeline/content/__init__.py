"""The content database: its tables (`tables.py`), the default SQL (`queries.py`), and reading it (SQLAlchemy Core,
no Dagster)."""

from embedding_pipeline.content.database import (
    NO_RESOURCES,
    UNREADABLE,
    ContentDatabase,
    ContentReader,
    ContentSourceError,
    masked_url,
)
from embedding_pipeline.content.queries import Queries

__all__ = [
    "NO_RESOURCES",
    "UNREADABLE",
    "ContentDatabase",
    "ContentReader",
    "ContentSourceError",
    "Queries",
    "masked_url",
]
