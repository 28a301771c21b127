"""A small HTTP/1.1 client for the hot path: keep-alive connection pools to the engines, nothing else.

Why not httpx here: measured on this machine, one `httpx.AsyncClient.post` costs ~1.7 ms of CPU at any
concurrency and ~4 ms at 64 concurrent requests (its pool re-scans every connection per request) —
more than the whole gateway may add. Engines speak plain HTTP/1.1 with JSON bodies and chunked or
length-delimited responses; this client does exactly that on asyncio streams, in one write per request
and with TCP_NODELAY. httpx stays for everything off the hot path (discovery, health, admin calls).

    pool = ConnectionPool('http://gpu1:11434', connect_timeout=5, read_timeout=600)
    response = await pool.request('POST', '/api/chat', body)    # status and headers read
    async for chunk in response.iter_raw(): ...                  # or: await response.read()
    await response.aclose()                                      # back to the pool, or closed if unfinished
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

_MAX_HEAD = 64 * 1024


class EngineConnectionError(Exception):
    """Base of this client's errors."""


class UpstreamConnectError(EngineConnectionError):
    """Could not open a connection (refused, unreachable, connect timeout): nothing was sent."""


class UpstreamDisconnected(EngineConnectionError):
    """The engine closed the connection or broke the protocol before a complete response."""


class UpstreamTimeout(EngineConnectionError):
    """The engine stayed silent longer than the read timeout."""


class _Connection:
    __slots__ = ('reader', 'writer')

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        # abort, not close: never linger flushing to an engine we are leaving; the socket goes at once
        self.writer.transport.abort()


class UpstreamResponse:
    __slots__ = ('_chunked', '_conn', '_done', '_keep_alive', '_pool', '_remaining', 'headers', 'status')

    def __init__(self, pool: ConnectionPool, conn: _Connection, status: int, headers: dict[str, str]) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self.status = status
        self.headers = headers
        self._chunked = 'chunked' in headers.get('transfer-encoding', '').lower()
        length = headers.get('content-length')
        self._remaining = int(length) if length is not None and not self._chunked else -1  # -1: until close
        self._keep_alive = headers.get('connection', '').lower() != 'close' and (self._chunked or length is not None)
        self._done = (self._remaining == 0 and not self._chunked) or status in (204, 304)

    async def read(self) -> bytes:
        """The whole body; the connection goes back to the pool."""
        parts = [chunk async for chunk in self.iter_raw()]
        return b''.join(parts)

    async def iter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, transfer framing removed. Raises UpstreamDisconnected / UpstreamTimeout."""
        conn = self._conn
        if conn is None or self._done:
            return
        reader, timeout = conn.reader, self._pool.read_timeout
        try:
            if self._chunked:
                # Read whatever has arrived (often several chunks at once under load) and unframe it in
                # one go: one await, one timeout and one yield per read rather than per chunk.
                decoder = _ChunkedDecoder()
                while not decoder.done:
                    async with asyncio.timeout(timeout):
                        data = await reader.read(65536)
                    if not data:
                        raise UpstreamDisconnected('the engine closed the connection mid-body')
                    body = decoder.feed(data)
                    if body:
                        yield body
            elif self._remaining > 0:
                while self._remaining > 0:
                    async with asyncio.timeout(timeout):
                        data = await reader.read(min(self._remaining, 65536))
                    if not data:
                        raise UpstreamDisconnected('the engine closed the connection mid-body')
                    self._remaining -= len(data)
                    yield data
            else:  # no length, not chunked: the body ends when the engine closes the connection
                while True:
                    async with asyncio.timeout(timeout):
                        data = await reader.read(65536)
                    if not data:
                        break
                    yield data
        except TimeoutError:
            raise UpstreamTimeout(f'no data from the engine for {timeout:g} s') from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError) as exc:
            raise UpstreamDisconnected(f'the engine broke off the response ({exc.__class__.__name__})') from exc
        self._done = True
        await self.aclose()

    async def aclose(self) -> None:
        """Give the connection back if the body was read to its end, else close it (the engine sees the
        disconnect and stops generating)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep_alive:
            self._pool.release(conn)
        else:
            conn.close()


