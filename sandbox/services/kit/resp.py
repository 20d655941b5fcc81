"""Raw Redis connections for hot paths: one plain-TCP socket speaking RESP, commands pipelined, replies in order.

``redis.asyncio`` spends most of a command's CPU outside the socket (pool
checkout, retry wrapper, encoder, parser classes). Two hot paths talk to Redis
directly instead, over :class:`RespConnection`:

* the live-session check of every authenticated request
  (:class:`~sandbox.services.kit.sessions.TrackedSessions`: RESP3 with client
  tracking, whose invalidation pushes arrive on the same connection);
* the OMS's client-order-id claim of every order (:class:`RawRedis`: RESP2
  commands, redis-py's exceptions).

What the connection does for both: it is opened lazily (concurrent first
commands share one attempt) and reopened by the next command after a loss;
commands issued together leave in one write; replies are matched to waiters in
command order and pushes go to :meth:`RespConnection._push`; a batch whose last
reply is not in within ``timeout`` fails the connection; a lost or corrupt
connection fails every command in flight (nothing is retried: a write whose
reply was lost may have been applied). The socket is read from the event loop's
reader callback, and :meth:`RespConnection._read` can also drain it without
blocking (the session cache does before trusting an entry).

Only a plain ``redis.asyncio.Redis`` over TCP gets a raw twin (:meth:`RespConnection.for_client`);
TLS, Unix sockets and test doubles keep going through redis-py.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any, ClassVar, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

C = TypeVar("C", bound="RespConnection")


class ResponseError(Exception):
    """Redis answered a command with an error (what :func:`parse` returns for an error reply)."""


class _Push(list):  # type: ignore[type-arg]
    """An out-of-band RESP3 push message (e.g. ``invalidate``), not a reply."""


class _Incomplete(Exception):
    """The buffer ends inside a message: wait for more bytes."""


_INCOMPLETE = _Incomplete()


def parse(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """One RESP2/RESP3 value from ``buf`` at ``pos``: ``(value, next position)``; :class:`_Incomplete` if cut.

    Bulk strings are ``bytes``; errors are returned (not raised) as :class:`ResponseError`; pushes as
    :class:`_Push`; an unknown type raises :class:`ConnectionError` (the stream cannot be trusted).
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
            out[k] = v
        return out, pos
    if kind == 35:  # '#' boolean
        return line == b"t", pos
    if kind == 44:  # ',' double
        return float(line), pos
    if kind == 40:  # '(' big number
        return int(line), pos
    raise ConnectionError(f"Redis sent an unknown reply type {bytes([kind])!r}")


