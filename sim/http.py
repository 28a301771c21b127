"""A minimal, fast asyncio HTTP/1.1 server: just enough protocol for the fake engines.

Why not an ASGI framework: the fakes are the "backend" side of gateway benchmarks, so they must cost far less per
request than the gateway they measure (a Protocol-based server with no per-request framework work does >10k
requests/s on one core). What it does:

* keep-alive (HTTP/1.1 default; HTTP/1.0 with `Connection: keep-alive`), pipelined requests answered in order;
* request bodies by Content-Length or `Transfer-Encoding: chunked`; `Expect: 100-continue`;
* responses with Content-Length (`Response`) or chunked (`StreamResponse`, an async iterator of byte chunks;
  headers go out with the first chunk, so a stream can still turn into a plain error response until then);
* a client that disconnects cancels its handler task, so a generation stops at its next await;
* handlers control the connection with exceptions: `EarlyResponse`, `CloseConnection` (flush, then close),
  `AbortConnection` (close at once, answering nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

log = logging.getLogger('sim.http')

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024


class Request:
    __slots__ = ('_headers', 'body', 'keep_alive', 'method', 'path', 'query', 'raw_headers', 'version')

    def __init__(
        self, method: str, path: str, query: str, version: str, raw_headers: bytes, body: bytes, keep_alive: bool
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.raw_headers = raw_headers  # the header lines, as received
        self.body = body
        self.keep_alive = keep_alive
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Header names lower-cased; a repeated header keeps its last value. Parsed on first use: the fakes
        rarely look at headers, and parsing a dozen SDK headers per request is a measurable cost."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for line in self.raw_headers.decode('latin-1').split('\r\n'):
                name, sep, value = line.partition(':')
                if sep:
                    headers[name.strip().lower()] = value.strip()
            self._headers = headers
        return self._headers


class Response:
    __slots__ = ('body', 'content_type', 'headers', 'status')

    def __init__(
        self,
        status: int = 200,
        body: bytes = b'',
        content_type: str | None = 'application/json',
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers


class StreamResponse:
    __slots__ = ('chunks', 'content_type', 'headers', 'status')

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        content_type: str,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.chunks = chunks
        self.content_type = content_type
        self.status = status
        self.headers = headers


class EarlyResponse(Exception):
    """Answer with this response instead (from a handler, or from a stream before its first chunk)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class CloseConnection(Exception):
    """Send what was written so far, then close the connection (a stream cut short)."""


class AbortConnection(Exception):
    """Close the connection at once without answering."""


class _ClientGone(Exception):
    pass


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]


class Router:
    """Exact (method, path) routing; HEAD falls back to GET. Unknown paths and methods go to the fallbacks."""

    def __init__(self, not_found: Handler, method_not_allowed: Handler) -> None:
        self._routes: dict[tuple[str, str], Handler] = {}
        self._paths: set[str] = set()
        self.not_found = not_found
        self.method_not_allowed = method_not_allowed

    def add(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method, path)] = handler
        self._paths.add(path)

    def resolve(self, method: str, path: str) -> Handler:
        handler = self._routes.get((method, path))
        if handler is None and method == 'HEAD':
            handler = self._routes.get(('GET', path))
        if handler is not None:
            return handler
        return self.method_not_allowed if path in self._paths else self.not_found


