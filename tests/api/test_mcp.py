"""/mcp in-process (the API app's lifespan running the SDK's session manager), driven by the official MCP client
over httpx2's ASGI transport: who may open a session, and the tools with model aliases. The full journey against
a real server process is tests/e2e/test_mcp.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from sim.server import SimServer
from sim.text import expected_text

HELLO = {'jsonrpc': '2.0', 'id': 1, 'method': 'initialize', 'params': {
    'protocolVersion': '2025-06-18', 'capabilities': {}, 'clientInfo': {'name': 'probe', 'version': '1'}}}
ACCEPT = {'Accept': 'application/json, text/event-stream'}


@pytest.fixture
async def engine(admin: httpx.AsyncClient) -> AsyncIterator[SimServer]:
    async with SimServer('ollama') as sim:
        registered = await admin.post('/api/admin/backends/register',
                                      json={'name': 'gpu-a', 'url': sim.url, 'engine': 'ollama'})
        assert registered.status_code == 201, registered.text
        yield sim


@asynccontextmanager
async def mcp_session(app: FastAPI, key: str) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app), headers={'X-API-Key': key}) as http, \
            streamable_http_client('http://mindrouter.test/mcp', http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def test_a_disabled_account_is_forbidden_and_an_unknown_key_challenged(
        admin: httpx.AsyncClient, client: httpx.AsyncClient, alice_key: str) -> None:
    assert (await client.post('/mcp', json=HELLO, headers={**ACCEPT, 'X-API-Key': alice_key})).status_code == 200
    unknown = await client.post('/mcp', json=HELLO, headers={**ACCEPT, 'X-API-Key': 'mr_unknown'})
    assert unknown.status_code == 401 and unknown.headers['www-authenticate'] == 'Bearer'

    disabled = await admin.patch('/api/admin/users/alice', json={'is_active': False})
    assert disabled.status_code == 200, disabled.text
    refused = await client.post('/mcp', json=HELLO, headers={**ACCEPT, 'X-API-Key': alice_key})
    assert refused.status_code == 403 and 'www-authenticate' not in refused.headers
    assert refused.json()['error']['code'] == -32001


async def test_ask_model_under_an_alias_answers_as_the_alias_and_list_models_shows_it(
        app: FastAPI, admin: httpx.AsyncClient, engine: SimServer, alice_key: str) -> None:
    put = await admin.put('/api/admin/model-aliases/gpt-5-codex', json={'target': 'qwen3:0.6b'})
    assert put.status_code == 200, put.text
    async with mcp_session(app, alice_key) as session:
        listed = await session.call_tool('list_models', {})
        assert listed.structured_content is not None
        names = {m['name']: m for m in listed.structured_content['models']}
        assert names['gpt-5-codex']['alias_for'] == 'qwen3:0.6b'
        asked = await session.call_tool('ask_model', {'model': 'gpt-5-codex', 'prompt': 'Say hello',
                                                      'max_tokens': 3})
        assert not asked.is_error and asked.structured_content is not None
        assert asked.structured_content['model'] == 'gpt-5-codex'
        assert asked.structured_content['answer'] == expected_text('Say hello', 3)