class ConnectionPool:
    """Keep-alive connections to one engine. Unbounded while busy (the caller's slots bound concurrency);
    at most `max_idle` kept between requests."""

    def __init__(self, base_url: str, *, connect_timeout: float, read_timeout: float, max_idle: int = 64) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {'http', 'https'} or not parts.hostname:
            raise ValueError(f'not an http(s) URL: {base_url!r}')
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == 'https' else 80)
        self._prefix = parts.path.rstrip('/')
        self._host_header = parts.netloc.encode()
        self._ssl = ssl.create_default_context() if parts.scheme == 'https' else None  # once, not per request
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: deque[_Connection] = deque()
        self._max_idle = max_idle
        self._closed = False

    async def request(self, method: str, path: str, body: bytes = b'', *,
                      content_type: bytes = b'application/json') -> UpstreamResponse:
        """Send a request and read the status line and headers. A reused connection that turns out to
        have been closed by the engine while idle is replaced once, transparently."""
        head = (method.encode() + b' ' + self._prefix.encode() + path.encode() + b' HTTP/1.1\r\nHost: '
                + self._host_header + b'\r\nContent-Type: ' + content_type + b'\r\nContent-Length: '
                + str(len(body)).encode() + b'\r\nAccept: */*\r\n\r\n')
        while True:
            conn, reused = await self._acquire()
            try:
                conn.writer.write(head + body)
                async with asyncio.timeout(self.read_timeout):
                    raw = await conn.reader.readuntil(b'\r\n\r\n')
            except TimeoutError:
                conn.close()
                raise UpstreamTimeout(f'no response from the engine for {self.read_timeout:g} s') from None
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                conn.close()
                if reused and isinstance(exc, asyncio.IncompleteReadError) and not exc.partial:
                    continue  # the engine had closed this idle connection: try a fresh one
                raise UpstreamDisconnected(f'the engine closed the connection ({exc.__class__.__name__})') from exc
            except asyncio.LimitOverrunError as exc:
                conn.close()
                raise UpstreamDisconnected('response headers too large') from exc
            except BaseException:
                conn.close()
                raise
            try:
                status, headers = _parse_head(raw)
            except ValueError as exc:
                conn.close()
                raise UpstreamDisconnected(f'malformed response from the engine: {exc}') from exc
            return UpstreamResponse(self, conn, status, headers)

    def release(self, conn: _Connection) -> None:
        if self._closed or len(self._idle) >= self._max_idle or conn.reader.at_eof():
            conn.close()
        else:
            self._idle.append(conn)

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            conn.close()
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()

    async def _acquire(self) -> tuple[_Connection, bool]:
        while self._idle:
            conn = self._idle.pop()  # most recently used: the least likely to have timed out
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn, True
            conn.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self._ssl,
                                                               limit=_MAX_HEAD)
        except TimeoutError:
            raise UpstreamConnectError(f'connecting to {self.host}:{self.port} timed out') from None
        except OSError as exc:
            raise UpstreamConnectError(f'cannot connect to {self.host}:{self.port}: {exc.strerror or exc}') from exc
        sock = writer.get_extra_info('socket')
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer), False


class _ChunkedDecoder:
    """Removes `Transfer-Encoding: chunked` framing from bytes split anywhere."""

    __slots__ = ('_buffer', '_left', '_trailer', 'done')

    def __init__(self) -> None:
        self._buffer = b''
        self._left = 0  # bytes of the current chunk still to come, then its CRLF
        self._trailer = False  # the last (empty) chunk was seen: skip trailer lines up to the empty one
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buffer = self._buffer + data if self._buffer else data
        out = []
        position = 0
        while not self.done:
            if self._left > 0:
                take = min(self._left, len(buffer) - position)
                if take <= 0:
                    break
                out.append(buffer[position:position + take])
                position += take
                self._left -= take
                if self._left:
                    break
                self._left = -2  # the chunk's trailing CRLF
            if self._left == -2:
                if len(buffer) - position < 2:
                    break
                position += 2
                self._left = 0
            line_end = buffer.find(b'\r\n', position)
            if line_end < 0:
                break
            if self._trailer:  # consume through the final empty line, so a reused connection starts clean
                self.done = line_end == position
                position = line_end + 2
                continue
            size = int(buffer[position:line_end].split(b';', 1)[0], 16)
            position = line_end + 2
            if size == 0:
                self._trailer = True
                continue
            self._left = size
        self._buffer = buffer[position:]
        return b''.join(out)


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode('latin-1').split('\r\n')
    version, _, rest = lines[0].partition(' ')
    if not version.startswith('HTTP/1.'):
        raise ValueError(f'status line {lines[0]!r}')
    status = int(rest[:3])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(':')
            headers[name.strip().lower()] = value.strip()
    return status, headers
