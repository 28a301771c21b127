"""The console's way into the API: an in-process ASGI call, streamed, as the user's own web-console key.

The chat page must go through everything a client's request goes through (authentication, the caller's limits,
the fair-share scheduler, failover, the audit trail), so it calls the API app itself rather than the gateway
service. No socket: the request is handed to the ASGI app in this process, the key is named by its digest in
the ASGI scope (app/deps.py), which no client can set, and the answer streams back chunk by chunk. Leaving the
`stream()` block early (a stop button) sends the app `http.disconnect`, which cancels the engine request exactly
as a client hanging up does. httpx's ASGITransport cannot do this: it buffers whole responses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.types import ASGIApp, Message

from app.deps import LOOPBACK_KEY_DIGEST

_END = object()


@dataclass(slots=True)
class LoopbackResponse:
    status: int
    headers: dict[str, str]
    _queue: asyncio.Queue[object] = field(repr=False)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as the app sends it, chunk by chunk, until it ends."""
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item

    async def read(self) -> bytes:
        return b''.join([chunk async for chunk in self.chunks()])


class Loopback:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    @asynccontextmanager
    async def stream(self, *, key_digest: str, path: str, body: dict[str, Any] | None = None,
                     raw: tuple[bytes, str] | None = None, user_agent: str = 'mindrouter-console',
                     client: tuple[str, int] = ('127.0.0.1', 0)) -> AsyncIterator[LoopbackResponse]:
        """POST `body` as JSON to `path` (or `raw`: a body and its content type, such as a multipart upload); the
        response's status and headers, with its body to iterate. `user_agent` and `client` are what the audit row
        says of the caller (the MCP server names itself and its client's address)."""
        payload, content_type = raw if raw is not None else (orjson.dumps(body), 'application/json')
        scope = {
            'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1', 'method': 'POST', 'scheme': 'http',
            'path': path, 'raw_path': path.encode(), 'query_string': b'', 'root_path': '',
            'headers': [(b'host', b'mindrouter.console'), (b'content-type', content_type.encode()),
                        (b'content-length', str(len(payload)).encode()), (b'user-agent', user_agent.encode())],
            'client': client, 'server': ('mindrouter.console', 80), LOOPBACK_KEY_DIGEST: key_digest,
        }
        sent_body = False
        gone = asyncio.Event()
        started: asyncio.Future[tuple[int, dict[str, str]]] = asyncio.get_running_loop().create_future()
        queue: asyncio.Queue[object] = asyncio.Queue()

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {'type': 'http.request', 'body': payload, 'more_body': False}
            await gone.wait()
            return {'type': 'http.disconnect'}

        async def send(message: Message) -> None:
            if message['type'] == 'http.response.start':
                headers = {k.decode().lower(): v.decode() for k, v in message.get('headers', [])}
                started.set_result((int(message['status']), headers))
            elif message['type'] == 'http.response.body':
                if message.get('body'):
                    queue.put_nowait(bytes(message['body']))
                if not message.get('more_body', False):
                    queue.put_nowait(_END)

        async def run() -> None:
            try:
                await self._app(scope, receive, send)
            finally:
                queue.put_nowait(_END)
                if not started.done():
                    started.set_exception(RuntimeError(f'the API app sent no response to POST {path}'))

        task = asyncio.create_task(run())
        try:
            status, headers = await started
            yield LoopbackResponse(status, headers, queue)
        finally:
            gone.set()  # the caller is done (or stopped): the app sees the client leave
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=10)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
