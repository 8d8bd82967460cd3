"""A real HTTP server on 127.0.0.1 that speaks OpenAI's embeddings API and Ollama's embed API.

Vectors come from the local ONNX model, so a test can compare them with the fastembed encoder's (or, for
a benchmark that must not spend the machine's CPU on the provider's work, from hashing the text's words).
On demand it answers 429 with Retry-After, 500, slowly, or 400 for inputs containing a marker, adds a provider's
numeric noise, or serves another model of the same dimension under the same name (`weights`). It can play
a provider: a latency model (`latency`: seconds per request and per 1,000 tokens) and a tokens-per-minute
limit answered as OpenAI answers it (`tokens_per_minute`: a budget refilled evenly, every answer carrying
the `x-ratelimit-*-tokens` headers, a request the budget cannot cover refused with 429 and Retry-After).
It records what it received (inputs, their tokens, whether a key came along, when it came and was answered).
"""

import base64
import json
import threading
import time
import zlib
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from embedding_pipeline.chunking import encoding
from embedding_pipeline.resources.encoders.fastembed import FastEmbedEncoder

ENCODING = encoding("cl100k_base")
HASHED_DIM = 384


class TokenBudget:
    """OpenAI's tokens-per-minute limit: a budget of `per_minute` tokens, refilled evenly over a minute."""

    def __init__(self, per_minute: int):
        self.limit, self.rate = per_minute, per_minute / 60
        self.level, self.at = float(per_minute), time.monotonic()
        self.lock = threading.Lock()

    def take(self, tokens: int) -> tuple[float | None, dict[str, str]]:
        """(None, headers) when the budget covered the request, else (seconds until it would, headers)."""
        with self.lock:
            now = time.monotonic()
            self.level = min(self.limit, self.level + (now - self.at) * self.rate)
            self.at = now
            short = min(tokens, self.limit) - self.level
            if short <= 0:
                self.level -= tokens
            headers = {
                "x-ratelimit-limit-tokens": str(self.limit),
                "x-ratelimit-remaining-tokens": str(max(0, int(self.level))),
                "x-ratelimit-reset-tokens": _openai_duration((self.limit - self.level) / self.rate),
            }
            return (short / self.rate if short > 0 else None), headers


def _openai_duration(seconds: float) -> str:
    """As OpenAI writes its reset times: `120ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes:.0f}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


class EmbeddingServer:
    def __init__(
        self, model_dir, flavour: str = "openai", latency: tuple[float, float] = (0.0, 0.0),
        tokens_per_minute: int | None = None, hashed: bool = False,
    ):  # fmt: skip
        self.flavour = flavour
        self.latency = latency  # seconds per request, and per 1,000 tokens
        self.budget = TokenBudget(tokens_per_minute) if tokens_per_minute else None
        self.hashed = hashed  # vectors from the words' hashes: no model, no CPU
        self.model = None if hashed else FastEmbedEncoder(
            model_name="sentence-transformers/all-MiniLM-L6-v2", model_path=str(model_dir), batch_size=32
        )  # fmt: skip
        self.faults: deque = deque()  # ("status", code, headers), ("delay", seconds) or ("reset",), one per request
        self.reject: set[str] = set()  # a request with an input containing one of these gets a 400
        self.dim: int | None = None  # cut vectors to this many numbers (a model of another dimension)
        self.weights = 0  # another number: another model of the same dimension, served under the same name
        self.noise = 0.0  # each answer's numbers moved by this much (a provider's batching and GPU kernels)
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
        if self.hashed:
            vectors = np.zeros((len(inputs), HASHED_DIM), dtype=np.float32)
            for row, text in enumerate(inputs):
                for word in text.lower().split():
                    vectors[row, zlib.crc32(word.encode()) % HASHED_DIM] += 1
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
        else:
            with self.lock:  # one ONNX session, many handler threads
                vectors = self.model.embed_batch(inputs, Counter())
        vectors = vectors[:, : self.dim] if self.dim else vectors
        if self.weights:  # the same numbers, mixed up: unrelated to the first model's, as another model's are
            mixed = np.random.default_rng(self.weights)
            vectors = vectors[:, mixed.permutation(vectors.shape[1])] * mixed.choice([-1.0, 1.0], vectors.shape[1])
        if self.noise:
            vectors = vectors + np.random.default_rng().normal(0, self.noise, vectors.shape)
        return vectors.astype(np.float32)

    def in_flight(self) -> tuple[int, float]:
        """The most requests answered at once, and the mean over the time any was in flight (answered ones)."""
        events = sorted(
            (t, step) for r in self.requests if "done_at" in r for t, step in ((r["at"], 1), (r["done_at"], -1))
        )
        most = level = 0
        busy = weighted = 0.0
        for (t, step), (t_next, _) in zip(events, events[1:] + events[-1:]):
            level += step
            most = max(most, level)
            if level:
                busy += t_next - t
                weighted += level * (t_next - t)
        return most, (weighted / busy if busy else 0.0)

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
                    "at": time.monotonic(),
                }
                server.requests.append(record)
                try:
                    self._answer(record, body, inputs)
                finally:
                    record["done_at"] = time.monotonic()

            def _answer(self, record: dict, body: dict, inputs: list[str]) -> None:
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
                tokens = sum(record["tokens"])
                limits = {}
                if server.budget:
                    wait, limits = server.budget.take(tokens)
                    if wait is not None:
                        record["answered"] = 429
                        message = f"Rate limit reached on tokens per min (TPM). Please try again in {wait:.3f}s."
                        error = {"message": message, "type": "tokens", "code": "rate_limit_exceeded"}
                        return self._send(429, {"error": error}, {**limits, "retry-after": f"{wait:.3f}"})
                fixed, per_thousand = server.latency
                time.sleep(fixed + per_thousand * tokens / 1000)
                record["answered"] = 200
                vectors = server._embed(inputs)
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
                self._send(200, {"object": "list", "data": data, "model": body["model"], "usage": usage}, limits)

        return Handler
