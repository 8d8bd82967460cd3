"""Embeddings through LiteLLM: OpenAI in production, Ollama (or any OpenAI-compatible server) locally.

Batches are cut by an input count and a token budget, over-long texts are cut to the model's input
limit, transient failures (429, 5xx, timeouts, resets) are retried with exponential backoff and
jitter honouring Retry-After (tenacity), and a request refused because of one input is split
(`embedding.embed_distinct`) until that input is alone. A process sends up to `max_concurrent_requests`
requests at once (one per batch its runs embed), paced by the provider's rate-limit headers
(`pacing.Pacer`). LiteLLM is imported at the first request.
"""

import functools
import logging
import threading
from collections import Counter
from collections.abc import Iterator

import numpy as np
import tenacity
from pydantic import Field

from embedding_pipeline.chunking import COUNTING_ENCODING, encoding, load_litellm
from embedding_pipeline.embedding import RejectedInput
from embedding_pipeline.resources.encoders.base import DenseEncoder
from embedding_pipeline.resources.encoders.pacing import Pacer
from embedding_pipeline.settings import masked

log = logging.getLogger(__name__)


@functools.cache
def _transient() -> tuple[type[Exception], ...]:
    litellm = load_litellm()
    return (
        litellm.RateLimitError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
        litellm.APIConnectionError,
        litellm.Timeout,
    )


def _headers(error: BaseException | None) -> dict[str, str]:
    """The headers of the answer a failed request got, names in lower case (none for a timeout or a reset)."""
    response = getattr(error, "response", None)
    return {name.lower(): value for name, value in (getattr(response, "headers", None) or {}).items()}


