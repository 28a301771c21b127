"""Request bodies are bounded before anything reads them, on a real `mindrouter serve` process (API and console):
a client claiming 60 MiB gets its 413 while it has sent a few KiB, a chunked body is cut off once past the limit
while the client is still sending, and neither needs a key to be refused. Raw sockets, because an HTTP client
would insist on sending the whole body before it reads the answer."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.cluster import Cluster, running_cluster

LIMIT = 1 << 20  # MAX_REQUEST_BYTES here: 1 MiB
CLAIMED = 60 << 20
PART = 64 << 10


@pytest.fixture(scope='module')
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp('limits'), {}, settings={'MAX_REQUEST_BYTES': str(LIMIT)}) as cluster:
        yield cluster


class Connection:
    """One HTTP/1.1 request written by hand: headers, then body parts, the answer read whenever it comes."""

    def __init__(self, url: str) -> None:
        address = urlsplit(url)
        self.sock = socket.create_connection((address.hostname, address.port), timeout=10)
        self.sent = 0

    def start(self, path: str, headers: dict[str, str]) -> None:
        lines = [f'POST {path} HTTP/1.1', 'Host: mindrouter.test', 'Content-Type: application/json',
                 *(f'{name}: {value}' for name, value in headers.items())]
        self.sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body of the response (fails on a timeout: the server waited for more)."""
        data = b''
        while b'\r\n\r\n' not in data:
            chunk = self.sock.recv(65536)
            assert chunk, f'connection closed before an answer: {data!r}'
            data += chunk
        head, _, body = data.partition(b'\r\n\r\n')
        status_line, *header_lines = head.decode().split('\r\n')
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(':') for line in header_lines)}
        while len(body) < int(headers.get('content-length', 0)):
            body += self.sock.recv(65536)
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def connection(gateway: Cluster) -> Iterator[Connection]:
    opened = Connection(gateway.url)
    yield opened
    opened.close()


@pytest.mark.parametrize('path', ['/api/account/quota-requests', '/api/admin/users',
                                  '/_nicegui/client/any/upload/1'])  # a console upload route
def test_a_claimed_60_mib_is_refused_without_a_key_before_the_body_is_sent(connection: Connection,
                                                                          path: str) -> None:
    connection.start(path, {'Content-Length': str(CLAIMED)})
    connection.send(b'{"justification": "' + b'a' * PART)

    status, _, body = connection.answer()
    assert status == 413 and f'the limit is {LIMIT}'.encode() in body
    assert connection.sent < 2 * PART  # answered with almost all of the 60 MiB still unsent


@pytest.mark.parametrize('path', ['/api/account/quota-requests', '/api/admin/users'])
def test_a_chunked_body_is_cut_off_past_the_limit_without_a_key(connection: Connection, path: str) -> None:
    connection.start(path, {'Transfer-Encoding': 'chunked'})
    while connection.sent <= LIMIT + PART:  # past the limit, and then no end: the rest never comes
        connection.send(b'%x\r\n' % PART + b'a' * PART + b'\r\n')

    status, _, body = connection.answer()
    assert status == 413 and f'exceeds the limit of {LIMIT} bytes'.encode() in body


def test_an_inference_route_checks_the_key_first_and_audits_the_owners_refusal(gateway: Cluster) -> None:
    anonymous = Connection(gateway.url)
    anonymous.start('/v1/chat/completions', {'Content-Length': str(CLAIMED)})
    status, headers, _ = anonymous.answer()  # not a byte of the body sent
    anonymous.close()
    assert status == 401 and 'x-request-id' not in headers

    known = Connection(gateway.url)
    known.start('/v1/chat/completions', {'Content-Length': str(CLAIMED), 'Authorization': f'Bearer {gateway.key}'})
    known.send(b'{"model": "llama3.2", "messages": [{"role": "user", "content": "' + b'a' * PART)
    status, headers, body = known.answer()
    known.close()
    assert status == 413 and b'"code":"request_too_large"' in body

    request_id = headers['x-request-id']
    row = None
    for _ in range(50):  # the writer flushes every 0.2 s here
        with sqlite3.connect(gateway.data_dir / 'mindrouter.db') as db:
            row = db.execute('SELECT endpoint, status, http_status, prompt FROM request_log WHERE request_id = ?',
                             (request_id,)).fetchone()
        if row:
            break
        time.sleep(0.1)
    assert row == ('/v1/chat/completions', 'failed', 413, None)
