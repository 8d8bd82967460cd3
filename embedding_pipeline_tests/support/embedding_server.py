"""A real HTTP server on 127.0.0.1 that speaks OpenAI's embeddings API and Ollama's embed API.

Vectors come from the local ONNX model, so a test can compare them with the fastembed encoder's.
On demand it answers 429 with Retry-After, 500, slowly, or 400 for inputs containing a marker;
it records what it received (inputs, their tokens, whether a key came along).
"""

import base64
import json
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from embedding_pipeline.chunking import encoding
from embedding_pipeline.resources.encoders.fastembed import FastEmbedEncoder

ENCODING = encoding("cl100k_base")


class EmbeddingServer:
    def __init__(self, model_dir, flavour: str = "openai"):
        self.flavour = flavour
        self.model = FastEmbedEncoder(
            model_name="sentence-transformers/all-MiniLM-L6-v2", model_path=str(model_dir), batch_size=32
        )
        self.faults: deque = deque()  # ("status", code, headers), ("delay", seconds) or ("reset",), one per request
        self.reject: set[str] = set()  # a request with an input containing one of these gets a 400
        self.dim: int | None = None  # cut vectors to this many numbers (a model of another dimension)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}" + ("/v1" if self.flavour == "openai" else "")

    def __enter__(self) -> "EmbeddingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def batches(self) -> list[list[str]]:
        """The inputs of every request that reached the model (not the faulted or refused ones)."""
        return [r["inputs"] for r in self.requests if r["answered"] == 200]

    def _embed(self, inputs: list[str]) -> np.ndarray:
        with self.lock:  # one ONNX session, many handler threads
            vectors = self.model.embed_batch(inputs, Counter())
        return vectors[:, : self.dim] if self.dim else vectors

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout): that is the point of a slow answer

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                record = {
                    "path": self.path,
                    "model": body.get("model"),
                    "inputs": inputs,
                    "tokens": [len(ENCODING.encode(t)) for t in inputs],
                    "authorization": self.headers.get("Authorization"),
                }
                server.requests.append(record)
                fault = server.faults.popleft() if server.faults else None
                if fault and fault[0] == "reset":
                    record["answered"] = "reset"
                    self.close_connection = True  # hang up without an answer
                    return None
                if fault and fault[0] == "delay":
                    time.sleep(fault[1])
                elif fault and fault[0] == "status":
                    record["answered"] = fault[1]
                    return self._send(fault[1], {"error": {"message": f"injected {fault[1]}"}}, fault[2])
                refused = [t for t in inputs if any(marker in t for marker in server.reject)]
                if refused:
                    record["answered"] = 400
                    message = f"Invalid input: {refused[0][:40]!r}"
                    return self._send(400, {"error": {"message": message, "type": "invalid_request_error"}})
                record["answered"] = 200
                vectors = server._embed(inputs)
                tokens = sum(record["tokens"])
                if self.path.endswith("/api/embed"):
                    answer = {"model": body["model"], "embeddings": vectors.tolist(), "prompt_eval_count": tokens}
                    return self._send(200, answer)
                as_base64 = body.get("encoding_format") == "base64"
                data = [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if as_base64 else v.tolist(),
                    }
                    for i, v in enumerate(vectors)
                ]
                usage = {"prompt_tokens": tokens, "total_tokens": tokens}
                self._send(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})

        return Handler
