"""``checks.settle_all``: gather with exceptions returned, one task fewer, cancellation passed on (no servers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandbox.services.oms.checks import settle_all


async def answer(value: Any, delay: float = 0.0) -> Any:
    await asyncio.sleep(delay)
    if isinstance(value, Exception):
        raise value
    return value


def test_results_and_exceptions_in_call_order() -> None:
    boom = ValueError("risk down")

    async def go() -> list[Any]:
        return await settle_all([answer("policy", 0.02), answer(boom, 0.01), answer("fees")])

    assert asyncio.run(go()) == ["policy", boom, "fees"]
    assert asyncio.run(settle_all([])) == []


def test_calls_run_concurrently() -> None:
    async def go() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await settle_all([answer(1, 0.2), answer(2, 0.2), answer(3, 0.2)])
        return loop.time() - start

    assert asyncio.run(go()) < 0.35


def test_a_cancelled_caller_cancels_the_calls_still_running() -> None:
    cancelled: list[str] = []

    async def slow(name: str) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def go() -> None:
        task = asyncio.ensure_future(settle_all([slow("risk"), slow("fees")]))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)

    asyncio.run(go())
    assert sorted(cancelled) == ["fees", "risk"]
