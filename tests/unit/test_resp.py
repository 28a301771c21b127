"""The hot-path Redis client's RESP2 parser and encoder, URL reading and timeouts, without a Redis server
(tests/integration/test_redis_ledger.py runs it against a real one)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest

from core.scheduler.resp import (
    Parser,
    RespClient,
    RespConnectionError,
    RespError,
    RespTimeoutError,
    Script,
    encode,
)

# Each reply as Redis sends it, and as the parser hands it over.
REPLIES: list[tuple[bytes, object]] = [
    (b'+OK\r\n', 'OK'),
    (b'+\r\n', ''),
    (b':0\r\n', 0),
    (b':-42\r\n', -42),
    (b':9223372036854775807\r\n', 2**63 - 1),
    (b'$5\r\nhello\r\n', 'hello'),
    (b'$0\r\n\r\n', ''),
    (b'$4\r\na\r\nb\r\n', 'a\r\nb'),  # a bulk string is read by its length, whatever it holds
    (b'$5\r\n\xc3\xa9t\xc3\xa9\r\n', 'été'),
    (b'$-1\r\n', None),
    (b'*0\r\n', []),
    (b'*-1\r\n', None),
    (b'*3\r\n:1\r\n$1\r\n2\r\n+3\r\n', [1, '2', '3']),
    (b'*2\r\n*2\r\n:1\r\n$-1\r\n*1\r\n*0\r\n', [[1, None], [[]]]),
    (b'*2\r\n$1\r\nx\r\n*-1\r\n', ['x', None]),
]


def parse_all(*chunks: bytes) -> list[object]:
    parser = Parser()
    replies: list[object] = []
    for chunk in chunks:
        replies += parser.feed(chunk)
    return replies


def plain(reply: object) -> object:
    """Error replies compared by message (exceptions are not equal to one another)."""
    if isinstance(reply, RespError):
        return ('error', str(reply))
    if isinstance(reply, list):
        return [plain(item) for item in reply]
    return reply


@pytest.mark.parametrize(('wire', 'expected'), REPLIES)
def test_each_reply_type(wire: bytes, expected: object) -> None:
    assert parse_all(wire) == [expected]


def test_an_error_reply_is_handed_over_as_a_resp_error_with_its_message() -> None:
    [reply] = parse_all(b'-NOSCRIPT No matching script. Please use EVAL.\r\n')
    assert isinstance(reply, RespError)
    assert str(reply) == 'NOSCRIPT No matching script. Please use EVAL.'
    nested = parse_all(b'*2\r\n-ERR one\r\n:2\r\n')  # e.g. EXEC: the error is one element, not the reply
    assert plain(nested) == [[('error', 'ERR one'), 2]]


def test_several_replies_in_one_chunk_come_out_in_order() -> None:
    stream = b''.join(wire for wire, _ in REPLIES) + b'-ERR last\r\n'
    assert plain(parse_all(stream)) == [expected for _, expected in REPLIES] + [('error', 'ERR last')]


def test_a_stream_split_at_every_byte_offset_parses_the_same() -> None:
    stream = b''.join(wire for wire, _ in REPLIES) + b'-ERR x\r\n'
    expected = plain(parse_all(stream))
    for cut in range(len(stream) + 1):
        assert plain(parse_all(stream[:cut], stream[cut:])) == expected, cut
    for first in range(0, len(stream), 7):  # and in three pieces
        for second in range(first, len(stream), 5):
            assert plain(parse_all(stream[:first], stream[first:second], stream[second:])) == expected
    assert plain(parse_all(*(stream[i:i + 1] for i in range(len(stream))))) == expected  # byte by byte


def test_an_incomplete_reply_waits_for_the_rest() -> None:
    parser = Parser()
    assert parser.feed(b'*2\r\n$3\r\nab') == []
    assert parser.feed(b'c\r\n') == []
    assert parser.feed(b':7\r\n:8') == [['abc', 7]]
    assert parser.feed(b'\r\n') == [8]


@pytest.mark.parametrize('wire', [b'?what\r\n', b':12x\r\n', b'$abc\r\n', b'\r\n'])
def test_bytes_that_are_not_resp2_raise(wire: bytes) -> None:
    with pytest.raises(ValueError):
        Parser().feed(wire)


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert encode(['EVALSHA', 'abc', 2, b'k\r\n', 'é']) == (
        b'*5\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n2\r\n$3\r\nk\r\n\r\n$2\r\n\xc3\xa9\r\n')
    assert encode([]) == b'*0\r\n'


def test_a_script_is_named_by_the_sha1_of_its_source() -> None:
    assert Script('return 1').sha == 'e0e1f9fabfc9d4800c877a703b823ac0578ff8db'  # what SCRIPT LOAD answers


@pytest.mark.parametrize(('url', 'address', 'hello'), [
    ('redis://127.0.0.1:6380/2', '127.0.0.1:6380', [b'*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n']),
    ('redis://localhost', 'localhost:6379', []),
    ('redis://:p%40ss@h/0', 'h:6379', [encode(['AUTH', 'p@ss'])]),
    ('redis://user:pw@h:1/3', 'h:1', [encode(['AUTH', 'user', 'pw']), encode(['SELECT', 3])]),
    ('redis://h/1?db=4', 'h:6379', [encode(['SELECT', 4])]),  # as redis-py: the query wins
    ('unix:///run/redis.sock?db=1', '/run/redis.sock', [encode(['SELECT', 1])]),
])
def test_urls_mean_what_they_mean_to_redis_py(url: str, address: str, hello: list[bytes]) -> None:
    client = RespClient.from_url(url)
    assert client.address == address
    assert client._hello == hello
    assert client._ssl is None


def test_rediss_means_tls_with_the_certificate_checked() -> None:
    client = RespClient.from_url('rediss://h:6380')
    assert isinstance(client._ssl, ssl.SSLContext) and client._ssl.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError):
        RespClient.from_url('http://h')


class FakeRedis:
    """A TCP server that answers `+OK` to every PING, or nothing at all while `silent`."""

    def __init__(self) -> None:
        self.silent = False
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while data := await reader.read(4096):
            if not self.silent:
                writer.write(b'+OK\r\n' * data.count(b'PING'))
        writer.close()

    def drop_all(self) -> None:
        for writer in self._writers:
            writer.transport.abort()


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeRedis, int]]:
    fake = FakeRedis()
    server = await asyncio.start_server(fake.handle, '127.0.0.1', 0)
    try:
        yield fake, server.sockets[0].getsockname()[1]
    finally:
        fake.drop_all()
        server.close()
        await server.wait_closed()


async def test_a_silent_server_times_the_call_out_and_the_next_call_reconnects(fake: tuple[FakeRedis, int]) -> None:
    server, port = fake
    client = await RespClient.connect('127.0.0.1', port, timeout=0.1)
    try:
        assert await client.execute('PING') == 'OK'
        server.silent = True
        first = asyncio.create_task(client.execute('PING'))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(client.execute('PING'))  # sent later, failed with the first all the same
        with pytest.raises(RespTimeoutError):
            await first
        with pytest.raises(RespTimeoutError):
            await second  # its reply could no longer be told from the first's: the connection is gone
        server.silent = False
        assert await client.execute('PING') == 'OK'
        assert server.connections == 2
    finally:
        await client.close()


async def test_a_lost_connection_fails_the_pending_calls_as_oserrors(fake: tuple[FakeRedis, int]) -> None:
    server, port = fake
    client = RespClient('127.0.0.1', port)
    try:
        server.silent = True
        pending = [asyncio.create_task(client.execute('PING')) for _ in range(3)]
        await asyncio.sleep(0.05)
        server.drop_all()
        for call in pending:
            with pytest.raises(OSError):  # RespConnectionError: what the ledger counts as an outage
                await call
        server.silent = False
        assert await client.execute('PING') == 'OK'
    finally:
        await client.close()
    with pytest.raises(RespConnectionError, match='closed'):
        await client.execute('PING')


async def test_a_refused_connection_fails_fast() -> None:
    client = RespClient('127.0.0.1', 1, connect_timeout=1.0)
    try:
        with pytest.raises(RespConnectionError, match='could not connect'):
            await client.execute('PING')
    finally:
        await client.close()
