"""The raw HTTP/1.1 layer under the fakes: keep-alive, pipelining, request bodies, HEAD, bad requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from sim import SimServer


class Conn:
    """One raw TCP connection, reading responses with Content-Length or chunked bodies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def response(self, head_only: bool = False) -> tuple[str, dict[str, str], bytes]:
        head = (await self.reader.readuntil(b'\r\n\r\n')).decode('latin-1')
        status, *lines = head.strip().split('\r\n')
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(':') for line in lines)}
        if head_only or status.startswith('HTTP/1.1 100'):
            return status, headers, b''
        if headers.get('transfer-encoding') == 'chunked':
            body = b''
            while True:
                size = int((await self.reader.readuntil(b'\r\n')).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    return status, headers, body
                body += chunk[:-2]
        return status, headers, await self.reader.readexactly(int(headers.get('content-length', '0')))


@pytest.fixture
async def conn(vllm: SimServer) -> AsyncIterator[Conn]:
    reader, writer = await asyncio.open_connection('127.0.0.1', vllm.port)
    yield Conn(reader, writer)
    writer.close()
    await writer.wait_closed()


def post(path: str, body: bytes, extra: str = '') -> bytes:
    return f'POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n'.encode() + body


CHAT = orjson.dumps({'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 2})


async def test_keep_alive_and_pipelining(conn: Conn) -> None:
    conn.writer.write(post('/v1/chat/completions', CHAT))
    status, headers, body = await conn.response()
    assert status == 'HTTP/1.1 200 OK' and 'connection' not in headers
    assert orjson.loads(body)['object'] == 'chat.completion'
    # Two requests in one write: two answers, in order, on the same connection.
    conn.writer.write(
        post('/v1/completions', orjson.dumps({'prompt': 'a', 'max_tokens': 1})) + post('/v1/chat/completions', CHAT)
    )
    first, second = await conn.response(), await conn.response()
    assert orjson.loads(first[2])['object'] == 'text_completion'
    assert orjson.loads(second[2])['object'] == 'chat.completion'


async def test_chunked_request_body(conn: Conn) -> None:
    half = len(CHAT) // 2
    chunks = b'%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n' % (half, CHAT[:half], len(CHAT) - half, CHAT[half:])
    conn.writer.write(b'POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n' + chunks)
    status, _, body = await conn.response()
    assert status == 'HTTP/1.1 200 OK' and orjson.loads(body)['usage']['completion_tokens'] == 2


async def test_expect_100_continue(conn: Conn) -> None:
    head = post('/v1/chat/completions', CHAT, 'Expect: 100-continue\r\n')[: -len(CHAT)]
    conn.writer.write(head)  # the head alone: the body follows once the server says "continue"
    status, _, _ = await conn.response()
    assert status == 'HTTP/1.1 100 Continue'
    conn.writer.write(CHAT)
    status, _, _ = await conn.response()
    assert status == 'HTTP/1.1 200 OK'


async def test_head_and_connection_close(conn: Conn) -> None:
    conn.writer.write(b'HEAD /v1/models HTTP/1.1\r\nHost: t\r\n\r\n')
    status, headers, _ = await conn.response(head_only=True)
    assert status == 'HTTP/1.1 200 OK' and int(headers['content-length']) > 0
    conn.writer.write(b'GET /version HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
    status, headers, body = await conn.response()
    assert headers['connection'] == 'close' and orjson.loads(body) == {'version': '0.32.0'}
    assert await conn.reader.read() == b''  # the server closed the connection


async def test_http_1_0_closes(conn: Conn) -> None:
    conn.writer.write(b'GET /version HTTP/1.0\r\n\r\n')
    _, headers, _ = await conn.response()
    assert headers['connection'] == 'close'
    assert await conn.reader.read() == b''


async def test_malformed_request(conn: Conn) -> None:
    conn.writer.write(b'NONSENSE\r\n\r\n')
    status, _, _ = await conn.response()
    assert status.startswith('HTTP/1.1 400')
    assert await conn.reader.read() == b''


async def test_stop_drops_open_connections(vllm: SimServer) -> None:
    vllm.config.ttft_ms = 5000
    reader, writer = await asyncio.open_connection('127.0.0.1', vllm.port)
    writer.write(post('/v1/chat/completions', CHAT))
    await asyncio.sleep(0.05)
    await vllm.stop()
    assert await reader.read() == b''
    writer.close()
    await writer.wait_closed()
    assert vllm.stats.in_flight == 0 and vllm.stats.cancelled == 1
