"""The sample content written by the team, and its loader into any SQLAlchemy database."""

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from embedding_pipeline.content.schema import content_files, learning_resources, metadata

HERE = Path(__file__).parent
SAMPLE_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def sample_rows() -> tuple[list[dict], list[dict]]:
    """(learning_resources rows, content_files rows) of the sample, with ids and checksums."""
    resources, files = [], []
    for number, entry in enumerate(json.loads((HERE / "resources.json").read_text()), start=1):
        when = SAMPLE_EPOCH + timedelta(days=number)
        resource = {k: v for k, v in entry.items() if k != "content_files"}
        resources.append({"id": number, "published": True, "created_on": when, "updated_on": when, **resource})
        for file in entry["content_files"]:
            content = file.get("content") or (HERE / "files" / file["file"]).read_text()
            row = {k: v for k, v in file.items() if k != "file"}
            files.append(
                {
                    "id": len(files) + 1,
                    "resource_id": number,
                    "published": True,
                    "url": f"{entry['url']}/{file['key']}",
                    "updated_on": when,
                    **row,
                    "content": content,
                    "checksum": hashlib.sha256(content.encode()).hexdigest(),
                }
            )
    return resources, files


def load_sample_data(database_url: str, replace: bool = False) -> tuple[int, int]:
    """Create the schema and load the sample; an already filled database is left alone unless `replace`.

    Returns the number of (resources, content files) the database then holds.
    """
    engine = sa.create_engine(database_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            has_rows = _count(conn, learning_resources)
            if has_rows and replace:
                conn.execute(content_files.delete())
                conn.execute(learning_resources.delete())
            if not has_rows or replace:
                resources, files = sample_rows()
                conn.execute(learning_resources.insert(), resources)
                conn.execute(content_files.insert(), files)
            return _count(conn, learning_resources), _count(conn, content_files)
    finally:
        engine.dispose()


def _count(conn: sa.Connection, table: sa.Table) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