def command(*parts: str | int) -> bytes:
    """A RESP command (an array of bulk strings; integers are sent as their decimal text)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part.encode() if type(part) is str else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class RespConnection:
    """One lazily opened connection (see the module docstring); subclasses say how to set it up
    (:meth:`_setup_connection`), what a reply means (:meth:`_reply`) and which errors callers see."""

    #: What callers get when the connection fails or times out, and how its messages begin.
    connection_error: ClassVar[type[Exception]] = ConnectionError
    timeout_error: ClassVar[type[Exception]] = TimeoutError
    connect_timeout_error: ClassVar[type[Exception]] = TimeoutError
    label: ClassVar[str] = "Redis"

    def __init__(self, host: str, port: int, *, db: int = 0, username: str | None = None,
                 password: str | None = None, connect_timeout: float = 2.0, timeout: float = 5.0) -> None:
        """Where Redis is and how to log in; timeouts in seconds (each batch of replies within ``timeout``)."""
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in = b""
        self._out = b""
        #: (future, the caller's tag for the reply), in command order.
        self._waiters: deque[tuple[asyncio.Future[Any], Any]] = deque()
        self._connecting: asyncio.Future[None] | None = None

    @classmethod
    def for_client(cls: type[C], redis: Any) -> C | None:
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

    # ---- for subclasses ---------------------------------------------------------------------

    async def _setup_connection(self) -> None:
        """Log in and select the database on a fresh connection (raise to refuse it)."""

    def _reply(self, fut: asyncio.Future[Any], tag: Any, value: Any) -> None:
        """Settle ``fut`` with a reply that is not an error (``tag`` as given to :meth:`_send`)."""
        if not fut.done():
            fut.set_result(value)

    def _push(self, value: _Push) -> None:
        """An out-of-band push arrived (ignored unless a subclass wants it)."""

    def _error(self, value: ResponseError) -> Exception:
        """The exception a caller gets for an error reply."""
        return value

    def _on_fail(self) -> None:
        """The connection was dropped (before the waiters are failed)."""

    # ---- commands ---------------------------------------------------------------------------

    async def _ensure(self) -> None:
        """Connected on the running loop (connecting once for concurrent callers)."""
        if self._sock is not None:
            if self._loop is asyncio.get_running_loop():
                return
            self._fail(self.connection_error(f"{self.label} connection belongs to another event loop"))
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    def _send(self, data: bytes, tags: list[Any]) -> list[asyncio.Future[Any]]:
        """Write ``data`` (``len(tags)`` commands) and return a future per reply, in order."""
        loop = self._loop
        assert loop is not None
        futures = [loop.create_future() for _ in tags]
        self._waiters.extend(zip(futures, tags))
        try:
            self._write(data)
        except Exception:
            for fut in futures:  # failed with the connection: the caller gets the raised error instead
                if fut.done() and not fut.cancelled():
                    fut.exception()
            raise
        return futures

    async def _replies(self, futures: list[asyncio.Future[Any]]) -> list[Any]:
        """The results of ``futures``; the connection fails when the last is not in within ``timeout``."""
        loop = self._loop
        assert loop is not None
        timer = loop.call_later(self.timeout, self._expire, futures[-1])
        try:
            return [await fut for fut in futures]
        finally:
            timer.cancel()
            for fut in futures:  # one failure fails them all: retrieve every exception, not only the first
                if fut.done() and not fut.cancelled():
                    fut.exception()

    async def _setup(self, commands: list[bytes]) -> list[Any]:
        """Set-up commands on a fresh connection (their replies; an error reply raises)."""
        return await asyncio.wait_for(asyncio.gather(*self._send(b"".join(commands), [None] * len(commands))),
                                      self.timeout)

    # ---- the socket -------------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise self.connection_error(f"cannot connect to {self.label} at {self.host}:{self.port}: {exc}") from None
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.wait_for(loop.sock_connect(sock, address), self.connect_timeout)
        except asyncio.TimeoutError:
            sock.close()
            raise self.connect_timeout_error(f"cannot connect to {self.label} at {self.host}:{self.port}: timeout") \
                from None
        except OSError as exc:
            sock.close()
            raise self.connection_error(f"cannot connect to {self.label} at {self.host}:{self.port}: {exc}") from None
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop, self._in, self._out = sock, loop, b"", b""
        loop.add_reader(sock.fileno(), self._read)
        try:
            await self._setup_connection()
        except BaseException as exc:
            self._fail(self.connection_error(f"{self.label} refused the connection set-up: {exc}"))
            raise

    def _write(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise self.connection_error(f"{self.label} connection lost")
        if self._out:
            self._out += data
            return
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(self.connection_error(f"{self.label} connection lost: {exc}"))
            raise self.connection_error(f"{self.label} connection lost: {exc}") from None
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
            self._fail(self.connection_error(f"{self.label} connection lost: {exc}"))
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
                self._fail(self.connection_error(f"{self.label} connection lost: {exc}"))
                return
            if not data:
                self._fail(self.connection_error(f"{self.label} closed the connection"))
                return
            chunks.append(data)
            if len(data) < 65536:
                break
        if not chunks:
            return
        buf = self._in + b"".join(chunks) if self._in else chunks[0] if len(chunks) == 1 else b"".join(chunks)
        pos = 0
        try:
            while pos < len(buf):
                value, pos = parse(buf, pos)
                self._handle(value)
        except _Incomplete:
            pass
        except (ConnectionError, ValueError) as exc:
            self._fail(self.connection_error(f"{self.label} protocol error: {exc}"))
            return
        self._in = buf[pos:]

    def _handle(self, value: Any) -> None:
        if type(value) is _Push:
            self._push(value)
            return
        if not self._waiters:
            raise ConnectionError("a reply nobody asked for")
        fut, tag = self._waiters.popleft()
        if isinstance(value, ResponseError):
            if not fut.done():
                fut.set_exception(self._error(value))
            return
        self._reply(fut, tag, value)

    def _expire(self, last: asyncio.Future[Any]) -> None:
        if not last.done():
            self._fail(self.timeout_error(f"{self.label} did not answer within {self.timeout:g} s"))

    def _fail(self, exc: Exception) -> None:
        """Drop the connection and fail every pending command with ``exc``."""
        self._on_fail()
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
        """Close the connection (a later command reconnects)."""
        self._fail(self.connection_error(f"{self.label} connection closed"))


def _text(value: Any) -> Any:
    """Bulk strings (also inside arrays) as UTF-8 text, as redis-py with ``decode_responses=True``."""
    if type(value) is bytes:
        return value.decode()
    if type(value) is list:
        return [_text(v) for v in value]
    return value


class RawRedis(RespConnection):
    """Pipelined RESP2 commands answered as a ``decode_responses=True`` redis-py client would, failing with
    redis-py's own exceptions (``ConnectionError``, ``TimeoutError``, ``ResponseError``: all
    :class:`~redis.exceptions.RedisError`), so callers handle both paths alike."""

    connection_error = RedisConnectionError
    timeout_error = RedisTimeoutError
    connect_timeout_error = RedisConnectionError

    async def execute(self, *commands: tuple[str | int, ...]) -> list[Any]:
        """Send ``commands`` in one write; their replies in order (a Redis error reply raises ``ResponseError``)."""
        await self._ensure()
        return await self._replies(self._send(b"".join(command(*c) for c in commands), [None] * len(commands)))

    async def _setup_connection(self) -> None:
        setup: list[bytes] = []
        if self.password:
            setup.append(command("AUTH", self.username, self.password) if self.username
                         else command("AUTH", self.password))
        if self.db:
            setup.append(command("SELECT", self.db))
        if setup:
            await self._setup(setup)

    def _reply(self, fut: asyncio.Future[Any], tag: Any, value: Any) -> None:
        if not fut.done():
            fut.set_result(_text(value))

    def _error(self, value: ResponseError) -> Exception:
        return RedisResponseError(str(value))
