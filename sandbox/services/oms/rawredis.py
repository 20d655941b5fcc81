"""Pipelined Redis commands on one bare RESP2 connection, for the client order id claim of every order.

``redis.asyncio`` spends most of a command's CPU outside the socket (pool
checkout, retry wrapper, encoder, parser classes): the ``SET NX`` claim cost
the OMS more than its own placement logic. :class:`RawRedis` writes commands
straight to one asyncio transport and matches the replies in order; commands
issued together (``SET`` + ``GET``) leave in one write.

It is used only for a plain ``redis.asyncio.Redis`` over TCP (:meth:`RawRedis.for_client`);
TLS, Unix sockets and test doubles keep going through redis-py. Failures raise
redis-py's own exceptions (``ConnectionError``, ``TimeoutError``, ``ResponseError``,
all :class:`~redis.exceptions.RedisError`), so callers handle both paths alike.
A lost connection fails the commands in flight and the next command reconnects;
nothing is retried here (a ``SET NX`` whose reply was lost may have been applied).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class _Incomplete(Exception):
    """The buffer ends inside a reply."""


_INCOMPLETE = _Incomplete()


def parse_reply(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """One RESP2 reply at ``pos``: ``(value, next position)``; bulk strings decoded as UTF-8, errors returned
    as :class:`~redis.exceptions.ResponseError`; raises :class:`_Incomplete` when the buffer is cut short."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _INCOMPLETE
    kind, line, pos = buf[pos], buf[pos + 1:end], end + 2
    if kind == 43:  # '+'
        return line.decode(), pos
    if kind == 36:  # '$'
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _INCOMPLETE
        return buf[pos:pos + n].decode(), pos + n + 2
    if kind == 58:  # ':'
        return int(line), pos
    if kind == 45:  # '-'
        return ResponseError(line.decode(errors="replace")), pos
    if kind == 42:  # '*'
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            value, pos = parse_reply(buf, pos)
            items.append(value)
        return items, pos
    raise RedisConnectionError(f"Redis sent an unknown reply type {bytes([kind])!r}")


def encode(*parts: str | int) -> bytes:
    """A RESP command: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    """Replies matched to waiting futures in command order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.buf = b""
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio: connected."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """asyncio: bytes arrived; settle a future per complete reply."""
        buf = self.buf + data if self.buf else data
        pos = 0
        try:
            while pos < len(buf):
                value, pos = parse_reply(buf, pos)
                if not self.waiters:
                    raise RedisConnectionError("Redis sent a reply nobody asked for")
                fut = self.waiters.popleft()
                if not fut.done():
                    if isinstance(value, ResponseError):
                        fut.set_exception(value)
                    else:
                        fut.set_result(value)
        except _Incomplete:
            pass
        except (RedisConnectionError, ValueError) as exc:
            self.fail(RedisConnectionError(f"Redis protocol error: {exc}"))
            return
        self.buf = buf[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio: closed; fail what is in flight."""
        self.fail(RedisConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def fail(self, exc: Exception) -> None:
        """Drop the connection and fail every waiting command."""
        self.lost = True
        if self.transport is not None:
            self.transport.abort()
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)


class RawRedis:
    """Commands over one lazily opened connection (see the module docstring)."""

    def __init__(self, host: str, port: int, *, db: int = 0, username: str | None = None,
                 password: str | None = None, connect_timeout: float = 2.0, timeout: float = 5.0) -> None:
        """Where Redis is and how to log in; ``timeout``: seconds for each batch of replies."""
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    @classmethod
    def for_client(cls, redis: Any) -> RawRedis | None:
        """The raw twin of a plain ``redis.asyncio.Redis`` over TCP, else ``None`` (TLS, Unix sockets, fakes)."""
        from redis.asyncio.connection import Connection

        pool = getattr(redis, "connection_pool", None)
        if pool is None or getattr(pool, "connection_class", None) is not Connection:
            return None
        kw = pool.connection_kwargs
        if "host" not in kw:
            return None
        return cls(kw["host"], int(kw.get("port", 6379)), db=int(kw.get("db", 0) or 0), username=kw.get("username"),
                   password=kw.get("password"), connect_timeout=float(kw.get("socket_connect_timeout") or 2.0),
                   timeout=float(kw.get("socket_timeout") or 5.0))

    async def execute(self, *commands: tuple[str | int, ...]) -> list[Any]:
        """Send ``commands`` in one write; their replies in order (a Redis error reply raises ``ResponseError``)."""
        proto = self._proto
        if proto is None or proto.lost:
            proto = await self._connected()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        proto.waiters.extend(futures)
        assert proto.transport is not None
        proto.transport.write(b"".join(encode(*c) for c in commands))
        last = futures[-1]
        timer = loop.call_later(self.timeout, _expire, proto, last, self.timeout)
        try:
            return [await fut for fut in futures]
        finally:
            timer.cancel()
            for fut in futures:  # one failure fails them all: retrieve every exception
                if fut.done() and not fut.cancelled():
                    fut.exception()

    async def _connected(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(_Protocol, self.host, self.port), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis at {self.host}:{self.port}: {exc or 'timeout'}") \
                from None
        self._proto = proto
        setup: list[tuple[str | int, ...]] = []
        if self.password:
            setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            setup.append(("SELECT", self.db))
        if setup:
            try:
                await self.execute(*setup)
            except Exception:
                proto.fail(RedisConnectionError("Redis refused the connection set-up"))
                raise
        return proto

    def close(self) -> None:
        """Close the connection (a later command reconnects)."""
        if self._proto is not None:
            self._proto.fail(RedisConnectionError("closed"))
            self._proto = None


def _expire(proto: _Protocol, last: asyncio.Future[Any], timeout: float) -> None:
    if not last.done():
        proto.fail(RedisTimeoutError(f"Redis did not answer within {timeout:g} s"))