def _retry_after(error: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After), if it said."""
    value = _headers(error).get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# The dimension each model returned in this process, and its provider's token budget as the last answer told
# it with the requests in flight (shared by the process's runs, one after another or at once), by (model,
# server, provider).
_SERVED_DIMENSIONS: dict[tuple[str, str, str], int] = {}
_PACERS: dict[tuple[str, str, str], Pacer] = {}
_PROBING = threading.Lock()


class LiteLLMEncoder(DenseEncoder):
    """A dense model behind LiteLLM. `model_name` is LiteLLM's (e.g. `text-embedding-3-small`)."""

    stat_names = ("requests", "retries", "rate_limited", "texts_truncated")
    token_limited = True

    batch_size: int = Field(description="Most inputs per request (LITELLM_BATCH_MAX_INPUTS; OpenAI allows 2048).")
    batch_max_tokens: int = Field(description="Most tokens per request (LITELLM_BATCH_MAX_TOKENS; OpenAI allows 300k).")
    max_input_tokens: int = Field(description="Longer texts are cut to this many tokens (LITELLM_MAX_INPUT_TOKENS).")
    token_encoding_name: str = Field(description="tiktoken encoding that counts tokens (LITELLM_TOKEN_ENCODING_NAME).")
    api_base: str = Field(default="", description="Server URL for a self-hosted model (Ollama, vLLM, ...).")
    custom_provider: str = Field(default="", description="LiteLLM provider for api_base, e.g. 'ollama'.")
    api_key: str | None = Field(default=None, description="Provider API key (OPENAI_API_KEY).")
    max_retries: int = Field(default=6, description="Retries of a transient failure before the step fails.")
    backoff_seconds: float = Field(default=1.0, description="First retry delay; doubles each time, with jitter.")
    max_backoff_seconds: float = Field(default=60.0, description="Longest delay between retries.")
    request_timeout: float = Field(default=120.0, description="Seconds before a request counts as timed out.")
    max_concurrent_requests: int = Field(
        default=8, description="Requests in flight at once (LITELLM_MAX_CONCURRENT_REQUESTS)."
    )

    @classmethod
    def from_settings(cls, settings) -> "LiteLLMEncoder":
        from embedding_pipeline.resources import secret_env

        return cls(
            model_name=settings.qdrant_dense_model,
            batch_size=settings.litellm_batch_max_inputs,
            batch_max_tokens=settings.litellm_batch_max_tokens,
            max_input_tokens=settings.litellm_max_input_tokens,
            token_encoding_name=settings.token_encoding_name or COUNTING_ENCODING,
            api_base=settings.litellm_api_base,
            custom_provider=settings.litellm_custom_provider,
            api_key=secret_env("OPENAI_API_KEY"),
            max_concurrent_requests=settings.litellm_max_concurrent_requests,
        )

    @property
    def concurrency(self) -> int:
        return self.max_concurrent_requests

    @property
    def source(self) -> str:
        return super().source + (f" at LITELLM_API_BASE={masked(self.api_base)}" if self.api_base else "")

    def _tokens(self, text: str) -> list[int]:
        return encoding(self.token_encoding_name).encode(text, disallowed_special=())

    @property
    def dim(self) -> int:
        """What the server returned last in this process; before any answer, LiteLLM's model info when it knows
        the model, else one embedding call (a run waits for it before its first batch: once per process, not
        once per partition)."""
        with _PROBING:  # partitions embedded side by side ask at once: one probe
            if self._served_by not in _SERVED_DIMENSIONS:
                try:
                    dimension = int(load_litellm().get_model_info(self.model_name)["output_vector_size"])
                except Exception:
                    dimension = len(self._request(["dimension probe"], 2, Counter())[0])
                _SERVED_DIMENSIONS.setdefault(self._served_by, dimension)
        return _SERVED_DIMENSIONS[self._served_by]

    @property
    def _served_by(self) -> tuple[str, str, str]:
        return self.model_name, self.api_base, self.custom_provider

    @property
    def _pacer(self) -> Pacer:
        return _PACERS.setdefault(self._served_by, Pacer(self.max_concurrent_requests))

    def batches(self, texts: list[str]) -> Iterator[list[str]]:
        batch: list[str] = []
        tokens = 0
        for text in texts:
            size = min(len(self._tokens(text)), self.max_input_tokens)
            if batch and (len(batch) >= self.batch_size or tokens + size > self.batch_max_tokens):
                yield batch
                batch, tokens = [], 0
            batch.append(text)
            tokens += size
        if batch:
            yield batch

    def embed_batch(self, texts: list[str], stats: Counter) -> np.ndarray:
        cut, size = [], 0
        for text in texts:
            tokens = self._tokens(text)
            if len(tokens) > self.max_input_tokens:
                stats["texts_truncated"] += 1
                tokens = tokens[: self.max_input_tokens]
                text = encoding(self.token_encoding_name).decode(tokens)
            cut.append(text)
            size += len(tokens)
        vectors = self._request(cut, size, stats)
        _SERVED_DIMENSIONS[self._served_by] = vectors.shape[1]  # what the server returns wins over model info
        return vectors

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Retry-After when the server says it; else exponential backoff with jitter (half to all of it)."""
        asked = _retry_after(state.outcome.exception() if state.outcome else None)
        backoff = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (state.attempt_number - 1))
        return asked if asked is not None else tenacity.wait_random(backoff / 2, backoff)(state)

    def _request(self, texts: list[str], tokens: int, stats: Counter) -> np.ndarray:
        """One embedding request of `tokens` tokens, paced and retried."""
        litellm = load_litellm()

        def retrying(state: tenacity.RetryCallState) -> None:
            stats["retries"] += 1
            log.warning(
                "%s from %s (attempt %d of %d); retrying in %.1fs",
                type(state.outcome.exception()).__name__, self.model_name, state.attempt_number,
                self.max_retries + 1, state.next_action.sleep,
            )  # fmt: skip

        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_transient()),
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            before_sleep=retrying,
            reraise=True,
        ):
            with attempt:
                stats["requests"] += 1
                self._pacer.acquire(tokens)
                try:
                    response = litellm.embedding(
                        model=self.model_name, input=texts, api_base=self.api_base or None,
                        api_key=(self.api_key or "").strip() or None, custom_llm_provider=self.custom_provider or None,
                        timeout=self.request_timeout,
                    )  # fmt: skip
                except Exception as error:
                    if isinstance(error, litellm.RateLimitError):
                        stats["rate_limited"] += 1
                    self._pacer.answered(tokens, _headers(error), _retry_after(error))
                    if isinstance(error, litellm.BadRequestError):
                        raise RejectedInput(f"refused by {self.model_name}: {error.message[:300]}") from None
                    raise
                self._pacer.answered(tokens, getattr(response, "_response_headers", None))
        return np.array([item["embedding"] for item in response.data], dtype=np.float32)
