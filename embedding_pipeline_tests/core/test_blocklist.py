"""mit-learn's course blocklist (BLOCKLISTED_COURSES_URL): blocklisted courses and their content files are never
embedded, leave the collections once listed, and a blocklist that cannot be read changes nothing."""

import functools
import http.server
import threading

import pytest

from embedding_pipeline.content import ContentDatabase
from embedding_pipeline.content.blocklist import BlocklistUnreadable, read_blocklist
from embedding_pipeline.mit_learn import own

LISTED = "ocw-18.06\n\n  ocw-8.04 \r\n"  # one readable id a line, as mit-learn's file has them


@pytest.fixture
def served(tmp_path):
    """`tmp_path` served over HTTP on 127.0.0.1, as the blocklist's GitHub file is."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_blocklist_is_read_from_a_url_a_file_url_or_a_path(tmp_path, served):
    (tmp_path / "courses.txt").write_text(LISTED)
    for url in (f"{served}/courses.txt", f"file://{tmp_path / 'courses.txt'}", str(tmp_path / "courses.txt")):
        assert read_blocklist(url) == {"ocw-18.06", "ocw-8.04"}
    assert read_blocklist("") == frozenset()


@pytest.mark.parametrize("where", ["missing file", "404", "no server"])
def test_an_unreadable_blocklist_is_named_in_one_line_without_its_password(tmp_path, served, where):
    url = {
        "missing file": str(tmp_path / "nowhere.txt"),
        "404": f"{served}/nowhere.txt",
        "no server": "http://reader:s3cret@127.0.0.1:9/courses.txt",
    }[where]
    with pytest.raises(BlocklistUnreadable) as error:
        read_blocklist(url, timeout=5)
    message = str(error.value)
    assert message.startswith("BLOCKLISTED_COURSES_URL=") and "\n" not in message and "s3cret" not in message


def blocklisted(world, url: str) -> None:
    world.database = ContentDatabase(world.url, blocklist_url=url)


def points_of(world, readable_id: str) -> dict[str, list]:
    """The ids of a resource's points in each collection: its own, its files' chunks, its course information."""
    found = {}
    for kind in ("resources", "content_files"):
        found[kind] = [
            pid
            for pid, payload in world.points(kind).items()
            if payload.get("readable_id", payload.get("resource_readable_id")) == readable_id
        ]
    return found


def test_a_blocklisted_course_is_never_embedded(world, tmp_path):
    (tmp_path / "courses.txt").write_text("ocw-18.06\n")
    blocklisted(world, str(tmp_path / "courses.txt"))
    outcome = world.run("course")
    assert points_of(world, "ocw-18.06") == {"resources": [], "content_files": []}
    assert not [t for t in world.embedded() if "Linear Algebra" in t]
    assert points_of(world, "ocw-7.01")["resources"] and not outcome.report.failures


def test_a_course_blocklisted_after_it_was_embedded_leaves_with_its_files_on_the_next_run(world, tmp_path):
    world.run("course")
    before = points_of(world, "ocw-18.06")
    assert before["resources"] and len(before["content_files"]) > 3  # its files' chunks and its course information
    others = {pid for kind in ("resources", "content_files") for pid in world.points(kind)} - {
        pid for ids in before.values() for pid in ids
    }
    world.embedded()
    (tmp_path / "courses.txt").write_text("ocw-18.06\n")
    blocklisted(world, f"file://{tmp_path / 'courses.txt'}")
    outcome = world.run("course")
    assert points_of(world, "ocw-18.06") == {"resources": [], "content_files": []}
    assert {pid for kind in ("resources", "content_files") for pid in world.points(kind)} == others
    assert outcome.report.points_deleted == sum(map(len, before.values())) and world.embedded() == []
    assert outcome.verification.passed


def test_an_unreadable_blocklist_stops_the_course_run_and_changes_nothing(world, tmp_path):
    world.run("course")
    stored = {kind: world.points(kind) for kind in ("resources", "content_files")}
    world.embedded()
    world.execute("UPDATE {T}learningresource SET title = 'Linear Algebra II' WHERE readable_id = 'ocw-18.06'")
    blocklisted(world, str(tmp_path / "nowhere.txt"))
    with pytest.raises(BlocklistUnreadable, match="BLOCKLISTED_COURSES_URL="):
        world.run("course")
    assert {kind: world.points(kind) for kind in stored} == stored and world.embedded() == []
    world.run("video")  # only courses are blocklisted: the other types are embedded as ever
    assert world.points("resources", **{own("resource_type"): "video"})


def test_an_unreadable_blocklist_stops_even_a_run_that_recreates_the_collections_before_it_drops_them(world, tmp_path):
    world.run("course")
    stored = world.points("resources")
    blocklisted(world, str(tmp_path / "nowhere.txt"))
    with pytest.raises(BlocklistUnreadable):
        world.run("course", recreate_collections=True)
    assert world.points("resources") == stored
