"""Image URL fetching: a real HTTP server on 127.0.0.1 for the fetches, an injected resolver and httpx's
MockTransport to play public and private hosts without touching the network."""

from __future__ import annotations

import asyncio
import datetime
import re
import ssl
import struct
import zlib
from base64 import b64decode
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.errors import InvalidRequest
from core.gateway.image_fetch import ImageFetcher

PARAM = 'messages[0].content[1].image_url.url'
PUBLIC_IP = '93.184.216.34'


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


# a complete 1x1 8-bit greyscale PNG: signature, IHDR, IDAT (filter byte + one pixel), IEND
PNG = (
    b'\x89PNG\r\n\x1a\n'
    + _chunk(b'IHDR', struct.pack('>IIBBBBB', 1, 1, 8, 0, 0, 0, 0))
    + _chunk(b'IDAT', zlib.compress(b'\x00\x7f'))
    + _chunk(b'IEND', b'')
)
JPEG = b'\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00' + b'\x00' * 32
GIF87 = b'GIF87a\x01\x00\x01\x00\x00\x00\x00;'
GIF89 = b'GIF89a\x01\x00\x01\x00\x00\x00\x00;'
WEBP = b'RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00'
BMP = b'BM' + struct.pack('<IHHI', 58, 0, 0, 54) + struct.pack('<IiiHHIIiiII', 40, 1, 1, 1, 24, 0, 4, 0, 0, 0, 0)
BMP += b'\x00\x00\xff\x00'
MAX_BYTES = 4096

Route = Callable[[asyncio.StreamWriter], Awaitable[None]]


def respond(status: str, body: bytes = b'', content_type: str = 'text/plain', **headers: str) -> Route:
    async def route(writer: asyncio.StreamWriter) -> None:
        extra = ''.join(f'{name.replace("_", "-")}: {value}\r\n' for name, value in headers.items())
        head = f'HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}'
        writer.write(head.encode() + b'Connection: close\r\n\r\n' + body)
        await writer.drain()

    return route


async def endless(writer: asyncio.StreamWriter) -> None:
    """A chunked body with no end and no Content-Length: only the fetcher's own counting can stop it."""
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n')
    piece = PNG + b'\x00' * 1000
    while True:
        writer.write(b'%x\r\n%s\r\n' % (len(piece), piece))
        await writer.drain()
        await asyncio.sleep(0)


async def announced_huge(writer: asyncio.StreamWriter) -> None:
    """Says 10 MB and then sends nothing: refusing must not wait for the body."""
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 10000000\r\n\r\n')
    await writer.drain()
    await asyncio.sleep(3600)


