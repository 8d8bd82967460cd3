"""The old `generate_embeddings` flags on `embedding-pipeline embed`, run as a user runs them (a new process)."""

import subprocess
import sys
import uuid
from pathlib import Path

from embedding_pipeline.cli import embed_run_config
from embedding_pipeline.mit_learn import OWN
from embedding_pipeline.partitions import PARTITIONS
from embedding_pipeline.vector_store import Point


def embed(*flags: str) -> subprocess.CompletedProcess:
    """`embedding-pipeline embed FLAGS` in the pipeline's environment (the fixture set it)."""
    command = [str(Path(sys.executable).with_name("embedding-pipeline")), "embed", *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def point_hashes(pipeline, kind: str, **filters) -> dict[str, str]:
    return {pid: payload[OWN]["point_hash"] for pid, payload in pipeline.points(kind, **filters).items()}


def test_skip_contentfiles_reembeds_the_resources_and_leaves_every_content_file_point_as_it_is(pipeline):
    pipeline.materialize("course")
    files_before = point_hashes(pipeline, "content_files", file_type="course_metadata")
    files_before = {k: v for k, v in point_hashes(pipeline, "content_files").items() if k not in files_before}
    pipeline.execute("UPDATE {T}learningresource SET title = 'Linear Algebra, revised' WHERE readable_id = 'ocw-18.06'")
    pipeline.execute("UPDATE {T}contentfile SET content = 'Rewritten.' WHERE key = 'syllabus.md'")
    pipeline.execute("DELETE FROM {T}contentfile WHERE key = 'lecture-notes-photosynthesis.txt'")

    done = embed("--courses", "--skip-contentfiles", "--overwrite")
    assert done.stdout.splitlines()[0].startswith("course: ok")
    titles = {p["readable_id"]: p["title"] for p in pipeline.points("resources", resource_type="course").values()}
    assert titles["ocw-18.06"] == "Linear Algebra, revised"
    information = point_hashes(pipeline, "content_files", file_type="course_metadata")
    files = {k: v for k, v in point_hashes(pipeline, "content_files").items() if k not in information}
    assert files == files_before  # not rewritten, not deleted
    # the resources' course information is written with them, as mit-learn's resource task writes it
    (revised,) = pipeline.points("content_files", key="ocw.ocw-18.06.course_metadata").values()
    assert "Linear Algebra, revised" in revised["chunk_content"]


def test_resource_ids_embeds_exactly_those_resources_with_their_files_and_names_the_ones_not_found(pipeline):
    ids = {row[1]: row[0] for row in pipeline.rows("SELECT id, readable_id FROM {T}learningresource")}
    chosen = [ids["ocw-18.06"], ids["yt-neural-networks"]]
    done = embed("--resource-ids", f"{chosen[0]},{chosen[1]},99999")
    assert "Not found among the published resources" in done.stdout and "99999" in done.stdout
    assert [line.split(":")[0] for line in done.stdout.splitlines()[1:]] == ["course", "video"]  # only their partitions
    resources = {p["readable_id"] for p in pipeline.points("resources").values()}
    files = {p["resource_readable_id"] for p in pipeline.points("content_files").values()}
    assert resources == {"ocw-18.06", "yt-neural-networks"} and files == resources


def test_recreate_collections_all_drops_the_collections_and_fills_them_again(pipeline):
    pipeline.materialize_all()
    counts = (pipeline.count("resources"), pipeline.count("content_files"))
    pipeline.execute("DELETE FROM {T}contentfile WHERE key = 'open-data.txt'")
    some_point = next(iter(pipeline.points("resources")))
    with pipeline.store() as store:  # a point nothing in the source owns, e.g. of a type no longer embedded
        name = pipeline.qdrant.alias("resources")
        (_, payload, vectors) = store.retrieve(name, [some_point], with_vectors=True)[0]
        store.upsert(
            name,
            [
                Point(
                    str(uuid.uuid4()),
                    vectors,
                    {**payload, "resource_type": "article", OWN: {**payload[OWN], "resource_type": "article"}},
                )
            ],
        )
    assert pipeline.count("resources") == counts[0] + 1

    done = embed("--recreate-collections", "--all")
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == PARTITIONS
    assert "Dropped resource_embeddings.resources" in done.stderr
    assert pipeline.count("resources") == counts[0] and 0 < pipeline.count("content_files") < counts[1]
    assert pipeline.count("resources", resource_type="article") == 0


def test_each_flag_is_run_config_of_the_embed_job():
    """What the CLI passes is what the launchpad, `dagster job execute --config` and `asset materialize --config` take."""
    config = embed_run_config(overwrite=True, resource_ids=[3, 4], skip_content_files=True)
    assert config["resources"] == {
        "embed_options": {"config": {"force_reembed": True, "resource_ids": [3, 4], "skip_content_files": True}}
    }
