"""A minimal asyncio Redis client for the admission ledger's hot path: pipelined commands on one connection.

Why not redis-py here: measured on this machine (redis-py 8.1, asyncio, hiredis), one awaited EVALSHA costs
~90-140 µs of client CPU, and every inference request makes two (its acquire and its release), while the whole
gateway spends ~350-450 µs of CPU on a request without Redis. This client costs ~25 µs per call made one at a
time, ~12 µs under 64 concurrent callers, about half of it the kernel's share of the round trip (docs/performance.md,
"The Redis admission ledger"). Each call writes its command at once and waits on a future; Redis answers in
order, so replies resolve the futures first in, first out, and concurrent calls share one socket, no pool.

Limits, on purpose: RESP2 only; no pub/sub, transactions, cluster redirects (MOVED/ASK), Sentinel or automatic
retries (a call cut off by a lost connection fails, the next call reconnects; repeating a command is the
caller's decision). Bulk strings are decoded as UTF-8 (redis-py's `decode_responses=True`). A large reply split
over many reads is parsed again from its start on each read: fine for short replies, not for bulk transfers.
Everything off the hot path keeps using redis-py.

    client = RespClient.from_url('redis://:secret@127.0.0.1:6379/0')   # connects on the first call
    script = Script("return redis.call('GET', KEYS[1])")
    value = await client.evalsha(script, ['key'], [])                  # EVAL once when Redis lacks it
    await client.close()
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Sequence
from typing import cast
from urllib.parse import urlsplit

from redis.asyncio.connection import parse_url

Arg = str | int | bytes


class RespError(Exception):
    """An error reply, with Redis's message (e.g. 'NOSCRIPT No matching script. Please use EVAL.')."""


class RespConnectionError(ConnectionError):
    """No reply: could not connect, the connection was lost or broke the protocol, or the client is closed."""


class RespTimeoutError(RespConnectionError):
    """No reply in time. The connection is closed, since later replies could no longer be matched to calls."""


class Script:
    """A Lua script and the SHA1 that EVALSHA names it by."""

    __slots__ = ('sha', 'source')

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


def encode(args: Sequence[Arg]) -> bytes:
    """One command as a RESP2 array of bulk strings."""
    out = bytearray(b'*%d\r\n' % len(args))
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out += b'$%d\r\n%b\r\n' % (len(data), data)
    return bytes(out)