_STATUS_LINES: dict[int, bytes] = {s.value: f'HTTP/1.1 {s.value} {s.phrase}\r\n'.encode('latin-1') for s in HTTPStatus}


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _parse_chunked(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at `start`; None while incomplete. Trailers are skipped."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b'\r\n', pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b';', 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest(400, 'invalid chunk size') from None
        pos = eol + 2
        if size == 0:
            while True:  # trailers end with an empty line
                eol = buf.find(b'\r\n', pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return bytes(body), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos : pos + size]
        if len(body) > MAX_BODY_BYTES:
            raise _BadRequest(413, 'request body too large')
        pos += size + 2


_TRANSFER_ENCODING = b'\r\ntransfer-encoding:'
_CONTENT_LENGTH = b'\r\ncontent-length:'
_CONNECTION = b'\r\nconnection:'
_EXPECT = b'\r\nexpect:'


class _Head:
    """A parsed request line and the few headers the protocol itself needs (found without parsing the rest)."""

    __slots__ = ('body_start', 'chunked', 'length', 'lower', 'parts', 'raw')

    def __init__(self, parts: list[str], raw: bytes, body_start: int) -> None:
        self.parts = parts
        self.raw = raw
        self.lower = b'\r\n' + raw.lower()
        self.body_start = body_start
        encoding = self.value(_TRANSFER_ENCODING)
        self.chunked = bool(encoding)
        if encoding and encoding.lower() != 'chunked':
            raise _BadRequest(501, 'unsupported transfer-encoding')
        self.length = 0
        if not self.chunked:
            try:
                self.length = int(self.value(_CONTENT_LENGTH) or '0')
            except ValueError:
                raise _BadRequest(400, 'invalid content-length') from None
            if self.length < 0:
                raise _BadRequest(400, 'invalid content-length')
            if self.length > MAX_BODY_BYTES:
                raise _BadRequest(413, 'request body too large')

    def value(self, needle: bytes) -> str:
        """The (first) value of the header that `needle` (b'\\r\\n<lower-case name>:') finds, '' when absent."""
        i = self.lower.find(needle)
        if i < 0:
            return ''
        i += len(needle)
        j = self.lower.find(b'\r\n', i)
        # `lower` has two extra leading bytes, so the same slice of `raw` is shifted by two.
        return self.raw[i - 2 : (j - 2 if j >= 0 else len(self.raw))].decode('latin-1').strip()


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # a request is being answered (eagerly, or by self.task)
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self.paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.pending: _Head | None = None  # the head of a request whose body is still arriving
        self.continue_sent = False

    # -- asyncio.Protocol -------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the asyncio.Transport interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def eof_received(self) -> bool | None:
        # A client's EOF means it went away (as uvicorn and Go's net/http treat it): returning None closes the
        # transport, and connection_lost cancels whatever it was waiting for.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.task is not None:
            self.task.cancel()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_exception(_ClientGone())
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    # -- parsing ------------------------------------------------------------------------------------------------
    def _next(self) -> None:
        """Answer the complete requests in the buffer, one at a time.

        Each answer starts eagerly: the handler runs synchronously until it first has to wait, and only then does
        a task take over (`_resume`). A request that needs no waiting (the common benchmark case) costs no task,
        which is most of the per-request overhead of an asyncio server. The price: a handler must not rely on
        asyncio.current_task() before its first await.
        """
        while not self.closed and not self.busy:
            try:
                request = self._parse()
            except _BadRequest as e:
                body = f'{e.message}\n'.encode()
                self._write_simple(e.status, body, 'text/plain; charset=utf-8', keep_alive=False)
                self.close()
                return
            if request is None:
                return
            self.busy = True
            coro = self._serve(request)
            try:
                waiting_on = coro.send(None)
            except StopIteration:
                self.busy = False
                continue
            self.task = self.loop.create_task(self._resume(coro, waiting_on))
            self.task.add_done_callback(self._task_done)
            return

    async def _resume(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        """Drive a started `_serve` coroutine to its end, as a Task would: wait for what it waits on, resume it.

        A cancellation of this task cancels the awaited future, and the coroutine sees that when it resumes; if
        the future had already completed, the cancellation is thrown into the coroutine instead.
        """
        while True:
            throw = False
            try:
                if waiting_on is None:  # a bare yield (asyncio.sleep(0)): just let the loop run once
                    await asyncio.sleep(0)
                else:
                    # What a Task does with a yielded future: clear the flag the coroutine's await set, then
                    # wait on it (awaiting it again with the flag set would raise "await wasn't used").
                    waiting_on._asyncio_future_blocking = False
                    await waiting_on
            except asyncio.CancelledError:
                throw = waiting_on is None or not waiting_on.cancelled()
            except Exception:
                pass  # the coroutine reads the future's outcome itself when it resumes
            try:
                waiting_on = coro.throw(asyncio.CancelledError()) if throw else coro.send(None)
            except StopIteration:
                return

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.task = None
        self.busy = False
        self._next()

    def _parse(self) -> Request | None:
        buf = self.buf
        if not buf:
            return None
        if self.pending is None:
            end = buf.find(b'\r\n\r\n')
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise _BadRequest(431, 'request header too large')
                return None
            head = bytes(buf[:end])
            line_end = head.find(b'\r\n')
            if line_end < 0:
                line_end = end
            parts = head[:line_end].decode('latin-1').split(' ')
            if len(parts) != 3 or not parts[2].startswith('HTTP/1.'):
                raise _BadRequest(400, 'malformed request line')
            self.pending = _Head(parts, head[line_end + 2 :], end + 4)
            self.continue_sent = False
        pending = self.pending
        start = pending.body_start
        if pending.chunked:
            parsed = _parse_chunked(buf, start)
            if parsed is None:
                self._maybe_continue(pending)
                return None
            body, stop = parsed
        else:
            stop = start + pending.length
            if len(buf) < stop:
                self._maybe_continue(pending)
                return None
            body = bytes(buf[start:stop])
        del buf[:stop]
        self.pending = None
        method, target, version = pending.parts
        path, _, query = target.partition('?')
        connection = pending.value(_CONNECTION).lower()
        keep_alive = connection != 'close' if version == 'HTTP/1.1' else connection == 'keep-alive'
        return Request(method, path, query, version, pending.raw, body, keep_alive)

    def _maybe_continue(self, pending: _Head) -> None:
        if not self.continue_sent and pending.value(_EXPECT).lower() == '100-continue':
            self.continue_sent = True
            self._write(b'HTTP/1.1 100 Continue\r\n\r\n')

    # -- writing ------------------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise _ClientGone
        self.transport.write(data)

    def _head(
        self,
        status: int,
        content_type: str | None,
        length: int | None,
        headers: list[tuple[str, str]] | None,
        keep_alive: bool,
    ) -> bytes:
        # The part that only changes with the second (Date) is built once per second and kind of response.
        prefix = self.server.head_prefix(status, content_type, keep_alive)
        size = b'Transfer-Encoding: chunked\r\n' if length is None else b'Content-Length: %d\r\n' % length
        if not headers:
            return prefix + size + b'\r\n'
        extra = b''.join(name.encode('latin-1') + b': ' + value.encode('latin-1') + b'\r\n' for name, value in headers)
        return prefix + size + extra + b'\r\n'

    def _write_simple(self, status: int, body: bytes, content_type: str, keep_alive: bool) -> None:
        with contextlib.suppress(_ClientGone):
            self._write(self._head(status, content_type, len(body), None, keep_alive) + body)

    def _write_response(self, response: Response, head_only: bool, keep_alive: bool) -> None:
        body = response.body
        head = self._head(response.status, response.content_type, len(body), response.headers, keep_alive)
        self._write(head if head_only else head + body)

    async def _drain(self) -> None:
        if self.closed:
            raise _ClientGone
        if self.paused:
            self.drain_waiter = self.loop.create_future()
            try:
                await self.drain_waiter
            finally:
                self.drain_waiter = None

    async def _write_stream(self, stream: StreamResponse, head_only: bool, keep_alive: bool) -> None:
        chunks = stream.chunks
        started = False
        try:
            if head_only:
                self._write(self._head(stream.status, stream.content_type, None, stream.headers, keep_alive))
                self._write(b'0\r\n\r\n')
                return
            try:
                async for chunk in chunks:
                    if not chunk:
                        continue  # an empty chunk would end the body
                    framed = b'%x\r\n%b\r\n' % (len(chunk), chunk)
                    if not started:
                        head = self._head(stream.status, stream.content_type, None, stream.headers, keep_alive)
                        self._write(head + framed)
                        started = True
                    else:
                        self._write(framed)
                    if self.paused:
                        await self._drain()
            except EarlyResponse as e:
                if started:
                    raise CloseConnection from None
                self._write_response(e.response, False, keep_alive)
                return
            if not started:
                self._write(self._head(stream.status, stream.content_type, None, stream.headers, keep_alive))
            self._write(b'0\r\n\r\n')
        finally:
            aclose = getattr(chunks, 'aclose', None)
            if aclose is not None:
                await aclose()

    # -- serving ------------------------------------------------------------------------------------------------
    async def _serve(self, request: Request) -> None:
        keep_alive = request.keep_alive
        head_only = request.method == 'HEAD'
        try:
            handler = self.server.router.resolve(request.method, request.path)
            try:
                result = await handler(request)
            except EarlyResponse as e:
                result = e.response
            if isinstance(result, Response):
                self._write_response(result, head_only, keep_alive)
            else:
                await self._write_stream(result, head_only, keep_alive)
        except AbortConnection:
            keep_alive = False
            self.abort()
        except CloseConnection:
            keep_alive = False
            self.close()
        except (_ClientGone, asyncio.CancelledError):
            # The client went away (or the server is stopping): nothing left to answer. Ending the task
            # normally keeps shutdown quiet.
            keep_alive = False
        except Exception:
            log.exception('sim handler failed for %s %s', request.method, request.path)
            keep_alive = False
            self._write_simple(500, b'Internal Server Error\n', 'text/plain; charset=utf-8', keep_alive=False)
            self.close()
        if not keep_alive:
            self.close()

    def close(self) -> None:
        """Flush what is buffered, then close."""
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.closed = True
            self.transport.abort()


class HttpServer:
    def __init__(self, router: Router, *, server_header: str | None = None) -> None:
        self.router = router
        self.extra_head = f'Server: {server_header}\r\n'.encode('latin-1') if server_header else b''
        self.connections: set[_Connection] = set()
        self._heads: dict[tuple[int, str | None, bool], tuple[int, bytes]] = {}
        self._server: asyncio.Server | None = None
        self.host = ''
        self.port = 0

    def head_prefix(self, status: int, content_type: str | None, keep_alive: bool) -> bytes:
        """Status line, Date, Server, Content-Type and Connection headers, cached for the current second."""
        now = int(time.time())
        key = (status, content_type, keep_alive)
        cached = self._heads.get(key)
        if cached is not None and cached[0] == now:
            return cached[1]
        status_line = _STATUS_LINES.get(status) or f'HTTP/1.1 {status} Unknown\r\n'.encode('latin-1')
        parts = [status_line, b'Date: ', formatdate(now, usegmt=True).encode('latin-1'), b'\r\n', self.extra_head]
        if content_type is not None:
            parts += (b'Content-Type: ', content_type.encode('latin-1'), b'\r\n')
        if not keep_alive:
            parts.append(b'Connection: close\r\n')
        prefix = b''.join(parts)
        self._heads[key] = (now, prefix)
        return prefix

    async def start(self, host: str = '127.0.0.1', port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = host, int(sockname[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening, drop every connection (cancelling its handler) and wait until all are gone."""
        if self._server is None:
            return
        self._server.close()
        connections = list(self.connections)
        tasks = [c.task for c in connections if c.task is not None]
        for c in connections:
            c.abort()
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        lost = [c.lost for c in connections]
        if lost:
            await asyncio.wait(lost, timeout=2)
        await self._server.wait_closed()
        self._server = None
