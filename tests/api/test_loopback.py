"""The console's in-process calls to the API (app/loopback.py): streamed, authenticated as the user's own
web-console key, audited like any request, and cancelled at the engine when the caller stops reading."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
from fastapi import FastAPI

from core import runtime
from core.accounts import my_keys
from core.accounts import service as accounts
from core.db import Database
from sim.config import SimConfig
from sim.server import SimServer

CHAT = {'model': 'meta-llama/Llama-3.2-1B-Instruct', 'stream': True,
        'messages': [{'role': 'user', 'content': 'Tell me a story.'}]}


async def _console_key(database: Database) -> str:
    async with database.session() as session:
        user = await accounts.create_user(session, username='carol', role='student')
        assert user.id is not None
        return await my_keys.console_key_digest(session, user_id=user.id)


async def test_a_console_chat_streams_through_the_api_and_is_audited(app: FastAPI, admin: httpx.AsyncClient,
                                                                      database: Database) -> None:
    async with SimServer('vllm', SimConfig(tokens=6, token_delay_ms=30)) as engine:
        await admin.post('/api/admin/backends/register', json={'name': 'v', 'url': engine.url, 'engine': 'vllm'})
        digest = await _console_key(database)
        live = runtime.current()
        assert live is not None
        arrivals = []
        async with live.api.stream(key_digest=digest, path='/v1/chat/completions', body=CHAT) as response:
            assert response.status == 200 and response.headers['content-type'].startswith('text/event-stream')
            async for chunk in response.chunks():
                arrivals.append((time.perf_counter(), chunk))
        assert len(arrivals) >= 6 and arrivals[-1][0] - arrivals[0][0] > 0.1  # chunk by chunk, not at once
        body = b''.join(chunk for _, chunk in arrivals)
        assert body.endswith(b'data: [DONE]\n\n')
        request_id = response.headers['x-request-id']
        await asyncio.sleep(1.2)  # the audit writer's flush
        async with database.session() as session:
            keys = await accounts.list_api_keys(session, username='carol')
        rows = (await admin.get(f'/api/admin/audit/{request_id}')).json()
        assert rows['status'] == 'completed' and rows['api_key_id'] == keys[0][0].id


async def test_leaving_early_cancels_the_engine_request(app: FastAPI, admin: httpx.AsyncClient,
                                                        database: Database) -> None:
    async with SimServer('vllm', SimConfig(tokens=200, token_delay_ms=20)) as engine:
        await admin.post('/api/admin/backends/register', json={'name': 'v', 'url': engine.url, 'engine': 'vllm'})
        digest = await _console_key(database)
        live = runtime.current()
        assert live is not None
        async with live.api.stream(key_digest=digest, path='/v1/chat/completions', body=CHAT) as response:
            async for _ in response.chunks():
                break  # the stop button
        for _ in range(50):
            if engine.stats.cancelled == 1:
                break
            await asyncio.sleep(0.05)
        assert engine.stats.cancelled == 1 and engine.stats.in_flight == 0


async def test_errors_come_back_in_the_dialect(app: FastAPI, database: Database) -> None:
    digest = await _console_key(database)
    live = runtime.current()
    assert live is not None
    async with live.api.stream(key_digest=digest, path='/v1/chat/completions',
                               body={**CHAT, 'model': 'nope'}) as response:
        assert response.status == 404
        assert orjson.loads(await response.read())['error']['param'] == 'model'
    async with live.api.stream(key_digest='0' * 64, path='/v1/chat/completions', body=CHAT) as response:
        assert response.status == 401
