"""Retry policy: backoff bounds, Retry-After, which answers are retried, partial giving up."""

from __future__ import annotations

import random
from email.utils import format_datetime
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandbox.workflows.retry import MAX_RETRY_AFTER_S, Backoff, HttpFailed, Retrier, RetryExhausted, retry_after_seconds

REQ = httpx.Request("GET", "http://127.0.0.1/api/v3/coins/markets")


def answers(*items: int | tuple[int, dict[str, str]] | Exception):
    """``send`` returning the scripted answers in order (an exception is raised, as httpx would)."""
    queue = list(items)
    sent: list[int] = []

    def send() -> httpx.Response:
        item = queue.pop(0)
        sent.append(1)
        if isinstance(item, Exception):
            raise item
        status, headers = item if isinstance(item, tuple) else (item, {})
        return httpx.Response(status, headers=headers, json={}, request=REQ)

    send.sent = sent  # type: ignore[attr-defined]
    return send


def test_backoff_doubles_within_jitter_and_caps() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, rng=random.Random(1))
    for attempt, d in enumerate([0.5, 1.0, 2.0, 4.0, 4.0, 4.0]):
        for _ in range(50):
            assert d / 2 <= backoff.delay(attempt) <= d


def test_retry_after_overrides_the_backoff() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0)
    assert backoff.delay(0, retry_after=7.0) == 7.0
    assert backoff.delay(0, retry_after=10_000) == MAX_RETRY_AFTER_S


def test_retry_after_header_forms() -> None:
    now = datetime(2026, 7, 7, 23, 0, tzinfo=UTC)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now.timestamp()) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now.timestamp()) == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


def test_429_then_500_then_success() -> None:
    slept: list[float] = []
    retrier = Retrier(retries=3, backoff=Backoff(0.1, 1.0, random.Random(0)), sleep=slept.append)
    send = answers((429, {"Retry-After": "2"}), 500, 200)
    assert retrier.call("markets", send).status_code == 200
    assert slept[0] == 2.0 and 0.1 <= slept[1] <= 0.2
    assert retrier.counts == {"429": 1, "500": 1}
    assert retrier.waited == pytest.approx(sum(slept))


def test_connection_errors_are_retried() -> None:
    retrier = Retrier(retries=2, sleep=lambda s: None)
    send = answers(httpx.ConnectError("refused"), 200)
    assert retrier.call("markets", send).status_code == 200
    assert retrier.counts == {"connect": 1}


def test_gives_up_after_the_retries_naming_each_attempt() -> None:
    retrier = Retrier(retries=2, sleep=lambda s: None)
    send = answers(500, 503, 502)
    with pytest.raises(RetryExhausted) as err:
        retrier.call("market_chart solana", send)
    assert err.value.attempts == ["HTTP 500", "HTTP 503", "HTTP 502"]
    assert "market_chart solana: gave up after 3 attempts" in str(err.value)


def test_client_errors_are_not_retried() -> None:
    retrier = Retrier(retries=5, sleep=lambda s: None)
    send = answers(404, 200)
    with pytest.raises(HttpFailed) as err:
        retrier.call("market_chart nope", send)
    assert err.value.status == 404 and len(send.sent) == 1  # type: ignore[attr-defined]
