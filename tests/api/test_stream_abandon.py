"""A streaming client that is gone before the first byte is sent still frees its backend slot."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from app.factory import serve
from sim.server import SimServer


async def test_a_stream_never_started_frees_its_slot(app: FastAPI, admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama') as engine:
        await admin.post('/api/admin/backends/register', json={'name': 'o', 'url': engine.url, 'engine': 'ollama'})
        body = orjson.dumps({'model': 'llama3.2', 'stream': True, 'messages': [{'role': 'user', 'content': 'hi'}]})
        scope: dict[str, Any] = {
            'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1', 'method': 'POST', 'scheme': 'http',
            'path': '/v1/chat/completions', 'raw_path': b'/v1/chat/completions', 'query_string': b'',
            'root_path': '', 'client': ('127.0.0.1', 1), 'server': ('test', 80),
            'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode()),
                        (b'x-api-key', admin.headers['x-api-key'].encode())]}
        messages = [{'type': 'http.request', 'body': body, 'more_body': False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {'type': 'http.disconnect'}

        async def send(message: dict[str, Any]) -> None:
            raise OSError('the client is gone')  # before even the status line

        with contextlib.suppress(OSError):
            await serve(app)(scope, receive, send)
        backends = (await admin.get('/api/admin/backends')).json()
    assert backends[0]['in_flight'] == 0
