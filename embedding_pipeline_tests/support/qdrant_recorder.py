"""A stand-in for a Qdrant server's collection API on 127.0.0.1 that records what it is asked.

No Qdrant server can be installed on these machines, and qdrant-client's local mode ignores how a collection is
made (shards, replicas, strict mode, quantization). This server answers Qdrant's REST calls for making,
describing and updating collections, as a server of qdrant-client's version answers them, and keeps each request's method,
path and JSON body, so that a test sees exactly what qdrant-client sent. It stores no points: `points_count`
is set by the test, and an upsert of points is acknowledged after `upsert_seconds` and its times kept.
"""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version

OK = {"status": "ok", "time": 0.0}


def _collection_info(created: dict, points_count: int, optimizer: dict) -> dict:
    """GET /collections/{name}: what a server reports of a collection made with `created`."""
    return {
        "status": "green",
        "optimizer_status": "ok",
        "segments_count": created.get("shard_number", 1) * 2,
        "points_count": points_count,
        "indexed_vectors_count": points_count,
        "config": {
            "params": {
                "vectors": created.get("vectors", {}),
                "sparse_vectors": created.get("sparse_vectors", {}),
                "shard_number": created.get("shard_number", 1),
                "replication_factor": created.get("replication_factor", 1),
                "write_consistency_factor": 1,
                "on_disk_payload": created.get("on_disk_payload", True),
            },
            "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "on_disk": False},
            "optimizer_config": optimizer,
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": created.get("quantization_config"),
        },
        "payload_schema": {},
    }


class QdrantRecorder:
    """`with QdrantRecorder() as server:` a server at `server.url`; `server.requests` what it was asked."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict | None]] = []
        self.collections: dict[str, dict] = {}  # name → the body it was created with
        self.optimizers: dict[str, dict] = {}
        self.points_count = 0
        self.upsert_seconds = 0.0  # how long a points upsert takes to be acknowledged
        self.upserts: list[tuple[float, float, int]] = []  # (received, acknowledged, points) of each upsert
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, payload, status: int = 200) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _answer(self, result, status: int = 200) -> None:
                self.send({"result": result, **OK}, status)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path = self.path.split("?")[0]
                recorder.requests.append((self.command, path, body))
                recorder.answer(self, path, body)

            do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def answer(self, handler, path: str, body: dict | None) -> None:
        if path == "/":
            return handler.send({"title": "qdrant - vector search engine", "version": version("qdrant-client")})
        if re.fullmatch(r"/collections/[^/]+/points", path) and handler.command == "PUT":
            received = time.monotonic()
            time.sleep(self.upsert_seconds)
            self.upserts.append((received, time.monotonic(), len(body["points"])))
            return handler._answer({"operation_id": len(self.upserts), "status": "completed"})
        match = re.fullmatch(r"/collections(?:/([^/]+))?(/exists|/index)?", path)
        if not match:
            return handler._answer({"error": f"not served here: {path}"}, 404)
        name, tail = match.groups()
        if name is None:
            return handler._answer({"collections": [{"name": n} for n in self.collections]})
        if tail == "/exists":
            return handler._answer({"exists": name in self.collections})
        if tail == "/index":
            return handler._answer({"operation_id": 1, "status": "completed"})
        if handler.command == "PUT":
            self.collections[name] = body
            self.optimizers[name] = {
                "deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
                "indexing_threshold": 10000, "flush_interval_sec": 5, "max_optimization_threads": None,
                **(body.get("optimizers_config") or {}),
            }  # fmt: skip
            return handler._answer(True)
        if handler.command == "PATCH":
            self.optimizers[name].update(body.get("optimizers_config") or {})
            return handler._answer(True)
        if handler.command == "DELETE":
            return handler._answer(self.collections.pop(name, None) is not None)
        if name not in self.collections:
            return handler._answer({"error": f"Collection `{name}` doesn't exist!"}, 404)
        return handler._answer(_collection_info(self.collections[name], self.points_count, self.optimizers[name]))

    def __enter__(self) -> "QdrantRecorder":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def made(self, name: str) -> dict:
        """The body collection `name` was created with."""
        return self.collections[name]
