"""Changes made through the admin API to backends and nodes land in the admin log: who (the key's owner), what,
to what, before and after, via the API. The sidecar key never does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import col, select

from core.db import Database
from core.models import AdminAction
from sim.server import SimServer
from sim.sidecar import SidecarConfig, SidecarSim

KEY = 'node-secret-9c1e'


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'NODE_POLL_INTERVAL': '3600'}


@pytest.fixture
async def sidecar() -> AsyncIterator[SidecarSim]:
    async with SidecarSim(SidecarConfig(gpus=2, key=KEY)) as node:
        yield node


async def actions(database: Database) -> list[AdminAction]:
    async with database.session() as session:
        return list(await session.exec(select(AdminAction).order_by(col(AdminAction.id))))


async def test_an_api_drain_is_recorded_with_the_admin_and_the_status_change(admin: httpx.AsyncClient,
                                                                             database: Database) -> None:
    async with SimServer('ollama') as engine:
        registered = await admin.post('/api/admin/backends/register',
                                      json={'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama'})
        backend_id = registered.json()['id']
        assert (await admin.post(f'/api/admin/backends/{backend_id}/drain')).status_code == 200

    log = await actions(database)
    assert [entry.action for entry in log] == ['backend.register', 'backend.drain']
    register, drain = log
    assert register.after is not None and register.after['url'] == engine.url and register.before is None
    assert drain.actor == 'root' and drain.actor_id is not None and drain.via == 'api'
    assert drain.target == f'backend {backend_id} (gpu-a)'
    assert drain.before == {'status': 'healthy'} and drain.after == {'status': 'draining'}


async def test_a_refused_change_is_not_recorded(admin: httpx.AsyncClient, database: Database) -> None:
    response = await admin.post('/api/admin/backends/register',
                                json={'name': 'bad', 'url': 'ftp://nowhere', 'engine': 'ollama'})
    assert response.status_code == 400
    assert (await admin.post('/api/admin/backends/999/drain')).status_code == 404
    assert await actions(database) == []


async def test_a_node_registration_and_removal_are_recorded_without_the_key(
        admin: httpx.AsyncClient, database: Database, sidecar: SidecarSim) -> None:
    response = await admin.post('/api/admin/nodes/register', json={
        'name': 'gpu1', 'hostname': 'gpu1.example.edu', 'sidecar_url': sidecar.url, 'sidecar_key': KEY})
    assert response.status_code == 201
    node_id = response.json()['id']
    assert (await admin.post(f'/api/admin/nodes/{node_id}/refresh')).status_code == 200
    assert (await admin.delete(f'/api/admin/nodes/{node_id}')).status_code == 204

    log = await actions(database)
    assert [entry.action for entry in log] == ['node.register', 'node.refresh', 'node.delete']
    register = log[0]
    assert register.actor == 'root' and register.via == 'api' and register.target == f'node {node_id} (gpu1)'
    assert register.after is not None and register.after['sidecar_url'] == sidecar.url
    assert log[1].after == {'status': 'online'}
    assert log[2].before is not None and log[2].before['name'] == 'gpu1'
    assert all(KEY not in str(entry.before) + str(entry.after) for entry in log)
