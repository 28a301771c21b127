"""An admin drains, disables, enables and edits backends while traffic flows (in-process gateway,
simulated engines on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sim.config import SimConfig
from sim.server import SimServer
from sim.text import expected_text

CHAT = {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'drain me'}], 'stream': False}


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'REGISTRY_RELOAD_INTERVAL': '0.3'}  # a drain completes one reload interval after it starts, at least


@pytest.fixture
async def engines() -> AsyncIterator[dict[str, SimServer]]:
    async with SimServer('ollama', SimConfig(token_delay_ms=20, tokens=30)) as first, \
            SimServer('ollama', SimConfig(token_delay_ms=20, tokens=30)) as second:
        yield {'first': first, 'second': second}


async def register(admin: httpx.AsyncClient, engines: dict[str, SimServer]) -> dict[str, int]:
    ids = {}
    for name, sim in engines.items():
        response = await admin.post('/api/admin/backends/register',
                                    json={'name': name, 'url': sim.url, 'engine': 'ollama', 'max_concurrent': 2})
        assert response.status_code == 201, response.text
        ids[name] = response.json()['id']
    return ids


async def backends(admin: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {b['name']: b for b in (await admin.get('/api/admin/backends')).json()}


async def test_a_drained_backend_finishes_its_streams_takes_no_new_work_and_ends_disabled(
        admin: httpx.AsyncClient, engines: dict[str, SimServer]) -> None:
    ids = await register(admin, engines)
    stream = asyncio.create_task(admin.post('/v1/chat/completions', json={**CHAT, 'stream': True}))
    busy = ''
    for _ in range(200):  # until the stream holds a slot somewhere
        busy = next((name for name, b in (await backends(admin)).items() if b['in_flight']), '')
        if busy:
            break
        await asyncio.sleep(0.01)
    other = next(name for name in ids if name != busy)

    drained = await admin.post(f'/api/admin/backends/{ids[busy]}/drain')
    assert drained.json()['status'] == 'draining'
    for _ in range(3):
        response = await admin.post('/v1/chat/completions', json=CHAT)
        assert response.headers['x-mindrouter-backend'] == other

    body = (await stream).text  # the stream that was in flight ends whole, never cut
    assert body.rstrip().endswith('data: [DONE]')
    assert '"finish_reason":"stop"' in body
    for _ in range(50):
        if (await backends(admin))[busy]['status'] == 'disabled':
            break
        await asyncio.sleep(0.05)
    assert (await backends(admin))[busy]['status'] == 'disabled'

    refreshed = await admin.post(f'/api/admin/backends/{ids[busy]}/refresh')  # a health check...
    assert refreshed.json()['status'] == 'disabled'  # ...never overrides the admin


async def test_disable_and_enable(admin: httpx.AsyncClient, engines: dict[str, SimServer]) -> None:
    ids = await register(admin, engines)
    for name in ids:
        assert (await admin.post(f'/api/admin/backends/{ids[name]}/disable')).json()['status'] == 'disabled'
    refused = await admin.post('/v1/chat/completions', json=CHAT)
    assert refused.status_code == 503  # known model, no backend taking requests: try again later
    assert 'no healthy backend' in refused.json()['error']['message']

    enabled = await admin.post(f'/api/admin/backends/{ids["second"]}/enable')
    assert enabled.json()['status'] == 'healthy'
    answer = await admin.post('/v1/chat/completions', json=CHAT)
    assert answer.headers['x-mindrouter-backend'] == 'second'
    assert answer.json()['choices'][0]['message']['content'] == expected_text('drain me', 30)


async def test_edits_are_validated_and_nothing_is_written_on_bad_input(
        admin: httpx.AsyncClient, engines: dict[str, SimServer]) -> None:
    ids = await register(admin, engines)
    changed = await admin.patch(f'/api/admin/backends/{ids["first"]}', json={'max_concurrent': 6, 'priority': 3})
    assert changed.status_code == 200 and changed.json()['max_concurrent'] == 6
    assert changed.json()['priority'] == 3

    for patch, param in (({'name': 'second'}, 'name'), ({'url': engines['second'].url}, 'url'),
                         ({'url': 'ftp://nope'}, 'url'), ({'max_concurrent': 0}, 'max_concurrent'),
                         ({'engine': 'vllm'}, 'engine'), ({'priority': 11}, 'priority')):
        response = await admin.patch(f'/api/admin/backends/{ids["first"]}', json=patch)
        assert response.status_code == 400, (patch, response.text)
        assert param in response.text
    first = (await backends(admin))['first']
    assert (first['name'], first['url'], first['max_concurrent']) == ('first', engines['first'].url, 6)
    assert (await admin.post('/api/admin/backends/999/drain')).status_code == 404
