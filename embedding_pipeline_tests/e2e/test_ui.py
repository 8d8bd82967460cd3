"""The Dagster UI in a real browser: what an operator sees after two partitions were embedded.

dagster-webserver runs on 127.0.0.1 against a Dagster home that `embedding-pipeline embed` filled
(`document`, and `video` with one broken record); Debian's Chromium, driven by Playwright, opens
it. Screenshots go to test-artifacts/ui/ (or $EMBEDDING_PIPELINE_TEST_ARTIFACTS/ui/).
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect, sync_playwright

from embedding_pipeline.partitions import PARTITIONS
from embedding_pipeline.sample_data import load_sample_data
from embedding_pipeline_tests.support.encoders import HASHING_ENCODER
from embedding_pipeline_tests.support.helpers import REPO, encoder_env, pipeline_env, stop_session, unavailable

PIPELINE_ASSETS = ["source_content", "text_chunks", "dense_vectors", "sparse_vectors", "qdrant_points"]
CHROMIUM = os.environ.get("EMBEDDING_PIPELINE_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the networking flags Chromium keeps calling Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(os.environ.get("EMBEDDING_PIPELINE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "ui"
BIN = Path(sys.executable).parent
BROKEN_RECORD = "youtube.yt-crispr: field 'title' is empty"

# What the operator must find on each asset's partition page (issue: run metadata an operator needs).
SHOWN_METADATA = {
    ("source_content", "document"): ["resources", "content_files", "fetch_seconds"],
    ("text_chunks", "video"): ["resources", "chunks", "tokens", "chunk_seconds", "failed_records"],
    ("dense_vectors", "document"): ["texts_embedded", "texts_reused", "encode_seconds", "texts_per_second"],
    ("sparse_vectors", "document"): ["texts_embedded", "texts_reused", "texts_per_second"],
    ("qdrant_points", "document"): [
        "records_new", "records_changed", "records_unchanged", "records_deleted",
        "points_upserted", "points_unchanged", "points_deleted", "upsert_seconds", "points_per_second",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def dagster_home(tmp_path_factory, model_dir):
    """A Dagster home as `embedding-pipeline setup` and `embed` leave it, with `document` and `video` embedded."""
    data = tmp_path_factory.mktemp("ui")
    env = {**os.environ, **pipeline_env(data, model_dir, **encoder_env(HASHING_ENCODER))}  # the UI is what is tested
    for name in ("CONTENT_DATABASE_URL", "QDRANT_HOST", "DAGSTER_POSTGRES_URL", "DAGSTER_POSTGRES_HOST"):
        env.pop(name, None)
    home = Path(env["DAGSTER_HOME"])
    # An operator dismisses Dagster's "join the community" dialog once; it would cover the page.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    database = f"sqlite:///{data / 'content.db'}"
    load_sample_data(database)
    engine = sa.create_engine(database)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE learning_resources_learningresource SET title = '' WHERE readable_id = 'yt-crispr'")
        )
    engine.dispose()
    embed = subprocess.run(
        [str(BIN / "embedding-pipeline"), "embed", "--partition", "document", "--partition", "video"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert embed.returncode == 0, embed.stderr[-3000:]
    return env


@pytest.fixture(scope="module")
def latest_metadata(dagster_home):
    """(asset, partition) → the metadata of its latest materialization, as stored by Dagster."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DAGSTER_HOME", dagster_home["DAGSTER_HOME"])
        with dg.DagsterInstance.get() as instance:
            found = {}
            for asset, partition in SHOWN_METADATA:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
                ).records
                assert records, f"{asset} {partition} was not materialized"
                found[(asset, partition)] = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
    return found


@pytest.fixture(scope="module")
def webserver(dagster_home):
    """dagster-webserver on a free port of 127.0.0.1, loading the project's workspace.yaml."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = Path(dagster_home["DAGSTER_HOME"]) / "webserver.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            env=dagster_home, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"dagster-webserver did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
        stop_session(server)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium under Playwright (which downloads no browser of its own)."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, webserver, request):
    """A fresh page on the webserver; its screenshot is saved when the test fails."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1600, "height": 1000}, base_url=webserver)
    page.set_default_timeout(30_000)
    yield page
    if getattr(request.node, "call_failed", False):
        page.screenshot(path=ARTIFACTS / f"FAILED-{request.node.name}.png", full_page=True)
    page.close()


