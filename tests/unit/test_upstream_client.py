"""The hot-path HTTP/1.1 client against a raw asyncio server that answers exactly what each test says."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable

import pytest

from core.gateway.http import ConnectionPool, UpstreamConnectError, UpstreamDisconnected, UpstreamTimeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], object]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)  # type: ignore[misc]
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        servers.append(server)
        return f'http://127.0.0.1:{server.sockets[0].getsockname()[1]}'

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b'\r\n\r\n')
    length = next((int(line.split(b':')[1]) for line in head.split(b'\r\n')
                   if line.lower().startswith(b'content-length')), 0)
    return head + await reader.readexactly(length)


async def test_length_delimited_bodies_reuse_one_connection(serve: Callable[[Handler], object]) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            body = request.rsplit(b'\r\n\r\n', 1)[1]
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body))
            await writer.drain()

    pool = ConnectionPool(await serve(handler), connect_timeout=1, read_timeout=1)  # type: ignore[misc]
    for n in range(5):
        response = await pool.request('POST', '/echo', b'{"n": %d}' % n)
        assert response.status == 200 and await response.read() == b'{"n": %d}' % n
    assert connections == 1
    await pool.aclose()


async def test_chunked_streams_arrive_piece_by_piece_without_framing(serve: Callable[[Handler], object]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
        for piece in (b'data: one\n\n', b'data: two\n\n'):
            writer.write(b'%x\r\n%s\r\n' % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b'0\r\n\r\n')
        await writer.drain()

    pool = ConnectionPool(await serve(handler), connect_timeout=1, read_timeout=1)  # type: ignore[misc]
    response = await pool.request('POST', '/stream', b'{}')
    assert [chunk async for chunk in response.iter_raw()] == [b'data: one\n\n', b'data: two\n\n']
    await pool.aclose()
    await asyncio.sleep(0)


async def test_a_cut_stream_raises_and_an_unfinished_response_closes_its_connection(
        serve: Callable[[Handler], object]) -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
        await writer.drain()
        if await reader.read() == b'':  # the client hung up
            closed.set()

    pool = ConnectionPool(await serve(handler), connect_timeout=1, read_timeout=1)  # type: ignore[misc]
    response = await pool.request('POST', '/stream', b'{}')
    chunks = response.iter_raw()
    assert await anext(chunks) == b'hello'
    await response.aclose()  # the client gives up mid-answer
    await asyncio.wait_for(closed.wait(), 1)  # the engine sees the disconnect and can stop generating


async def test_refused_silent_and_vanishing_engines(serve: Callable[[Handler], object]) -> None:
    with pytest.raises(UpstreamConnectError, match='cannot connect'):
        await ConnectionPool('http://127.0.0.1:9', connect_timeout=1, read_timeout=1).request('POST', '/', b'')

    silence = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await silence.wait()

    with pytest.raises(UpstreamTimeout):
        await ConnectionPool(await serve(silent), connect_timeout=1, read_timeout=0.1  # type: ignore[misc]
                             ).request('POST', '/', b'')
    silence.set()

    async def vanishing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    with pytest.raises(UpstreamDisconnected):
        await ConnectionPool(await serve(vanishing), connect_timeout=1, read_timeout=1  # type: ignore[misc]
                             ).request('POST', '/', b'')


async def test_an_idle_connection_the_engine_closed_is_replaced_transparently(
        serve: Callable[[Handler], object]) -> None:
    async def one_request_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')  # says keep-alive, then hangs up
        await writer.drain()

    pool = ConnectionPool(await serve(one_request_per_connection), connect_timeout=1,  # type: ignore[misc]
                          read_timeout=1)
    for _ in range(3):
        response = await pool.request('POST', '/', b'')
        assert await response.read() == b'ok'
        await asyncio.sleep(0.01)  # let the close arrive while the connection sits idle
    await pool.aclose()


@pytest.mark.parametrize('trailer', [b'', b'X-Checksum: 1\r\n'])
async def test_chunked_framing_split_anywhere_gives_the_same_body(serve: Callable[[Handler], object],
                                                                  trailer: bytes) -> None:
    pieces = [b'data: one\n\n', b'x' * 300, 'data: café ☕\n\n'.encode(), b'z']
    wire = b''.join(b'%x\r\n%s\r\n' % (len(p), p) for p in pieces) + b'0\r\n' + trailer + b'\r\n'
    rng = random.Random(7)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
            cuts = sorted(rng.sample(range(1, len(wire)), 8))
            for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
                writer.write(wire[start:end])
                await writer.drain()
                await asyncio.sleep(0.001)

    pool = ConnectionPool(await serve(handler), connect_timeout=1, read_timeout=1)  # type: ignore[misc]
    for _ in range(20):  # the same connection each time: every response must leave it clean
        response = await pool.request('POST', '/stream', b'{}')
        assert await response.read() == b''.join(pieces)
    await pool.aclose()