async def silent(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


class Server:
    """A raw HTTP/1.1 server on 127.0.0.1 answering each path with its route; records each request head."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.routes: dict[str, Route] = {
            '/png': respond('200 OK', PNG, 'image/png'),
            '/jpeg': respond('200 OK', JPEG, 'image/jpeg'),
            '/gif87': respond('200 OK', GIF87),
            '/gif89': respond('200 OK', GIF89),
            '/webp': respond('200 OK', WEBP),
            '/bmp': respond('200 OK', BMP),
            '/lying-png': respond('200 OK', PNG, 'text/html'),  # the bytes decide, not Content-Type
            '/text': respond('200 OK', b'BMW is not an image, and neither is this text file.\n', 'image/png'),
            '/empty': respond('200 OK', b'', 'image/png'),
            '/missing': respond('404 Not Found', b'no such image'),
            '/error': respond('500 Internal Server Error', b'boom'),
            '/large': respond('200 OK', PNG + b'\x00' * MAX_BYTES, 'image/png'),
            '/exact': respond('200 OK', PNG + b'\x00' * (MAX_BYTES - len(PNG)), 'image/png'),
            '/endless': endless,
            '/announced-huge': announced_huge,
            '/silent': silent,
            '/redirect': respond('302 Found', location='/png'),
            '/redirect-twice': respond('301 Moved Permanently', location='/redirect'),
            '/redirect-relative': respond('307 Temporary Redirect', location='png'),
            '/loop': respond('302 Found', location='/loop'),
            '/to-metadata': respond('302 Found', location='http://169.254.169.254/latest/meta-data/'),
            '/to-file': respond('302 Found', location='file:///etc/passwd'),
            '/no-location': respond('302 Found'),
        }

    @property
    def base(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, '127.0.0.1', 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        self.routes['/to-localhost'] = respond('302 Found', location=f'http://localhost:{self.port}/png')

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b'\r\n\r\n')
            self.requests.append(head)
            path = head.split(b' ', 2)[1].decode()
            await self.routes.get(path, respond('404 Not Found'))(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the fetcher hung up: what the size limit does
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    await srv.start()
    yield srv
    await srv.close()


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., ImageFetcher]]:
    fetchers: list[ImageFetcher] = []

    def build(**options: object) -> ImageFetcher:
        options.setdefault('max_bytes', MAX_BYTES)
        options.setdefault('timeout', 5.0)
        fetcher = ImageFetcher(**options)  # type: ignore[arg-type]
        fetchers.append(fetcher)
        return fetcher

    yield build
    for fetcher in fetchers:
        await fetcher.aclose()


def resolver(*addresses: str) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f'IP literals must not be resolved (asked for {host})')


def never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f'a refused URL must not be fetched: {request.url}')


async def refused(fetcher: ImageFetcher, url: str, match: str) -> InvalidRequest:
    """Asserts the fetch fails as a 400 naming PARAM; `{param}` in `match` stands for PARAM, escaped."""
    with pytest.raises(InvalidRequest, match=match.replace('{param}', re.escape(PARAM))) as info:
        await fetcher.fetch(url, param=PARAM)
    assert info.value.param == PARAM
    assert info.value.status_code == 400
    return info.value


# --- fetching ---------------------------------------------------------------------------------------------


async def test_png_from_an_allowed_host_round_trips(server: Server, make: Callable[..., ImageFetcher]) -> None:
    fetcher = make(allowed_hosts=['127.0.0.1'])
    image = await fetcher.fetch(f'{server.base}/png', param=PARAM)
    assert image.media_type == 'image/png'
    assert b64decode(image.data) == PNG
    head = server.requests[-1].lower()
    assert f'host: 127.0.0.1:{server.port}\r\n'.encode() in head
    assert b'accept-encoding: identity\r\n' in head


@pytest.mark.parametrize(
    ('path', 'data', 'media_type'),
    [
        ('/jpeg', JPEG, 'image/jpeg'),
        ('/gif87', GIF87, 'image/gif'),
        ('/gif89', GIF89, 'image/gif'),
        ('/webp', WEBP, 'image/webp'),
        ('/bmp', BMP, 'image/bmp'),
        ('/lying-png', PNG, 'image/png'),
        ('/exact', PNG + b'\x00' * (MAX_BYTES - len(PNG)), 'image/png'),
    ],
)
async def test_the_sniffed_type_names_the_image(
    server: Server, make: Callable[..., ImageFetcher], path: str, data: bytes, media_type: str
) -> None:
    image = await make(allowed_hosts=['127.0.0.1']).fetch(server.base + path, param=PARAM)
    assert (b64decode(image.data), image.media_type) == (data, media_type)


async def test_allowed_hosts_match_names_case_insensitively_and_send_the_name_as_host(
    server: Server, make: Callable[..., ImageFetcher]
) -> None:
    fetcher = make(allowed_hosts=['LocalHost'], resolve=resolver('127.0.0.1'))
    image = await fetcher.fetch(f'http://LOCALHOST:{server.port}/png', param=PARAM)
    assert b64decode(image.data) == PNG
    assert f'host: localhost:{server.port}\r\n'.encode() in server.requests[-1].lower()


async def test_allow_private_lets_loopback_through(server: Server, make: Callable[..., ImageFetcher]) -> None:
    image = await make(allow_private=True).fetch(f'{server.base}/png', param=PARAM)
    assert b64decode(image.data) == PNG


@pytest.mark.parametrize('path', ['/redirect', '/redirect-twice', '/redirect-relative'])
async def test_redirects_are_followed_to_the_image(
    server: Server, make: Callable[..., ImageFetcher], path: str
) -> None:
    image = await make(allowed_hosts=['127.0.0.1']).fetch(server.base + path, param=PARAM)
    assert b64decode(image.data) == PNG


async def test_a_public_name_is_fetched_from_the_checked_ip_with_the_real_host_and_sni(
    make: Callable[..., ImageFetcher],
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=PNG, headers={'content-type': 'application/octet-stream'})

    fetcher = make(resolve=resolver(PUBLIC_IP), transport=httpx.MockTransport(handler))
    image = await fetcher.fetch('https://Images.Example.com/cat.png?size=1', param=PARAM)
    assert (b64decode(image.data), image.media_type) == (PNG, 'image/png')
    (request,) = seen
    assert str(request.url) == f'https://{PUBLIC_IP}/cat.png?size=1'
    assert request.headers['host'] == 'images.example.com'
    assert request.extensions['sni_hostname'] == 'images.example.com'

    await fetcher.fetch('http://images.example.com:8080/cat.png', param=PARAM)
    assert str(seen[-1].url) == f'http://{PUBLIC_IP}:8080/cat.png'
    assert seen[-1].headers['host'] == 'images.example.com:8080'
    assert 'sni_hostname' not in seen[-1].extensions  # plain http: no TLS


def _certificates(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a certificate for `name` (only): the server's context and a client's that trusts the CA."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'test CA')])
    ca = issue('test CA', ca_key, ca_name, ca_key, ca=True)
    leaf = issue(name, leaf_key, ca_name, ca_key, ca=False)
    (tmp / 'leaf.pem').write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp / 'key.pem').write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / 'leaf.pem', tmp / 'key.pem')
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


async def test_https_connects_to_the_ip_and_verifies_the_certificate_for_the_name(
    tmp_path: Path, make: Callable[..., ImageFetcher]
) -> None:
    server_tls, client_tls = _certificates(tmp_path, 'images.test')
    srv = Server(tls=server_tls)
    await srv.start()
    try:
        fetcher = make(
            allowed_hosts=['images.test', 'other.test'],
            resolve=resolver('127.0.0.1'),
            transport=httpx.AsyncHTTPTransport(verify=client_tls),
        )
        image = await fetcher.fetch(f'https://images.test:{srv.port}/png', param=PARAM)
        assert b64decode(image.data) == PNG
        assert f'host: images.test:{srv.port}\r\n'.encode() in srv.requests[-1].lower()
        # the same IP under a name the certificate does not cover: TLS refuses, and so does the fetcher
        await refused(fetcher, f'https://other.test:{srv.port}/png', 'could not fetch the image .*: ConnectError')
        assert len(srv.requests) == 1
    finally:
        await srv.close()


async def test_a_public_ipv6_address_is_bracketed_in_the_url(make: Callable[..., ImageFetcher]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=PNG)

    fetcher = make(resolve=resolver('2606:2800:220:1:248:1893:25c8:1946'), transport=httpx.MockTransport(handler))
    await fetcher.fetch('https://v6.example.com/a.png', param=PARAM)
    assert str(seen[0].url) == 'https://[2606:2800:220:1:248:1893:25c8:1946]/a.png'
    assert seen[0].headers['host'] == 'v6.example.com'


# --- the SSRF guard ---------------------------------------------------------------------------------------


async def test_loopback_is_refused_by_default(server: Server, make: Callable[..., ImageFetcher]) -> None:
    await refused(make(), f'{server.base}/png', r'not allowed: 127\.0\.0\.1 is a loopback address')
    await refused(make(), f'http://localhost:{server.port}/png', r'not allowed: localhost resolves to a loopback')
    assert server.requests == []


@pytest.mark.parametrize(
    ('address', 'reason'),
    [
        ('10.0.0.1', 'a private address'),
        ('172.16.5.4', 'a private address'),
        ('192.168.1.1', 'a private address'),
        ('169.254.169.254', 'a link-local address'),
        ('127.0.0.1', 'a loopback address'),
        ('0.0.0.0', 'an unspecified address'),
        ('100.64.0.1', r'a shared \(carrier-grade NAT\) address'),
        ('224.0.0.1', 'a multicast address'),
        ('240.0.0.1', 'a reserved address'),
        ('192.0.2.10', 'a private address'),  # documentation range
        ('::1', 'a loopback address'),
        ('::', 'an unspecified address'),
        ('::ffff:127.0.0.1', 'a loopback address'),
        ('::ffff:10.0.0.1', 'a private address'),
        ('::ffff:169.254.169.254', 'a link-local address'),
        ('2002:7f00:1::', 'a loopback address'),  # 6to4 of 127.0.0.1
        ('fe80::1', 'a link-local address'),
        ('fc00::1', 'a private address'),
        ('fd12:3456::1', 'a private address'),
        ('ff02::1', 'a multicast address'),
    ],
)
async def test_names_resolving_to_blocked_addresses_are_refused(
    make: Callable[..., ImageFetcher], address: str, reason: str
) -> None:
    fetcher = make(resolve=resolver(address), transport=httpx.MockTransport(never_called))
    await refused(fetcher, 'https://images.example.com/a.png', f'not allowed: images.example.com resolves to {reason}')


async def test_one_blocked_address_among_public_ones_refuses(make: Callable[..., ImageFetcher]) -> None:
    fetcher = make(resolve=resolver(PUBLIC_IP, '10.0.0.1'), transport=httpx.MockTransport(never_called))
    await refused(fetcher, 'http://images.example.com/a.png', 'resolves to a private address')


@pytest.mark.parametrize(
    'url',
    [
        'http://127.0.0.1/',
        'http://[::1]:8080/a.png',
        'http://[::ffff:127.0.0.1]/',
        'http://169.254.169.254/latest/meta-data/',
        'https://10.0.0.1/a.png',
        'http://[fd00::1]/',
    ],
)
async def test_ip_literals_are_checked_without_dns(make: Callable[..., ImageFetcher], url: str) -> None:
    fetcher = make(resolve=no_dns, transport=httpx.MockTransport(never_called))
    await refused(fetcher, url, 'is not allowed: .* is a ')


async def test_allowed_hosts_is_exact_not_a_suffix(make: Callable[..., ImageFetcher]) -> None:
    fetcher = make(
        allowed_hosts=['internal.example.com'],
        resolve=resolver('10.0.0.7'),
        transport=httpx.MockTransport(never_called),
    )
    await refused(fetcher, 'http://evil.internal.example.com/a.png', 'private address')


async def test_a_redirect_to_a_blocked_target_is_refused(server: Server, make: Callable[..., ImageFetcher]) -> None:
    fetcher = make(allowed_hosts=['127.0.0.1'])
    await refused(fetcher, f'{server.base}/to-metadata', r'169\.254\.169\.254 is a link-local address')
    # localhost is 127.0.0.1, but only the literal 127.0.0.1 is allowed: each hop is checked by its own name
    await refused(fetcher, f'{server.base}/to-localhost', 'localhost resolves to a loopback address')
    assert [head.split(b' ')[1] for head in server.requests] == [b'/to-metadata', b'/to-localhost']


async def test_a_public_url_redirecting_to_loopback_is_refused(make: Callable[..., ImageFetcher]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={'location': 'http://127.0.0.1:8080/admin'})

    fetcher = make(resolve=resolver(PUBLIC_IP), transport=httpx.MockTransport(handler))
    await refused(fetcher, 'https://images.example.com/a.png', r'127\.0\.0\.1 is a loopback address')
    assert len(seen) == 1


async def test_a_redirect_to_another_scheme_is_refused(server: Server, make: Callable[..., ImageFetcher]) -> None:
    await refused(make(allowed_hosts=['127.0.0.1']), f'{server.base}/to-file', 'must be an http or https URL')


async def test_too_many_redirects_are_refused(server: Server, make: Callable[..., ImageFetcher]) -> None:
    await refused(make(allowed_hosts=['127.0.0.1']), f'{server.base}/loop', 'more than 3 redirects')
    assert len(server.requests) == 4  # the first request and three redirects
    # two hops need two redirects: max_redirects=1 stops them
    await refused(make(allowed_hosts=['127.0.0.1'], max_redirects=1), f'{server.base}/redirect-twice', 'more than 1')


@pytest.mark.parametrize(
    'url',
    [
        'file:///etc/passwd',
        'ftp://example.com/a.png',
        'gopher://127.0.0.1:6379/_INFO',
        'data:image/png;base64,iVBORw0KGgo=',
        'javascript:alert(1)',
        'http:///no-host',
        '//example.com/a.png',
        'example.com/a.png',
        '',
    ],
)
async def test_other_schemes_and_hostless_urls_are_refused(make: Callable[..., ImageFetcher], url: str) -> None:
    fetcher = make(resolve=no_dns, transport=httpx.MockTransport(never_called))
    await refused(fetcher, url, "'{param}' must be an http or https URL")


async def test_an_unresolvable_name_is_refused(make: Callable[..., ImageFetcher]) -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError('Name or service not known')

    await refused(make(resolve=fail), 'http://nowhere.invalid/a.png', 'cannot resolve nowhere.invalid')
    await refused(make(resolve=resolver()), 'http://nowhere.invalid/a.png', 'cannot resolve nowhere.invalid')


# --- what comes back --------------------------------------------------------------------------------------


async def test_too_large_with_content_length_is_refused(server: Server, make: Callable[..., ImageFetcher]) -> None:
    fetcher = make(allowed_hosts=['127.0.0.1'])
    await refused(
        fetcher, f'{server.base}/large', f"image at '{{param}}' is larger than the limit of {MAX_BYTES} bytes"
    )
    # announced as too large: refused on the headers, without waiting for a body that never comes
    async with asyncio.timeout(2):
        await refused(fetcher, f'{server.base}/announced-huge', 'larger than the limit')


async def test_too_large_without_content_length_stops_reading(
    server: Server, make: Callable[..., ImageFetcher]
) -> None:
    async with asyncio.timeout(5):  # the body never ends: only the byte count can stop it
        await refused(make(allowed_hosts=['127.0.0.1']), f'{server.base}/endless', 'larger than the limit of 4096')


@pytest.mark.parametrize('path', ['/text', '/empty'])
async def test_non_images_are_refused(server: Server, make: Callable[..., ImageFetcher], path: str) -> None:
    await refused(
        make(allowed_hosts=['127.0.0.1']),
        server.base + path,
        r"'{param}' is not an image \(expected PNG, JPEG, GIF, WebP or BMP\)",
    )


@pytest.mark.parametrize(('path', 'status'), [('/missing', 404), ('/error', 500), ('/no-location', 302)])
async def test_error_statuses_are_refused(
    server: Server, make: Callable[..., ImageFetcher], path: str, status: int
) -> None:
    await refused(make(allowed_hosts=['127.0.0.1']), server.base + path, f'could not fetch the image .*: HTTP {status}')


async def test_a_silent_server_times_out(server: Server, make: Callable[..., ImageFetcher]) -> None:
    fetcher = make(allowed_hosts=['127.0.0.1'], timeout=0.2)
    await refused(fetcher, f'{server.base}/silent', 'could not fetch the image .*: timed out after 0.2 s')


async def test_a_refused_connection_is_a_client_error(make: Callable[..., ImageFetcher]) -> None:
    probe = await asyncio.start_server(lambda r, w: None, '127.0.0.1', 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    await refused(
        make(allow_private=True), f'http://127.0.0.1:{port}/a.png', 'could not fetch the image .*: ConnectError'
    )


async def test_the_fetcher_is_reusable_and_aclose_is_idempotent(
    server: Server, make: Callable[..., ImageFetcher]
) -> None:
    fetcher = make(allowed_hosts=['127.0.0.1'])
    for _ in range(3):
        assert b64decode((await fetcher.fetch(f'{server.base}/png', param=PARAM)).data) == PNG
    await fetcher.aclose()
    await fetcher.aclose()
    assert b64decode((await fetcher.fetch(f'{server.base}/jpeg', param=PARAM)).data) == JPEG  # a new client