def visible(page, text: str):
    """The on-screen element with exactly this text (the UI also keeps hidden copies for measuring)."""
    return page.get_by_text(text, exact=True).filter(visible=True).first


def metadata_row(page, name: str):
    """The row of the metadata table whose first cell is this entry's name."""
    return page.get_by_role("row", name=re.compile(rf"^{re.escape(name)}\b")).filter(visible=True).first


def shot(page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def test_the_asset_graph_shows_every_pipeline_asset_with_its_partitions_and_checks(page):
    page.goto("/locations/embedding_pipeline/asset-groups/embeddings")
    for asset in PIPELINE_ASSETS:
        expect(visible(page, asset)).to_be_visible(timeout=60_000)
    # Partitions and checks come in a later query than the nodes: as long a wait (one CI run took over 5 s).
    partitions = page.get_by_text("9 partitions", exact=True).filter(visible=True)
    expect(partitions).to_have_count(len(PIPELINE_ASSETS), timeout=60_000)
    expect(page.get_by_text("2 / 2 Passed").filter(visible=True)).to_have_count(1, timeout=60_000)  # qdrant_points
    expect(page.get_by_text("1 / 2 Passed").filter(visible=True)).to_have_count(1, timeout=60_000)  # the broken record
    shot(page, "asset-graph")


@pytest.mark.parametrize(("asset", "partition"), list(SHOWN_METADATA))
def test_an_asset_page_shows_the_partitions_and_the_run_metadata(page, latest_metadata, asset, partition):
    page.goto(f"/assets/{asset}?view=partitions&partition={partition}")
    expect(visible(page, "Materialized (2)")).to_be_visible(timeout=60_000)
    expect(visible(page, "Missing (7)")).to_be_visible()  # 9 partitions: the types and the topics
    for key in PARTITIONS:
        expect(visible(page, key)).to_be_visible()
    metadata = latest_metadata[(asset, partition)]
    for name in SHOWN_METADATA[(asset, partition)]:
        row = metadata_row(page, name)
        expect(row).to_be_visible()
        if isinstance(metadata[name], int):
            expect(row.locator("td").nth(1)).to_have_text(str(metadata[name]))
    shot(page, f"{asset}-{partition}")


def test_text_chunks_shows_sample_chunks_and_names_the_broken_record(page):
    page.goto("/assets/text_chunks?view=partitions&partition=video")
    table = metadata_row(page, "sample_chunks")
    expect(table).to_contain_text("youtube.yt-neural-networks")
    expect(table).to_contain_text("# Neural Networks Explained Visually")
    expect(metadata_row(page, "failures")).to_contain_text(BROKEN_RECORD)


@pytest.mark.parametrize(
    ("asset", "check", "partitions"),
    [
        ("qdrant_points", "points_match_source", "Passed (2)"),
        ("qdrant_points", "dense_dimension_matches_encoder", "Passed (2)"),
        ("text_chunks", "no_empty_chunks", "Passed (2)"),
        ("text_chunks", "no_failed_records", "Failed (1)"),  # video, with its broken record; document passed
    ],
)
def test_each_asset_check_appears_with_its_result_per_partition(page, asset, check, partitions):
    page.goto(f"/assets/{asset}?view=checks&checkDetail={check}")
    expect(page.get_by_text("Checks (2)")).to_be_visible(timeout=60_000)
    expect(visible(page, check)).to_be_visible()
    page.get_by_role("tab", name="Partitions").filter(visible=True).last.click()
    expect(visible(page, partitions)).to_be_visible()
    if check == "no_failed_records":
        expect(visible(page, "Passed (1)")).to_be_visible()
    shot(page, f"check-{asset}-{check}")
