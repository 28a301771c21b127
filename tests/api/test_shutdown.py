"""A shutdown's grace period: streams that finish within it finish; the rest end with their dialect's error event
and an audit row each (the signal itself, on real processes: tests/multiprocess/test_shutdown.py)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi import FastAPI

from app.shutdown import SHUTDOWN_MESSAGE
from sim.config import SimConfig
from sim.server import SimServer
from tests.api.audit import audit_row

GRACE = 1.0
MESSAGES = [{'role': 'user', 'content': 'a long answer please'}]


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'SHUTDOWN_GRACE_SECONDS': str(GRACE)}


async def test_streams_past_the_grace_end_with_their_dialects_error(app: FastAPI, admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama', SimConfig(tokens=400, token_delay_ms=50)) as engine:  # 20 s answers
        registered = await admin.post('/api/admin/backends/register', json={
            'name': 'o', 'url': engine.url, 'engine': 'ollama', 'max_concurrent': 8})
        assert registered.status_code == 201, registered.text
        long = {'model': 'llama3.2', 'messages': MESSAGES, 'stream': True}
        calls = {
            'openai': admin.post('/v1/chat/completions', json=long),
            'anthropic': admin.post('/anthropic/v1/messages', json={**long, 'max_tokens': 1000}),
            'ollama': admin.post('/api/chat', json=long),
            'short': admin.post('/v1/chat/completions', json={**long, 'max_tokens': 10}),  # 0.5 s: within the grace
        }
        tasks = {name: asyncio.create_task(call) for name, call in calls.items()}
        shutdown = app.state.shutdown
        for _ in range(200):
            if shutdown.running == len(tasks):
                break
            await asyncio.sleep(0.02)
        assert shutdown.running == len(tasks)
        started = asyncio.get_running_loop().time()
        shutdown.begin()
        answers = {name: await task for name, task in tasks.items()}
        took = asyncio.get_running_loop().time() - started

    assert GRACE <= took < GRACE + 5  # the long ones were ended at the grace, not at their 20 s
    assert all(answer.status_code == 200 for answer in answers.values())
    assert answers['short'].text.rstrip().endswith('data: [DONE]')  # finished within the grace, whole

    openai = [json.loads(line[6:]) for line in answers['openai'].text.splitlines() if line.startswith('data: {')]
    assert openai[-1] == {'error': {'message': SHUTDOWN_MESSAGE, 'type': 'server_error', 'param': None,
                                    'code': None}}
    assert '[DONE]' not in answers['openai'].text  # never dressed up as a whole answer

    events = answers['anthropic'].text.strip().split('\n\n')
    assert events[-1].splitlines()[0] == 'event: error'
    assert json.loads(events[-1].splitlines()[1][6:]) == {
        'type': 'error', 'error': {'type': 'api_error', 'message': SHUTDOWN_MESSAGE}}

    lines = [json.loads(line) for line in answers['ollama'].text.splitlines()]
    assert lines[-1] == {'error': SHUTDOWN_MESSAGE}
    assert not any(line.get('done') for line in lines)

    for name in ('openai', 'anthropic', 'ollama'):
        row = await audit_row(app, admin, answers[name].headers['x-request-id'])
        assert (row['status'], row['http_status'], row['error']) == ('failed', 503, SHUTDOWN_MESSAGE), name
    short = await audit_row(app, admin, answers['short'].headers['x-request-id'])
    assert (short['status'], short['completion_tokens']) == ('completed', 10)
    backends = (await admin.get('/api/admin/backends')).json()
    assert backends[0]['in_flight'] == 0  # every slot came back


async def test_a_stream_that_starts_after_the_grace_ends_at_once(app: FastAPI, admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama', SimConfig(tokens=400, token_delay_ms=50)) as engine:
        await admin.post('/api/admin/backends/register', json={'name': 'o', 'url': engine.url, 'engine': 'ollama'})
        app.state.shutdown.expire()
        answer = await admin.post('/api/chat', json={'model': 'llama3.2', 'messages': MESSAGES, 'stream': True})
    assert answer.json() == {'error': SHUTDOWN_MESSAGE}


async def test_a_stream_cut_off_while_queued_still_has_its_audit_row(app: FastAPI, admin: httpx.AsyncClient) -> None:
    """What uvicorn cancels after the grace (a request still waiting for a slot) is recorded, not lost."""
    async with SimServer('ollama', SimConfig(tokens=400, token_delay_ms=50)) as engine:
        await admin.post('/api/admin/backends/register', json={
            'name': 'o', 'url': engine.url, 'engine': 'ollama', 'max_concurrent': 1})
        body = {'model': 'llama3.2', 'messages': MESSAGES, 'stream': True}
        running = asyncio.create_task(admin.post('/api/chat', json=body))
        for _ in range(200):  # the one slot is taken
            if app.state.shutdown.running:
                break
            await asyncio.sleep(0.02)
        queued = asyncio.create_task(admin.post('/v1/chat/completions', json=body))
        for _ in range(200):
            if app.state.scheduler.waiting:
                break
            await asyncio.sleep(0.02)
        assert app.state.scheduler.waiting == 1
        queued.cancel()  # as uvicorn does at the end of timeout_graceful_shutdown
        with pytest.raises(asyncio.CancelledError):
            await queued
        app.state.shutdown.expire()
        await running
        await app.state.audit.flush()
        rows = (await admin.get('/api/admin/audit', params={'status': 'cancelled'})).json()['rows']
    assert [(row['endpoint'], row['http_status'], row['stream']) for row in rows] == [
        ('/v1/chat/completions', 499, True)]
