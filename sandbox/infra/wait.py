"""Wait strategy: poll a readiness check until it passes or a timeout expires.

Readiness is always a check that is polled (a query, a PING, an HTTP probe),
never a fixed sleep: servers here start in milliseconds on a fast machine and
in seconds on a loaded CI runner, and a sleep is wrong on both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sandbox.infra.errors import ReadinessTimeout

#: A readiness check returns True when ready; False, or a string saying why
#: not (kept for the timeout error), when not yet.
ReadinessCheck = Callable[[], "bool | str"]


def wait_until(
    check: ReadinessCheck,
    *,
    timeout: float,
    interval: float = 0.05,
    what: str,
    log_tail: Callable[[], list[str]] | None = None,
    log_path: Path | None = None,
) -> float:
    """Poll ``check`` every ``interval`` seconds until it returns True.

    ``check`` returns True when ready, and False or a reason string when not.
    An ``OSError`` it raises (connection refused, reset, timed out) counts as
    "not yet" with the error as reason, because that is what a starting server
    looks like from outside; any other exception propagates at once (a check
    uses that to report a fatal condition such as the process having exited).

    Returns the seconds waited. On timeout raises :class:`ReadinessTimeout`
    naming ``what`` with the last reason and, when ``log_tail`` is given, the
    last log lines of the server.
    """
    started = time.monotonic()
    deadline = started + timeout
    last_reason = ""
    while True:
        try:
            result = check()
        except OSError as exc:
            result = f"{type(exc).__name__}: {exc}"
        if result is True:
            return time.monotonic() - started
        if isinstance(result, str) and result:
            last_reason = result
        now = time.monotonic()
        if now >= deadline:
            raise ReadinessTimeout(
                what,
                timeout=timeout,
                last_reason=last_reason,
                log_lines=log_tail() if log_tail is not None else [],
                log_path=log_path,
            )
        time.sleep(min(interval, deadline - now))
