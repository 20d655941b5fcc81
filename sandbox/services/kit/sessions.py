"""The live-session check against the session Redis, cached locally and invalidated by Redis itself.

Every authenticated request must know that its session (``auth:session:{sid}``)
still exists. Asking Redis each time costs a round trip and more CPU than the
rest of the check; caching the answer blindly would let a revoked token work
until the entry aged out. :class:`TrackedSessions` caches it the way Redis is
built for (server-assisted client-side caching, ``CLIENT TRACKING`` over
RESP3): the connection that reads a session key is told, on that same
connection, when the key is modified, deleted or expired, and the entry is
dropped. What a cached "live" answer guarantees:

* **revocation**: Redis writes the invalidation push while it executes the
  ``DEL`` and flushes it with that event-loop iteration's replies, before it
  reads any later command. auth-service answers a revocation (logout, refresh
  replay, user change) only after one more round trip to Redis, so once the
  revoker has its answer the push is on the wire to every service (on one
  machine, in its socket buffer). Each cache hit first drains the socket
  without blocking, so a request sent after the revocation answered is refused.
* **expiry**: the entry never outlives the key's own TTL (the check is ``PTTL``,
  not ``EXISTS``), and never ``MAX_AGE_S`` (a bound for the unforeseen: a silently
  dead connection, a lost push).
* **connection loss**: the cache is emptied (pushes may have been missed);
  the next check reconnects.
* **no tracking** (Redis before 6 has no ``HELLO 3``): nothing is cached; every
  check asks Redis, as before.

Commands issued in the same event-loop tick go out as one write (see
:class:`~sandbox.services.kit.auth.SessionChecker`); replies are matched in order.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from typing import Any


class ResponseError(Exception):
    """The session Redis answered a command with an error."""


class _Push(list):  # type: ignore[type-arg]
    """An out-of-band RESP3 push message (e.g. ``invalidate``), not a reply."""


class _Incomplete(Exception):
    """The buffer ends inside a message: wait for more bytes."""


_INCOMPLETE = _Incomplete()


def parse(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """One RESP2/RESP3 value from ``buf`` at ``pos``: ``(value, next position)``; :class:`_Incomplete` if cut.

    Errors are returned (not raised) as :class:`ResponseError`; pushes as :class:`_Push`.
    """
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _INCOMPLETE
    kind, line, pos = buf[pos], buf[pos + 1:end], end + 2
    if kind == 58:  # ':' integer
        return int(line), pos
    if kind == 43:  # '+' simple string
        return line.decode(), pos
    if kind == 45:  # '-' error
        return ResponseError(line.decode(errors="replace")), pos
    if kind == 95:  # '_' null
        return None, pos
    if kind in (36, 61):  # '$' bulk, '=' verbatim
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _INCOMPLETE
        return buf[pos:pos + n], pos + n + 2
    if kind in (42, 126, 62):  # '*' array, '~' set, '>' push
        n = int(line)
        if n < 0:
            return None, pos
        items: list[Any] = _Push() if kind == 62 else []
        for _ in range(n):
            value, pos = parse(buf, pos)
            items.append(value)
        return items, pos
    if kind == 37:  # '%' map
        out: dict[Any, Any] = {}
        for _ in range(int(line)):
            k, pos = parse(buf, pos)
            v, pos = parse(buf, pos)
            out[k if not isinstance(k, bytearray) else bytes(k)] = v
        return out, pos
    if kind == 35:  # '#' boolean
        return line == b"t", pos
    if kind == 44:  # ',' double
        return float(line), pos
    if kind == 40:  # '(' big number
        return int(line), pos
    raise ConnectionError(f"session Redis sent an unknown reply type {bytes([kind])!r}")


def command(*parts: str) -> bytes:
    """A RESP command (array of bulk strings)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class TrackedSessions:
    """``PTTL`` for many keys in one write over one plain-TCP RESP3 connection with client tracking on,
    and the cache of keys known live (see the module docstring for what it guarantees)."""

    #: Longest a "live" answer is reused without asking Redis again.
    MAX_AGE_S = 1.0
    #: Most sessions cached at once (beyond: stale entries are dropped, then all; a miss only costs a PTTL).
    MAX_ENTRIES = 100_000

    def __init__(self, host: str, port: int, *, db: int = 0, username: str | None = None,
                 password: str | None = None, connect_timeout: float = 2.0, timeout: float = 5.0) -> None:
        """Where the session Redis is and how to log in; timeouts in seconds (each reply within ``timeout``)."""
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in = b""
        self._out = b""
        #: (future, key whose PTTL it awaits, or None for set-up commands), in command order.
        self._waiters: deque[tuple[asyncio.Future[Any], str | None]] = deque()
        self._live: dict[str, float] = {}
        self._connecting: asyncio.Future[None] | None = None
        #: Whether Redis tracks our reads (RESP3, Redis 6+); without it nothing is cached.
        self.tracking = False

    @classmethod
    def for_client(cls, redis: Any) -> TrackedSessions | None:
        """The tracked client for a plain ``redis.asyncio.Redis`` over TCP, else ``None`` (TLS, sockets, fakes)."""
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

    # ---- the cache --------------------------------------------------------------------------

    def cached(self, key: str) -> bool:
        """Whether ``key`` is known live right now (pending invalidations are read first)."""
        until = self._live.get(key)
        if until is None:
            return False
        if self._sock is not None:
            self._read()  # a push already in the socket must win over the entry
        until = self._live.get(key)
        if until is None:
            return False
        if until <= time.monotonic():
            self._live.pop(key, None)
            return False
        return True

    @property
    def cache_size(self) -> int:
        """How many keys are cached as live."""
        return len(self._live)

    def _invalidate(self, keys: Any) -> None:
        if keys is None:  # FLUSHDB/FLUSHALL: everything may be gone
            self._live.clear()
            return
        for key in keys:
            self._live.pop(key.decode() if isinstance(key, bytes) else str(key), None)

    # ---- the connection ---------------------------------------------------------------------

    async def pttl(self, keys: list[str]) -> list[int]:
        """``PTTL key`` for each key, in order (-2: missing); live answers are cached as they arrive."""
        await self._connected()
        loop = self._loop
        assert loop is not None
        waiters = [(loop.create_future(), key) for key in keys]
        self._waiters.extend(waiters)
        self._write(b"".join(b"*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n" % (len(raw), raw)
                             for raw in (k.encode() for k in keys)))
        last = waiters[-1][0]
        timer = loop.call_later(self.timeout, self._expire, last)
        try:
            return [await fut for fut, _ in waiters]
        finally:
            timer.cancel()
            for fut, _ in waiters:  # one failure fails them all: retrieve every exception, not only the first
                if fut.done() and not fut.cancelled():
                    fut.exception()

    async def _connected(self) -> None:
        if self._sock is not None:
            if self._loop is asyncio.get_running_loop():
                return
            self._fail(ConnectionError("session connection belongs to another event loop"))
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.wait_for(loop.sock_connect(sock, address), self.connect_timeout)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop, self._in, self._out = sock, loop, b"", b""
        self.tracking = False
        loop.add_reader(sock.fileno(), self._read)
        try:
            hello = ["HELLO", "3"]
            if self.password:
                hello += ["AUTH", self.username or "default", self.password]
            try:
                await self._setup([command(*hello)])
                tracking = True
            except ResponseError:  # Redis before 6: RESP2, no tracking, so nothing is cached
                tracking = False
                if self.password:
                    await self._setup([command("AUTH", *([self.username] if self.username else []), self.password)])
            rest = [command("SELECT", str(self.db))] if self.db else []
            if tracking:
                rest.append(command("CLIENT", "TRACKING", "ON"))
            if rest:
                await self._setup(rest)
            self.tracking = tracking
        except BaseException as exc:
            self._fail(ConnectionError(f"session Redis refused the connection set-up: {exc}"))
            raise

    async def _setup(self, commands: list[bytes]) -> None:
        assert self._loop is not None
        waiters: list[tuple[asyncio.Future[Any], str | None]] = [(self._loop.create_future(), None) for _ in commands]
        self._waiters.extend(waiters)
        self._write(b"".join(commands))
        await asyncio.wait_for(asyncio.gather(*(fut for fut, _ in waiters)), self.timeout)

    def _write(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise ConnectionError("session Redis connection lost")
        if self._out:
            self._out += data
            return
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(ConnectionError(f"session Redis connection lost: {exc}"))
            raise ConnectionError(f"session Redis connection lost: {exc}") from None
        if sent < len(data):
            self._out = data[sent:]
            assert self._loop is not None
            self._loop.add_writer(sock.fileno(), self._flush_out)

    def _flush_out(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(ConnectionError(f"session Redis connection lost: {exc}"))
            return
        self._out = self._out[sent:]
        if not self._out:
            assert self._loop is not None
            self._loop.remove_writer(sock.fileno())

    def _read(self) -> None:
        """Read whatever is in the socket (never blocks) and handle every complete message."""
        sock = self._sock
        if sock is None:
            return
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._fail(ConnectionError(f"session Redis connection lost: {exc}"))
                return
            if not data:
                self._fail(ConnectionError("session Redis closed the connection"))
                return
            chunks.append(data)
            if len(data) < 65536:
                break
        if not chunks:
            return
        buf = self._in + b"".join(chunks) if self._in else b"".join(chunks)
        pos = 0
        try:
            while pos < len(buf):
                value, pos = parse(buf, pos)
                self._handle(value)
        except _Incomplete:
            pass
        except (ConnectionError, ValueError) as exc:
            self._fail(ConnectionError(f"session Redis protocol error: {exc}"))
            return
        self._in = buf[pos:]

    def _handle(self, value: Any) -> None:
        if type(value) is _Push:
            if value and value[0] == b"invalidate":
                self._invalidate(value[1] if len(value) > 1 else None)
            return
        if not self._waiters:
            raise ConnectionError("unexpected reply")
        fut, key = self._waiters.popleft()
        if isinstance(value, ResponseError):
            if not fut.done():
                fut.set_exception(value)
            return
        if key is not None and self.tracking and isinstance(value, int) and value != -2:
            # Cached here, in stream order: a push read after this reply (a later DEL) drops it again.
            age = self.MAX_AGE_S if value < 0 else min(self.MAX_AGE_S, value / 1000)
            now = time.monotonic()
            if len(self._live) >= self.MAX_ENTRIES:  # entries of sessions no longer used: drop the stale ones
                self._live = {k: t for k, t in self._live.items() if t > now}
                if len(self._live) >= self.MAX_ENTRIES:
                    self._live.clear()
            self._live[key] = now + age
        if not fut.done():
            fut.set_result(value)

    def _expire(self, last: asyncio.Future[Any]) -> None:
        if not last.done():
            self._fail(TimeoutError(f"session Redis did not answer within {self.timeout:g} s"))

    def _fail(self, exc: Exception) -> None:
        """Drop the connection and the cache (pushes may be lost); fail every pending command."""
        self._live.clear()
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
                self._loop.remove_writer(sock.fileno())
            sock.close()
        self._in = self._out = b""
        while self._waiters:
            fut, _ = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        self._fail(ConnectionError("session checker closed"))
