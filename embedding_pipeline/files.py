"""Files and folders that appear whole or not at all: written beside their place, then renamed into it."""

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _staging(path: Path) -> Path:
    """A hidden name beside `path` (the embedded store ignores and clears names starting with a dot)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A file to write `path`'s new content into; it replaces `path` in one rename once the block ends.

    A reader sees the old file or the new one, and a process killed half-way leaves the old one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging(path)
    try:
        with open(staging, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        staging.replace(path)
    finally:
        staging.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """A folder to fill; renamed to `path` once the block ends, and removed if the block fails.

    A folder already at `path` is an error (the rename fails) unless `replace` removes it first.
    """
    path = Path(path)
    staging = _staging(path)
    staging.mkdir(parents=True)
    try:
        yield staging
        if replace:
            shutil.rmtree(path, ignore_errors=True)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