class Parser:
    """RESP2 replies from a byte stream that arrives in pieces of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[object]:
        """The replies `data` completes, in order: str, int, None (nil), lists, and RespError for error replies
        (returned, not raised). Raises ValueError on bytes that are not RESP2."""
        self._buffer += data
        replies: list[object] = []
        pos = 0
        while (parsed := self._reply(pos)) is not None:
            reply, pos = parsed
            replies.append(reply)
        if pos:
            del self._buffer[:pos]
        return replies

    def _reply(self, pos: int) -> tuple[object, int] | None:
        """The reply starting at `pos` and the offset after it, or None while it is incomplete."""
        buffer = self._buffer
        end = buffer.find(b'\r\n', pos)
        if end < 0:
            return None
        kind, line, pos = buffer[pos], buffer[pos + 1:end], end + 2
        if kind == 0x24:  # $ bulk string, or nil ($-1)
            size = int(line)
            if size < 0:
                return None, pos
            if len(buffer) < pos + size + 2:
                return None
            return buffer[pos:pos + size].decode(errors='replace'), pos + size + 2
        if kind == 0x2B:  # + simple string
            return line.decode(errors='replace'), pos
        if kind == 0x3A:  # : integer
            return int(line), pos
        if kind == 0x2D:  # - error
            return RespError(line.decode(errors='replace')), pos
        if kind == 0x2A:  # * array, or nil (*-1)
            size = int(line)
            if size < 0:
                return None, pos
            items: list[object] = []
            for _ in range(size):
                if (parsed := self._reply(pos)) is None:
                    return None
                item, pos = parsed
                items.append(item)
            return items, pos
        raise ValueError(f'not a RESP2 reply: {bytes(buffer[end - len(line) - 1:end])[:40]!r}')


class _Connection(asyncio.Protocol):
    """One socket, and the calls sent on it and not yet answered, oldest first, each with its deadline.

    Replies come in order, so the oldest call is always the first to run out of time: one timer, armed for its
    deadline, watches them all (cheaper than a timer per call); when it fires it closes the connection, or
    re-arms for the deadline of the call that is oldest by then."""

    def __init__(self, timeout: float, address: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.parser = Parser()
        self.waiting: deque[tuple[asyncio.Future[object], float]] = deque()
        self.watchdog: asyncio.TimerHandle | None = None
        self.lost: str | None = None  # why the connection is unusable, once it is
        self.gone = self.loop.create_future()  # resolved when the socket is closed

    def send(self, command: bytes) -> asyncio.Future[object]:
        if self.lost is not None or self.transport is None:
            raise RespConnectionError(self.lost or 'not connected')
        future = self.loop.create_future()
        deadline = self.loop.time() + self.timeout
        self.waiting.append((future, deadline))
        self.transport.write(command)
        if self.watchdog is None:
            self.watchdog = self.loop.call_at(deadline, self.watch)
        return future

    def watch(self) -> None:
        self.watchdog = None
        if self.waiting:
            deadline = self.waiting[0][1]
            if deadline <= self.loop.time():
                self.close(RespTimeoutError, f'no reply from Redis at {self.address} within {self.timeout:g} s')
            else:
                self.watchdog = self.loop.call_at(deadline, self.watch)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.parser.feed(data)
            if len(replies) > len(self.waiting):
                raise ValueError('a reply nobody asked for')
        except ValueError as exc:
            self.close(RespConnectionError, f'Redis broke the protocol: {exc}')
            return
        for reply in replies:
            future = self.waiting.popleft()[0]
            if future.done():  # the caller was cancelled; its reply goes with it
                continue
            if isinstance(reply, RespError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(RespConnectionError, f'connection to Redis lost ({exc})' if exc else 'Redis closed the connection')
        if not self.gone.done():
            self.gone.set_result(None)

    def close(self, error: type[RespConnectionError], message: str) -> None:
        """Fail every call waiting here with `error` and drop the socket; later calls open another one."""
        if self.lost is None:
            self.lost = message
        if self.transport is not None:
            self.transport.abort()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(error(message))


class RespClient:
    """Redis over one pipelined connection, opened on the first call and again on the first call after a loss.
    `timeout` bounds each call, `connect_timeout` each connection attempt: a dead server fails calls fast, it
    does not hang them."""

    def __init__(self, host: str = 'localhost', port: int = 6379, *, db: int = 0, username: str | None = None,
                 password: str | None = None, path: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 2.0, connect_timeout: float = 1.0) -> None:
        self.address = path or f'{host}:{port}'
        self._host, self._port, self._path, self._ssl = host, port, path, ssl_context
        self._hello = [encode(['SELECT', db])] if db else []
        if username or password:
            self._hello.insert(0, encode(['AUTH', *([username] if username else []), password or '']))
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        self._closed = False

    @classmethod
    async def connect(cls, host: str = 'localhost', port: int = 6379, *, db: int = 0, username: str | None = None,
                      password: str | None = None, timeout: float = 2.0, connect_timeout: float = 1.0) -> RespClient:
        """A client already connected (or the reason it could not connect)."""
        client = cls(host, port, db=db, username=username, password=password, timeout=timeout,
                     connect_timeout=connect_timeout)
        await client._connection()
        return client

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0, connect_timeout: float = 1.0) -> RespClient:
        """`redis://[[user]:password@]host[:port][/db]`, `rediss://` (TLS, certificate checked) or
        `unix://path[?db=N]`, read by redis-py's own parser, so a URL means the same to both clients.
        Other query options (e.g. ssl_cert_reqs) are ignored. Connects on the first call."""
        kwargs = parse_url(url)
        return cls(kwargs.get('host', 'localhost'), kwargs.get('port', 6379), db=kwargs.get('db', 0),
                   username=kwargs.get('username'), password=kwargs.get('password'), path=kwargs.get('path'),
                   ssl_context=ssl.create_default_context() if urlsplit(url).scheme == 'rediss' else None,
                   timeout=timeout, connect_timeout=connect_timeout)

    async def execute(self, *args: Arg) -> object:
        """One command's reply. Raises RespError for an error reply, RespConnectionError (an OSError) when
        there is none: connection refused or lost, or no reply within the timeout."""
        conn = self._conn
        if conn is None or conn.lost is not None:
            conn = await self._connection()
        return await conn.send(encode(args))

    async def evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> object:
        """Run `script` by its SHA1; should Redis not know it (a restart, SCRIPT FLUSH), once more with EVAL,
        which also loads it. Nothing ran on NOSCRIPT, so the repeat is safe for any script."""
        try:
            return await self.execute('EVALSHA', script.sha, len(keys), *keys, *args)
        except RespError as exc:
            if not str(exc).startswith('NOSCRIPT'):
                raise
        return await self.execute('EVAL', script.source, len(keys), *keys, *args)

    async def close(self) -> None:
        """Close the connection; calls waiting on it fail, and later calls too."""
        self._closed = True
        if self._connecting is not None:
            await asyncio.wait([self._connecting])
        if (conn := self._conn) is not None:
            self._conn = None
            conn.close(RespConnectionError, 'client closed')
            await conn.gone

    async def _connection(self) -> _Connection:
        """The live connection; concurrent callers share one attempt to open it."""
        if self._closed:
            raise RespConnectionError('client closed')
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._open(), name='resp-connect')
        return await asyncio.shield(self._connecting)

    def _protocol(self) -> _Connection:
        return _Connection(self._timeout, self.address)

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    if self._path is not None:
                        _, conn = await loop.create_unix_connection(self._protocol, self._path)
                    else:
                        _, conn = await loop.create_connection(self._protocol, self._host, self._port, ssl=self._ssl)
            except TimeoutError:
                raise RespTimeoutError(f'could not connect to Redis at {self.address} within '
                                       f'{self._connect_timeout:g} s') from None
            except OSError as exc:
                raise RespConnectionError(f'could not connect to Redis at {self.address}: {exc}') from exc
            try:
                for command in self._hello:  # AUTH, SELECT
                    await conn.send(command)
                if self._closed:
                    raise RespConnectionError('client closed')
            except BaseException:
                conn.close(RespConnectionError, 'connection setup failed')
                raise
            self._conn = conn
            return conn
        finally:
            self._connecting = None
