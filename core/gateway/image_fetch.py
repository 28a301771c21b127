"""Fetching the images that clients send as http(s) URLs, behind an SSRF guard.

An image URL makes the gateway send a request of the client's choosing from inside our network, so:
- SSRF: every address the host resolves to must be public (not loopback, private, link-local — the cloud
  metadata service at 169.254.169.254 —, shared, multicast or reserved), unless configuration allows it.
- DNS rebinding: a name can resolve to a public address for the check and a private one for the connect,
  so we connect to the checked IP itself and send the real name as the Host header and the TLS SNI.
- Redirects: httpx never follows them; each hop is a new URL, checked like the first, up to a limit.
- Size: the body is streamed and cut off past the limit. It is never decompressed (we ask for identity
  and hand the bytes on as base64), so there is no decompression bomb to defuse.

    fetcher = ImageFetcher(max_bytes=20 * 1024 * 1024)
    image = await fetcher.fetch('https://example.com/cat.png', param='messages[0].content[1].image_url.url')
    await fetcher.aclose()
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from base64 import b64encode
from collections.abc import Awaitable, Callable, Iterable

import httpx

from core.errors import InvalidRequest
from core.translate.canonical import ChatRequest, ImagePart
from core.translate.content import sniff_image_bytes

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SHARED = ipaddress.IPv4Network('100.64.0.0/10')  # carrier-grade NAT; not in Python 3.11's is_private


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    """A host as allowed_hosts compares it: lower case, IP literals without brackets and in canonical form."""
    host = host.strip().strip('[]').lower()
    ip = _ip(host)
    return str(ip) if ip is not None else host


def _blocked(ip: IPAddress) -> str | None:
    """Why the gateway must not connect to `ip`, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 reaches 127.0.0.1 on a dual-stack socket; 6to4 (2002::/16) embeds a v4 address too
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    checks = (
        (ip.is_unspecified, 'an unspecified address'),
        (ip.is_loopback, 'a loopback address'),
        (ip.is_link_local, 'a link-local address'),
        (ip.is_multicast, 'a multicast address'),
        (ip.version == 4 and ip in _SHARED, 'a shared (carrier-grade NAT) address'),
        (ip.is_reserved, 'a reserved address'),
        (ip.is_private, 'a private address'),
        (not ip.is_global, 'a non-public address'),  # documentation, benchmarking and other special ranges
    )
    return next((reason for hit, reason in checks if hit), None)


