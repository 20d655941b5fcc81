"""Recording a Kraken WebSocket session into the fixture format.

``record_session`` connects to a Kraken endpoint (the live ``wss://ws.kraken.com/v2``
or ``wss://ws.kraken.com``, or this project's venue simulator), sends the
subscribe requests, and writes every frame it sends and receives with its local
time, raw text unchanged.  Frames go to a spool file (``<out>.partial``, a
headerless fixture) as they arrive, so an interrupted recording still leaves
something :mod:`sandbox.replay.importers` can read; at the end the spool
becomes the fixture, header and all.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import EnvironmentProblem, InvalidInput
from sandbox.replay.fixture import Manifest, Record, read_session, record_line, write_session

DEFAULT_CHANNELS = ("book", "trade")


@dataclass
class RecordPlan:
    """What to subscribe to and when to stop."""

    url: str
    symbols: list[str]
    channels: list[str] = field(default_factory=lambda: list(DEFAULT_CHANNELS))
    depth: int = 10
    interval: int = 1
    #: stop after this many seconds (``None``: only ``max_frames`` stops it)
    duration_s: float | None = 60.0
    #: stop after this many received frames
    max_frames: int | None = None
    #: seconds between client pings (recorded too); ``None`` to send none
    ping_s: float | None = 10.0

    @property
    def api(self) -> str:
        """``v2`` for a ``.../v2`` URL, else ``v1``."""
        return "v2" if self.url.rstrip("/").endswith("/v2") else "v1"

    def requests(self) -> list[dict[str, Any]]:
        """The subscribe requests, one per channel, in Kraken's format for the URL's version."""
        out = []
        for req_id, channel in enumerate(self.channels, start=1):
            if self.api == "v2":
                params: dict[str, Any] = {"channel": channel, "symbol": self.symbols}
                if channel == "book":
                    params["depth"] = self.depth
                if channel == "ohlc":
                    params["interval"] = self.interval
                out.append({"method": "subscribe", "params": params, "req_id": req_id})
            else:
                sub: dict[str, Any] = {"name": channel}
                if channel == "book":
                    sub["depth"] = self.depth
                if channel == "ohlc":
                    sub["interval"] = self.interval
                out.append({"event": "subscribe", "pair": self.symbols, "subscription": sub, "reqid": req_id})
        return out

    def check(self) -> None:
        """Raise :class:`InvalidInput` for a plan that cannot work."""
        problems = []
        if not self.url.startswith(("ws://", "wss://")):
            problems.append(f"--url: {self.url!r} is not a ws:// or wss:// URL")
        if not self.symbols:
            problems.append("--symbol: give at least one")
        if self.duration_s is None and self.max_frames is None:
            problems.append("give --duration or --frames, or the recording never ends")
        if problems:
            raise InvalidInput("cannot record", problems=problems)


async def record_session(plan: RecordPlan, out: str | Path) -> Manifest:
    """Record per ``plan`` into the fixture ``out``; returns its manifest."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    plan.check()
    out = Path(out)
    spool = out.with_name(out.name + ".partial")
    spool.parent.mkdir(parents=True, exist_ok=True)
    received = 0
    ended = "as planned"
    deadline = None if plan.duration_s is None else time.monotonic() + plan.duration_s
    with spool.open("w", encoding="utf-8") as fh:

        def keep(direction: str, text: str) -> None:
            fh.write(record_line(Record(time.time(), direction, text)) + "\n")

        try:
            async with connect(plan.url, open_timeout=15, max_size=2**24) as ws:
                for request in plan.requests():
                    text = json.dumps(request, separators=(",", ":"))
                    keep("send", text)
                    await ws.send(text)
                next_ping = None if plan.ping_s is None else time.monotonic() + plan.ping_s
                while plan.max_frames is None or received < plan.max_frames:
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        break
                    if next_ping is not None and now >= next_ping:
                        ping = _ping(plan.api, int(time.time() * 1000))
                        keep("send", ping)
                        await ws.send(ping)
                        next_ping = now + (plan.ping_s or 0)
                    wait = min(x for x in (deadline, next_ping, now + 1.0) if x is not None) - now
                    try:
                        message = await asyncio.wait_for(ws.recv(), max(wait, 0.001))
                    except TimeoutError:
                        continue
                    except ConnectionClosed as exc:
                        ended = f"the venue closed the connection ({exc})"
                        break
                    keep("recv", message if isinstance(message, str) else message.decode("utf-8", "replace"))
                    received += 1
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            if received == 0:
                spool.unlink(missing_ok=True)
                raise EnvironmentProblem(
                    f"cannot record from {plan.url}: {getattr(exc, 'strerror', None) or exc}",
                    hint="check the URL; the venue simulator listens on ws://127.0.0.1:8081",
                ) from exc
            ended = f"connection lost ({exc})"
    manifest = write_session(
        out,
        read_session(spool).records(),
        api=plan.api,
        source=f"record {plan.url}",
        notes=f"recording ended {ended}; subscriptions: {json.dumps(plan.requests(), separators=(',', ':'))}",
    )
    spool.unlink()
    return manifest


def _ping(api: str, req_id: int) -> str:
    if api == "v2":
        return json.dumps({"method": "ping", "req_id": req_id}, separators=(",", ":"))
    return json.dumps({"event": "ping", "reqid": req_id}, separators=(",", ":"))
