"""HTTP retries with exponential backoff and ``Retry-After`` (pure policy, injectable sleep and randomness)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

#: Statuses worth another attempt: rate limited, and server-side failures.
RETRYABLE = frozenset({429, 500, 502, 503, 504})
#: The longest ``Retry-After`` honoured; a longer one fails the item instead of stalling the run.
MAX_RETRY_AFTER_S = 120.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header as seconds: delta-seconds or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class Backoff:
    """Delay before retry ``attempt`` (0-based): ``d/2 + U(0, d/2)``, ``d`` doubling from ``initial`` to ``maximum``.

    A server's ``Retry-After`` replaces the computed delay (it knows its window).
    """

    initial: float = 0.5
    maximum: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S)
        d = min(self.maximum, self.initial * (2 ** attempt))
        return d / 2 + self.rng.uniform(0, d / 2)


class RetryExhausted(Exception):
    """Every attempt failed; ``attempts`` lists what each one got."""

    def __init__(self, what: str, attempts: list[str]) -> None:
        super().__init__(f"{what}: gave up after {len(attempts)} attempts ({'; '.join(attempts)})")
        self.attempts = attempts


class HttpFailed(Exception):
    """A non-retryable answer (a 4xx other than 429)."""

    def __init__(self, what: str, status: int, body: str) -> None:
        super().__init__(f"{what}: HTTP {status} {body[:200]}")
        self.status = status


@dataclass
class Retrier:
    """Sends a request until it succeeds, a non-retryable answer comes, or ``retries`` are spent."""

    retries: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    sleep: Callable[[float], None] = time.sleep
    waited: float = 0.0
    """Seconds slept so far (all requests)."""
    counts: dict[str, int] = field(default_factory=dict)
    """What was retried: ``{"429": n, "500": n, "connect": n}``."""

    def call(self, what: str, send: Callable[[], Any]) -> Any:
        """``send()`` returns an ``httpx.Response``; the successful one is returned."""
        import httpx

        attempts: list[str] = []
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                response = send()
            except httpx.TransportError as exc:
                attempts.append(f"{type(exc).__name__}")
                key = "connect"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRYABLE:
                    raise HttpFailed(what, response.status_code, response.text)
                attempts.append(f"HTTP {response.status_code}")
                key = str(response.status_code)
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt == self.retries:
                break
            self.counts[key] = self.counts.get(key, 0) + 1
            delay = self.backoff.delay(attempt, retry_after)
            self.waited += delay
            self.sleep(delay)
        raise RetryExhausted(what, attempts)
