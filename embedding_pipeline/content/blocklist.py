"""mit-learn's course blocklist (`BLOCKLISTED_COURSES_URL`): readable ids of courses that are never embedded.

mit-learn reads it in `learning_resources.utils.load_course_blocklist` (one readable id a line) and leaves the
listed courses, and their content files, out of `generate_embeddings --all` (vector_search.tasks
`start_embed_resources`). Here it is read once per run that embeds courses (and by the sensor, which notices
when it changes), with a timeout; a blocklist that cannot be read stops the run before anything is embedded or
deleted, since without it the run would embed what mit-learn excludes.
"""

import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

from embedding_pipeline.errors import PermanentError
from embedding_pipeline.settings import masked

READ_TIMEOUT_SECONDS = 30  # mit-learn's requests to it use REQUESTS_TIMEOUT; a GitHub raw file answers in <1 s
BLOCKLISTED_TYPE = "course"  # mit-learn blocklists courses only


class BlocklistUnreadable(PermanentError):
    """BLOCKLISTED_COURSES_URL is set but cannot be read: no course is embedded or deleted until it can."""


def read_blocklist(url: str, timeout: float = READ_TIMEOUT_SECONDS) -> frozenset[str]:
    """The readable ids the blocklist at `url` (http(s)://, file://, or a path) lists; empty when `url` is empty."""
    if not url:
        return frozenset()
    try:
        scheme = urlsplit(url).scheme
        if scheme in ("http", "https"):
            with urllib.request.urlopen(url, timeout=timeout) as response:
                text = response.read().decode("utf-8")
        else:
            text = Path(unquote(urlsplit(url).path) if scheme == "file" else url).read_text(encoding="utf-8")
    except (OSError, ValueError) as error:  # URLError, HTTPError, a timeout, a missing file, not UTF-8
        raise BlocklistUnreadable(
            f"BLOCKLISTED_COURSES_URL={masked(url)} cannot be read ({error}): no course is embedded or deleted "
            "until it can (it names the courses mit-learn leaves out)"
        ) from None
    return frozenset(line.strip() for line in text.splitlines() if line.strip())
