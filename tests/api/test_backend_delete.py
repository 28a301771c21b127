"""An admin deletes a backend registered by mistake, or retired: refused while a request runs on it, then gone
from the listing and from routing, its models and telemetry with it, while the audit trail keeps its name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, select

from core.db import Database
from core.models import AdminAction, BackendModel, BackendSample, RequestLog, utcnow
from sim.config import SimConfig
from sim.server import SimServer
from tests.api.audit import audit_row

CHAT = {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'delete me'}], 'stream': False}


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'AUDIT_FLUSH_INTERVAL': '0.05'}


@pytest.fixture
async def engines() -> AsyncIterator[dict[str, SimServer]]:
    async with SimServer('ollama', SimConfig(token_delay_ms=20, tokens=30)) as doomed, SimServer('ollama') as keeper:
        yield {'doomed': doomed, 'keeper': keeper}


async def register(admin: httpx.AsyncClient, name: str, url: str) -> int:
    response = await admin.post('/api/admin/backends/register', json={'name': name, 'url': url, 'engine': 'ollama'})
    assert response.status_code == 201, response.text
    backend_id: int = response.json()['id']
    return backend_id


async def listing(admin: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {b['name']: b for b in (await admin.get('/api/admin/backends')).json()}


async def test_a_backend_is_deleted_once_nothing_runs_on_it_and_its_audit_rows_keep_its_name(
        app: FastAPI, admin: httpx.AsyncClient, engines: dict[str, SimServer], database: Database) -> None:
    doomed = await register(admin, 'doomed', engines['doomed'].url)
    stream = asyncio.create_task(admin.post('/v1/chat/completions', json={**CHAT, 'stream': True}))
    for _ in range(200):  # until the stream holds its slot
        if (await listing(admin))['doomed']['in_flight']:
            break
        await asyncio.sleep(0.01)

    refused = await admin.delete(f'/api/admin/backends/{doomed}')
    assert refused.status_code == 409, refused.text
    error = refused.json()['error']
    assert error['code'] == 'backend_in_use'
    assert 'doomed has 1 request in flight' in error['message'] and 'drain it first' in error['message']
    streamed = await stream  # the refusal cut nothing off
    assert streamed.text.rstrip().endswith('data: [DONE]')
    assert streamed.headers['x-mindrouter-backend'] == 'doomed'
    assert (await audit_row(app, admin, streamed.headers['x-request-id']))['backend'] == 'doomed'

    keeper = await register(admin, 'keeper', engines['keeper'].url)
    async with database.session() as session:  # a telemetry sample of its own, as the recorder writes them
        session.add(BackendSample(backend_id=doomed, taken_at=utcnow(), in_flight=0, max_concurrent=4, healthy=True))
        await session.commit()

    deleted = await admin.delete(f'/api/admin/backends/{doomed}')
    assert deleted.status_code == 204, deleted.text
    assert set(await listing(admin)) == {'keeper'}
    for _ in range(3):  # never chosen again, though its engine still answers
        answer = await admin.post('/v1/chat/completions', json=CHAT)
        assert answer.status_code == 200 and answer.headers['x-mindrouter-backend'] == 'keeper'
    assert (await admin.delete(f'/api/admin/backends/{doomed}')).status_code == 404

    history = await audit_row(app, admin, streamed.headers['x-request-id'])
    assert (history['backend'], history['backend_id']) == ('doomed', None)
    search = (await admin.get('/api/admin/audit', params={'limit': 10})).json()['rows']
    assert {row['request_id']: row['backend'] for row in search}[streamed.headers['x-request-id']] == 'doomed'
    async with database.session() as session:
        assert list(await session.exec(select(BackendModel).where(col(BackendModel.backend_id) == doomed))) == []
        assert list(await session.exec(select(BackendSample).where(col(BackendSample.backend_id) == doomed))) == []
        assert list(await session.exec(select(RequestLog).where(col(RequestLog.backend_id) == doomed))) == []
        assert list(await session.exec(select(BackendModel).where(col(BackendModel.backend_id) == keeper))) != []
        entry = (await session.exec(select(AdminAction).where(AdminAction.action == 'backend.delete'))).one()
    assert entry.target == f'backend {doomed} (doomed)' and entry.actor == 'root' and entry.via == 'api'
    assert entry.before is not None and entry.before['url'] == engines['doomed'].url and entry.after is None


async def test_a_backend_registered_with_a_wrong_url_can_be_deleted(admin: httpx.AsyncClient) -> None:
    wrong = await register(admin, 'typo', 'http://127.0.0.1:9')
    assert (await listing(admin))['typo']['status'] in ('unknown', 'unhealthy')
    assert (await admin.delete(f'/api/admin/backends/{wrong}')).status_code == 204
    assert await listing(admin) == {}


async def test_only_an_admin_deletes_a_backend(client: httpx.AsyncClient, admin: httpx.AsyncClient,
                                               alice_key: str) -> None:
    backend_id = await register(admin, 'typo', 'http://127.0.0.1:9')
    admin_key = client.headers.pop('X-API-Key')  # `admin` is this client with the admin's key
    assert (await client.delete(f'/api/admin/backends/{backend_id}')).status_code == 401
    refused = await client.delete(f'/api/admin/backends/{backend_id}', headers={'X-API-Key': alice_key})
    assert refused.status_code == 403
    client.headers['X-API-Key'] = admin_key
    assert set(await listing(client)) == {'typo'}  # still there
