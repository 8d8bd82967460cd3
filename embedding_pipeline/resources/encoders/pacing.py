"""Pacing requests to a provider by what its answers say of its limits, so that concurrent requests use a
tokens-per-minute limit without piling up 429s.

OpenAI (and LiteLLM's proxy, Azure, vLLM behind a gateway) answer with `x-ratelimit-limit-tokens`,
`x-ratelimit-remaining-tokens` and `x-ratelimit-reset-tokens` (the time until the budget is whole again, e.g.
`6m0s`, `1.5s`, `120ms`); the budget refills evenly over that time. A request is held back until the budget,
less the tokens of requests still in flight, covers it. A 429 holds every request back for its Retry-After.
Answers overtake one another (a long request answered after a short later one): the budget an answer states
is taken only where it is lower than the running estimate, never to raise it.
A provider that sends none of these is not paced (its 429s are retried, as before). Whatever the budget, at most
`slots` requests (LITELLM_MAX_CONCURRENT_REQUESTS) are in flight from one process, however many runs it executes.
"""

import math
import re
import threading
import time
from collections.abc import Mapping

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str | None) -> float | None:
    """Seconds in one of OpenAI's reset durations (`6m0s`, `1.5s`, `120ms`) or a plain number; None if unreadable."""
    if not text:
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if parts and "".join(value + unit for value, unit in parts) == text.strip():
        return sum(float(value) * _UNITS[unit] for value, unit in parts)
    try:
        return float(text)
    except ValueError:
        return None


def _number(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, TypeError, ValueError):
        return None


class Pacer:
    """The provider's token budget as its last answer told it, shared by the requests of one encoder."""

    def __init__(self, slots: int) -> None:
        self._changed = threading.Condition()
        self._slots, self._requests = slots, 0  # requests in flight at most, and now
        self._in_flight = 0  # tokens of requests sent and not answered yet
        self._remaining: float | None = None  # tokens left, as of `_seen`
        self._limit = math.inf
        self._refill = 0.0  # tokens per second
        self._seen = 0.0
        self._paused_until = 0.0  # a 429's Retry-After, for every request

    def _available(self, now: float) -> float:
        if self._remaining is None:
            return math.inf
        return min(self._limit, self._remaining + (now - self._seen) * self._refill) - self._in_flight

    def acquire(self, tokens: int) -> None:
        """Wait for a free slot and until the budget covers a request of `tokens` (a request larger than the whole
        budget waits until nothing else is in flight and the budget is whole), then count it as in flight."""
        with self._changed:
            while True:
                now = time.monotonic()
                wait = self._paused_until - now
                if wait <= 0 and self._requests >= self._slots:
                    wait = 5.0  # until an answer frees a slot
                elif wait <= 0:
                    short = min(tokens, self._limit) - self._available(now)
                    if short <= 0 or (self._refill <= 0 and not self._in_flight):  # nothing would tell us more
                        break
                    wait = short / self._refill if self._refill > 0 else 1.0
                self._changed.wait(timeout=min(wait, 5.0))  # an answer may change the budget sooner
            self._in_flight += tokens
            self._requests += 1

    def answered(self, tokens: int, headers: Mapping[str, str] | None, retry_after: float | None = None) -> None:
        """A request of `tokens` was answered (or failed) with these headers; a 429's Retry-After pauses all."""
        now = time.monotonic()
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        with self._changed:
            self._in_flight -= tokens
            self._requests -= 1
            if retry_after is not None:
                self._paused_until = max(self._paused_until, now + retry_after)
            remaining = _number(headers, "x-ratelimit-remaining-tokens")
            if remaining is not None:
                limit = _number(headers, "x-ratelimit-limit-tokens")
                reset = duration(headers.get("x-ratelimit-reset-tokens"))
                self._limit = limit if limit else self._limit
                if self._remaining is not None:  # an answer overtaken by a later one's tells of an older budget
                    remaining = min(remaining, self._available(now) + self._in_flight)
                self._remaining, self._seen = remaining, now
                if reset and math.isfinite(self._limit) and self._limit > remaining:
                    self._refill = (self._limit - remaining) / reset
            self._changed.notify_all()
