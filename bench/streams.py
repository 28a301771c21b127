"""A light streaming client for benchmarks: paced SSE streams, each one's time to first token.

Raw asyncio sockets, one request per connection (`Connection: close`, read to the end), so that the client's own
cost per event is a `find` on the bytes that arrived and the figure is the server's. "First token" is the first
event carrying non-empty content (`"content":"x`), not the role chunk that vLLM sends before any token.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_FIRST_TOKEN = b'"content":"'
_CONTENT_START = len(_FIRST_TOKEN)


@dataclass
class StreamFigures:
    ttft_ms: list[float] = field(default_factory=list)
    errors: int = 0
    events: int = 0  # SSE events read, to check the streams were whole


async def run_streams(url: str, key: str, body: dict[str, object], streams: int, seconds: float) -> StreamFigures:
    """`streams` clients, each starting a new stream when its last one ends, for `seconds`; a stream that starts
    counts. Clients start spread over the first 100 ms, as arrivals do, rather than in one burst."""
    parts = urlsplit(url)
    host, port = parts.hostname or '127.0.0.1', parts.port or 80
    data = json.dumps(body).encode()
    request = (
        f'POST {parts.path or "/"} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n'
        f'Authorization: Bearer {key}\r\nConnection: close\r\nContent-Length: {len(data)}\r\n\r\n'
    ).encode() + data
    figures = StreamFigures()
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        await asyncio.sleep(random.uniform(0, 0.1))
        while time.perf_counter() < stop_at:
            await _one(host, port, request, figures)

    await asyncio.gather(*(client() for _ in range(streams)))
    return figures


def post_request(url: str, headers: dict[str, str], body: dict[str, object]) -> tuple[str, int, bytes]:
    """Host, port and the bytes of a one-shot POST (`Connection: close`) to `url`."""
    parts = urlsplit(url)
    host, port = parts.hostname or '127.0.0.1', parts.port or 80
    data = json.dumps(body).encode()
    lines = ''.join(f'{name}: {value}\r\n' for name, value in headers.items())
    head = (
        f'POST {parts.path or "/"} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{lines}'
        f'Connection: close\r\nContent-Length: {len(data)}\r\n\r\n'
    )
    return host, port, head.encode() + data


async def fetch(host: str, port: int, request: bytes, *, keep: int = 4096) -> tuple[int, bytes]:
    """Send a one-shot request and read the answer to its end: the status and the answer's last `keep` bytes.
    A client that costs a connect and a few reads per request, however many are in flight."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        head = await reader.readuntil(b'\r\n\r\n')
        tail = b''
        while chunk := await reader.read(65536):
            tail = (tail + chunk)[-keep:]
        return int(head[9:12]), tail
    finally:
        writer.close()


async def _one(host: str, port: int, request: bytes, figures: StreamFigures) -> None:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        head = await reader.readuntil(b'\r\n\r\n')
        if not head.startswith(b'HTTP/1.1 200'):
            figures.errors += 1
            return
        seen = b''
        first: float | None = None
        while chunk := await reader.read(65536):
            if first is None:
                seen += chunk
                at = seen.find(_FIRST_TOKEN)
                while at >= 0:
                    if seen[at + _CONTENT_START : at + _CONTENT_START + 1] not in (b'"', b''):
                        first = time.perf_counter()
                        break
                    at = seen.find(_FIRST_TOKEN, at + 1)
            figures.events += chunk.count(b'data: ')
        if first is None:
            figures.errors += 1
            return
        figures.ttft_ms.append((first - started) * 1000)
    except (OSError, asyncio.IncompleteReadError):
        figures.errors += 1
    finally:
        writer.close()
