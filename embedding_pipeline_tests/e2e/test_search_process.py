"""A process that searches again and again (`search` used as a library, a service) keeps the embedded store open
between queries, and gives it up within a second to a run that asks for it; its next query sees the run's work."""

import json
import os
import subprocess
import sys
import time

from embedding_pipeline.content import tables
from embedding_pipeline.search import search, similar

# Another process opening the embedded store, as a run does: how long it waited for it.
OPEN_AND_TIME = """
import json, sys, time
from embedding_pipeline.vector_store.edge import EdgeStore
started = time.monotonic()
store = EdgeStore(sys.argv[1], purpose="a run", wait_seconds=30)
print(json.dumps({"waited": time.monotonic() - started}), flush=True)
store.close()
"""


def _holder(lock_file) -> int:
    return json.loads(lock_file.read_text())["pid"]


def test_searches_keep_the_store_open_and_hand_it_to_a_run_within_a_second(pipeline):
    pipeline.materialize("document")
    resources = pipeline.resources
    ask = (resources["qdrant"], resources["dense_encoder"], resources["sparse_encoder"])
    for query in ("open data portals", "lab safety goggles", "writing a clear paragraph"):
        assert search(*ask, query, limit=3)
    lock_file = pipeline.settings.qdrant_path / "store.lock"
    assert _holder(lock_file) == os.getpid()  # still held between queries

    opened = subprocess.run(
        [sys.executable, "-c", OPEN_AND_TIME, str(pipeline.settings.qdrant_path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(opened.stdout)["waited"] < 1.0

    # A run (this time in-process) adds a document; the next query finds it.
    pipeline.insert(
        tables.learning_resource,
        {"id": 8800, "readable_id": "doc-beekeeping-hives", "platform_id": "library", "resource_type": "document",
         "title": "Moving beehives in winter", "description": "How to move a beehive in the cold months."},
    )  # fmt: skip
    pipeline.materialize("document")
    started = time.monotonic()
    (best,) = search(*ask, "moving beehives in winter", limit=1)
    assert best["readable_id"] == "doc-beekeeping-hives" and time.monotonic() - started < 30
    assert similar(resources["qdrant"], resources["dense_encoder"], "library.doc-beekeeping-hives", limit=1)
