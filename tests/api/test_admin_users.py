"""An operator manages users, keys, limits and model settings through the admin API; every change lands in the
admin log (via='api')."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.accounts import service as accounts
from core.db import Database
from sim.server import SimServer

MODEL = 'llama3.2:latest'


async def log_of(admin: httpx.AsyncClient, action: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = (await admin.get('/api/admin/log', params={'action': action})).json()['rows']
    return rows


async def test_an_admin_creates_pages_and_searches_users(admin: httpx.AsyncClient) -> None:
    created = await admin.post('/api/admin/users', json={'username': 'carol', 'role': 'faculty',
                                                         'email': 'carol@uni.edu', 'full_name': 'Carol C'})
    assert created.status_code == 201, created.text
    assert created.json()['role'] == 'faculty' and created.json()['has_password'] is False
    for i in range(30):
        assert (await admin.post('/api/admin/users', json={'username': f's{i:02d}'})).status_code == 201

    first = (await admin.get('/api/admin/users', params={'limit': 10})).json()
    assert first['total'] == 32 and len(first['users']) == 10  # root, carol and 30 students
    later = (await admin.get('/api/admin/users', params={'offset': 30, 'limit': 10})).json()
    assert [u['username'] for u in later['users']] == ['s28', 's29']
    found = (await admin.get('/api/admin/users', params={'q': 'UNI.EDU'})).json()
    assert [u['username'] for u in found['users']] == ['carol']
    faculty = (await admin.get('/api/admin/users', params={'role': 'faculty'})).json()
    assert faculty['total'] == 1

    for body, param in (({'username': 'bad name'}, 'username'), ({'username': 'dave', 'email': 'nope'}, 'email'),
                        ({'username': 'carol'}, 'username'), ({'username': 'dave', 'role': 'wizard'}, 'role'),
                        ({'username': 'dave', 'password': 'short'}, 'password')):
        refused = await admin.post('/api/admin/users', json=body)
        assert refused.status_code == 400 and refused.json()['error']['param'] == param, refused.text
    assert [entry['target'] for entry in await log_of(admin, 'user.create')][-1] == 'user carol'


async def test_deactivating_a_user_stops_its_key_at_once_and_a_role_change_is_logged(
        admin: httpx.AsyncClient, alice_key: str) -> None:
    alice = {'X-API-Key': alice_key}
    assert (await admin.get('/v1/models', headers=alice)).status_code == 200  # cached as active now

    promoted = await admin.patch('/api/admin/users/alice', json={'role': 'staff', 'full_name': 'Alice A'})
    assert promoted.json()['role'] == 'staff' and promoted.json()['full_name'] == 'Alice A'
    off = await admin.patch('/api/admin/users/alice', json={'is_active': False})
    assert off.json()['is_active'] is False
    refused = await admin.get('/v1/models', headers=alice)
    assert refused.status_code == 403 and 'disabled' in refused.json()['error']['message']

    [entry] = await log_of(admin, 'user.deactivate')
    assert (entry['before'], entry['after'], entry['via']) == ({'is_active': True}, {'is_active': False}, 'api')
    [entry] = await log_of(admin, 'user.update')
    assert (entry['before'], entry['after']) == ({'full_name': '', 'role': 'student'},
                                                 {'full_name': 'Alice A', 'role': 'staff'})

    assert (await admin.patch('/api/admin/users/alice', json={'is_admin': True})).status_code == 400  # unknown field
    assert (await admin.patch('/api/admin/users/nobody', json={'is_active': True})).status_code == 404
    self_off = await admin.patch('/api/admin/users/root', json={'is_active': False})
    assert self_off.status_code == 400 and 'your own account' in self_off.json()['error']['message']


async def test_an_admin_lists_and_revokes_a_users_keys(admin: httpx.AsyncClient, alice_key: str) -> None:
    alice = {'X-API-Key': alice_key}
    assert (await admin.get('/v1/models', headers=alice)).status_code == 200
    [key] = (await admin.get('/api/admin/users/alice/keys')).json()
    assert key['status'] == 'active' and alice_key.startswith(key['prefix'])

    revoked = await admin.post(f'/api/admin/keys/{key["id"]}/revoke')
    assert revoked.json()['status'] == 'revoked'
    assert (await admin.get('/v1/models', headers=alice)).status_code == 401  # at once, not after the cache
    again = await admin.post(f'/api/admin/keys/{key["prefix"]}/revoke')
    assert again.status_code == 200 and again.json()['status'] == 'revoked'
    assert len(await log_of(admin, 'api_key.revoke')) == 1  # revoking twice changes, and records, nothing
    assert (await admin.post('/api/admin/keys/99999/revoke')).status_code == 404
    assert (await admin.get('/api/admin/users/nobody/keys')).status_code == 404


async def test_limits_and_quota_decisions_through_the_api_are_logged(admin: httpx.AsyncClient,
                                                                     alice_key: str) -> None:
    await admin.patch('/api/admin/roles/student', json={'scheduler_weight': 3})
    await admin.put('/api/admin/users/alice/quota', json={'token_budget': 1234, 'note': 'course'})
    filed = (await admin.post('/api/account/quota-requests', headers={'X-API-Key': alice_key}, json={
        'requested_rpm': 200, 'justification': 'a class assignment with many calls'})).json()
    await admin.post(f'/api/admin/quota-requests/{filed["id"]}/approve', json={'note': 'ok'})

    [role] = await log_of(admin, 'role.update')
    assert (role['target'], role['before'], role['after']) == ('role student', {'scheduler_weight': 1},
                                                               {'scheduler_weight': 3})
    [quota] = await log_of(admin, 'user.quota')
    assert quota['after']['token_budget'] == 1234 and quota['before']['token_budget'] is None  # type: ignore[index]
    [approval] = await log_of(admin, 'quota_request.approve')
    assert approval['after']['rpm_limit'] == 200 and approval['after']['status'] == 'approved'  # type: ignore[index]


async def test_a_student_key_gets_403_on_every_user_endpoint(client: httpx.AsyncClient, alice_key: str,
                                                             database: Database) -> None:
    async with database.session() as session:
        await accounts.create_user(session, username='bob', role='student')
    alice = {'X-API-Key': alice_key}
    for method, path, body in (('GET', '/api/admin/users', None), ('POST', '/api/admin/users', {'username': 'x'}),
                               ('PATCH', '/api/admin/users/bob', {'is_active': False}),
                               ('GET', '/api/admin/users/bob/keys', None), ('POST', '/api/admin/keys/1/revoke', None)):
        response = await client.request(method, path, json=body, headers=alice)
        assert response.status_code == 403, (method, path, response.text)
    assert (await client.get('/api/admin/users')).status_code == 401


@pytest.fixture
async def engine() -> AsyncIterator[SimServer]:
    async with SimServer('ollama') as sim:
        yield sim


async def test_the_api_sets_and_clears_a_capability_override(admin: httpx.AsyncClient, engine: SimServer) -> None:
    registered = await admin.post('/api/admin/backends/register',
                                  json={'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama'})
    assert registered.status_code == 201, registered.text
    served = admin
    changed = await served.patch(f'/api/admin/models/{MODEL}', json={'capabilities_override': ['completion', 'tools']})
    assert changed.status_code == 200, changed.text
    assert changed.json()['capabilities'] == ['completion', 'tools']
    listed = {m['id']: m for m in (await served.get('/v1/models')).json()['data']}
    assert listed[MODEL]['capabilities'] == ['completion', 'tools']  # routing sees it at once
    refused = await served.patch(f'/api/admin/models/{MODEL}', json={'capabilities_override': ['telepathy']})
    assert refused.status_code == 400 and refused.json()['error']['param'] == 'capabilities_override'
    assert (await served.patch(f'/api/admin/models/{MODEL}', json={'capabilities_override': []})).status_code == 400
    cleared = await served.patch(f'/api/admin/models/{MODEL}', json={'capabilities_override': None})
    assert 'completion' in cleared.json()['capabilities'] and cleared.json()['context_length_override'] is None
    assert [entry['via'] for entry in await log_of(admin, 'model.settings')] == ['api', 'api']
