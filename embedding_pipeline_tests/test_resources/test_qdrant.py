"""The Qdrant resource: the embedded store is shared by taking turns, and collections keep their shape."""

import subprocess
import sys
import time

import pytest
from qdrant_client import QdrantClient

from embedding_pipeline.resources.qdrant import QdrantResource, ensure_collection

HOLD = "import sys, time; from qdrant_client import QdrantClient; c = QdrantClient(path=sys.argv[1]); print('open', flush=True); time.sleep(float(sys.argv[2]))"


def _hold_folder(path, seconds: float) -> subprocess.Popen:
    """Another process (a run, a search) with the embedded store open."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    return holder


def test_a_busy_embedded_store_is_waited_for(tmp_path):
    holder = _hold_folder(tmp_path, 3)
    started = time.monotonic()
    with QdrantResource(path=str(tmp_path)).get_client() as client:
        assert client.get_collections().collections == []
    assert time.monotonic() - started > 1.5
    holder.wait()


def test_waiting_has_a_limit_with_a_clear_error(tmp_path):
    holder = _hold_folder(tmp_path, 10)
    try:
        with pytest.raises(RuntimeError, match="already accessed"):
            with QdrantResource(path=str(tmp_path), lock_wait_seconds=1).get_client():
                pass
    finally:
        holder.kill()


def test_a_collection_of_another_dimension_fails_with_both_named(tmp_path):
    client = QdrantClient(path=str(tmp_path))
    ensure_collection(client, "c", "resources", "all-MiniLM-L6-v2", 384, "bm25", True)
    assert not ensure_collection(client, "c", "resources", "all-MiniLM-L6-v2", 384, "bm25", True)
    with pytest.raises(ValueError, match=r"'all-MiniLM-L6-v2': 384.*'all-MiniLM-L6-v2' of dimension 768"):
        ensure_collection(client, "c", "resources", "all-MiniLM-L6-v2", 768, "bm25", True)
    client.close()