class ImageFetcher:
    """Fetches image URLs for the engines, which only take inline (base64) images."""

    def __init__(
        self,
        *,
        max_bytes: int,
        allow_private: bool = False,
        allowed_hosts: Iterable[str] = (),
        timeout: float = 10.0,
        max_redirects: int = 3,
        resolve: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._max_bytes = max_bytes
        self._allow_private = allow_private
        self._allowed_hosts = frozenset(_normal_host(host) for host in allowed_hosts)
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._resolve = resolve or _getaddrinfo
        self._transport = transport
        self._client: httpx.AsyncClient | None = None  # created on first use: most gateways never fetch

    async def fetch(self, url: str, *, param: str) -> ImagePart:
        """The image at `url`, inline. Any failure is the client's: InvalidRequest naming `param`."""
        try:
            # one deadline for all hops and the body: httpx's timeouts are per read, and a server
            # dripping a byte at a time would otherwise hold the request for ever
            async with asyncio.timeout(self._timeout):
                data = await self._get(url, param)
        except (TimeoutError, httpx.TimeoutException):
            raise InvalidRequest(
                f"could not fetch the image at '{param}': timed out after {self._timeout:g} s", param=param
            ) from None
        except httpx.HTTPError as exc:
            raise InvalidRequest(f"could not fetch the image at '{param}': {type(exc).__name__}", param=param) from None
        media_type = sniff_image_bytes(data)
        if media_type is None:
            raise InvalidRequest(f"'{param}' is not an image (expected PNG, JPEG, GIF, WebP or BMP)", param=param)
        return ImagePart(data=b64encode(data).decode('ascii'), media_type=media_type)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=self._timeout,
                follow_redirects=False,  # every hop goes through the guard (_get)
                trust_env=False,  # a proxy from the environment would connect by name, undoing the IP pinning
                # no keep-alive: the pool keys connections by IP, so a TLS connection verified for one name
                # could be reused for another name on the same IP
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=0),
            )
        return self._client

    async def _get(self, url: str, param: str) -> bytes:
        target = _parse(url, param)
        for _ in range(self._max_redirects + 1):
            request = await self._pinned_request(target, param)
            response = await self._http().send(request, stream=True)
            try:
                location = response.headers.get('location')
                if response.status_code in _REDIRECTS and location:
                    target = _parse(location, param, base=target)
                    continue
                if not 200 <= response.status_code < 300:
                    raise InvalidRequest(
                        f"could not fetch the image at '{param}': HTTP {response.status_code}", param=param
                    )
                return await self._read(response, param)
            finally:
                await response.aclose()
        raise InvalidRequest(
            f"could not fetch the image at '{param}': more than {self._max_redirects} redirects", param=param
        )

    async def _pinned_request(self, url: httpx.URL, param: str) -> httpx.Request:
        """A GET for `url` sent to an address that passed the guard, not to whatever the name resolves to later."""
        host = url.raw_host.decode('ascii')  # IDNA-encoded name, or an IP literal without brackets
        literal = _ip(host)
        if literal is not None:
            addresses = [literal]  # no DNS for IP literals
        else:
            try:
                resolved = await self._resolve(host, url.port or (443 if url.scheme == 'https' else 80))
                addresses = [ipaddress.ip_address(address) for address in resolved]
            except (OSError, ValueError):
                addresses = []
            if not addresses:
                raise InvalidRequest(f"could not fetch the image at '{param}': cannot resolve {host}", param=param)
        if not self._allow_private and _normal_host(host) not in self._allowed_hosts:
            for address in addresses:  # any one bad address refuses: the connect could pick it
                reason = _blocked(address)
                if reason is not None:
                    how = 'is' if literal is not None else 'resolves to'
                    raise InvalidRequest(
                        f"the image URL at '{param}' is not allowed: {host} {how} {reason}", param=param
                    )
        extensions = {'sni_hostname': host} if url.scheme == 'https' and literal is None else None
        return self._http().build_request(
            'GET',
            url.copy_with(host=str(addresses[0])),
            # Host: the original name (and port), as httpx would have sent it; identity: see the docstring
            headers={'Host': url.netloc.decode('ascii'), 'Accept': 'image/*', 'Accept-Encoding': 'identity'},
            extensions=extensions,
        )

    async def _read(self, response: httpx.Response, param: str) -> bytes:
        too_large = InvalidRequest(
            f"image at '{param}' is larger than the limit of {self._max_bytes} bytes", param=param
        )
        length = response.headers.get('content-length', '')
        if length.isdigit() and int(length) > self._max_bytes:
            raise too_large
        body = bytearray()
        if response.is_stream_consumed:  # the transport read it already (httpx.MockTransport given content=)
            body += response.content
        else:
            async for chunk in response.aiter_raw():  # raw: the bytes as sent, never decompressed
                body += chunk
                if len(body) > self._max_bytes:
                    raise too_large
        if len(body) > self._max_bytes:
            raise too_large
        return bytes(body)


def _parse(url: str, param: str, *, base: httpx.URL | None = None) -> httpx.URL:
    """`url` (relative to `base`, for a redirect's Location) when it is http(s) with a host."""
    try:
        parsed = base.join(url) if base is not None else httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ('http', 'https') or not parsed.raw_host:
        raise InvalidRequest(f"'{param}' must be an http or https URL", param=param)
    return parsed


async def prepare_images(request: ChatRequest, fetcher: ImageFetcher, *, max_bytes: int) -> None:
    """Fetch every URL image of `request` (all at once) and hold each image to the size limit, so that
    engines only ever see inline images of a known format and size. Nothing is sent before this is done."""
    images = [image for message in request.messages for image in message.images]
    for image in images:
        if image.url is None and len(image.data) * 3 // 4 > max_bytes:
            raise InvalidRequest(f"image at '{image.source}' is larger than the limit of {max_bytes} bytes",
                                 param=image.source or None)
    pending = [image for image in images if image.url is not None]
    if not pending:
        return
    try:  # a task group: the first refusal cancels the other fetches
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(fetcher.fetch(image.url or '', param=image.source)) for image in pending]
    except* InvalidRequest as refused:
        raise refused.exceptions[0] from None
    for image, task in zip(pending, tasks, strict=True):
        got = task.result()
        image.data, image.media_type, image.url = got.data, got.media_type, None
