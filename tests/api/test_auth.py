"""API keys on the wire: both header styles work; everything else is a 401 in the caller's dialect."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from core.accounts import service as accounts
from core.db import Database
from core.models import utcnow


async def test_a_key_works_as_bearer_token_and_as_x_api_key(client: httpx.AsyncClient, alice_key: str) -> None:
    bearer = await client.get('/v1/models', headers={'Authorization': f'Bearer {alice_key}'})
    x_api_key = await client.get('/v1/models', headers={'X-API-Key': alice_key})

    for response in (bearer, x_api_key):
        assert response.status_code == 200
        assert response.json() == {'object': 'list', 'data': []}


@pytest.mark.parametrize('headers', [
    {},
    {'Authorization': 'Bearer mr_not-a-real-key'},
    {'X-API-Key': 'mr_not-a-real-key'},
    {'Authorization': 'Basic dXNlcjpwYXNz'},
])
async def test_missing_or_invalid_keys_get_a_401_in_the_openai_envelope(client: httpx.AsyncClient,
                                                                        headers: dict[str, str]) -> None:
    response = await client.get('/v1/models', headers=headers)

    assert response.status_code == 401
    assert response.headers['www-authenticate'] == 'Bearer'
    body = response.json()
    assert set(body) == {'error'}
    assert set(body['error']) == {'message', 'type', 'param', 'code'}
    assert body['error']['code'] == 'invalid_api_key'
    assert 'detail' not in response.text


async def test_a_revoked_key_is_refused_within_the_cache_ttl(client: httpx.AsyncClient, database: Database,
                                                             alice_key: str) -> None:
    headers = {'Authorization': f'Bearer {alice_key}'}
    assert (await client.get('/v1/models', headers=headers)).status_code == 200
    async with database.session() as session:
        [(key, _)] = await accounts.list_api_keys(session, username='alice')
        await accounts.revoke_api_key(session, key_ref=str(key.id))

    status = 200
    for _ in range(60):  # the TTL is 3 s; give up after 6 s
        status = (await client.get('/v1/models', headers=headers)).status_code
        if status == 401:
            break
        await asyncio.sleep(0.1)
    assert status == 401
    body = (await client.get('/v1/models', headers=headers)).json()
    assert 'revoked' in body['error']['message']


async def test_an_expired_key_is_refused(client: httpx.AsyncClient, database: Database) -> None:
    async with database.session() as session:
        await accounts.create_user(session, username='bob', role='staff')
        _, plaintext = await accounts.create_api_key(session, username='bob', expires_at=utcnow() - timedelta(1))

    response = await client.get('/v1/models', headers={'X-API-Key': plaintext})
    assert response.status_code == 401
    assert 'expired' in response.json()['error']['message']


async def test_a_disabled_account_gets_403(client: httpx.AsyncClient, database: Database, alice_key: str) -> None:
    async with database.session() as session:
        alice = await accounts.get_user(session, username='alice')
        alice.is_active = False
        session.add(alice)
        await session.commit()

    response = await client.get('/v1/models', headers={'X-API-Key': alice_key})
    assert response.status_code == 403
    assert response.json()['error']['type'] == 'permission_error'


async def test_last_use_is_written_in_the_background_and_flushed_at_shutdown(database: Database,
                                                                              alice_key: str) -> None:
    from asgi_lifespan import LifespanManager

    from app.factory import create_api_app

    app = create_api_app()
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                                       base_url='http://t') as http:
        assert (await http.get('/v1/models', headers={'X-API-Key': alice_key})).status_code == 200
        async with database.session() as session:
            [(key, _)] = await accounts.list_api_keys(session, username='alice')
        assert key.last_used_at is None  # not written on the request's own path
    async with database.session() as session:
        [(key, _)] = await accounts.list_api_keys(session, username='alice')
    assert key.last_used_at is not None


@pytest.mark.parametrize(('path', 'expected'), [
    ('/anthropic/v1/unknown', {'type': 'error', 'error': {'type': 'not_found_error',
                                                          'message': 'Unknown endpoint: GET /anthropic/v1/unknown'}}),
    ('/api/unknown', {'error': 'Unknown endpoint: GET /api/unknown'}),
    ('/v1/unknown', {'error': {'message': 'Unknown endpoint: GET /v1/unknown', 'type': 'not_found_error',
                               'param': None, 'code': None}}),
])
async def test_unknown_api_paths_answer_in_their_dialect(client: httpx.AsyncClient, path: str,
                                                         expected: dict[str, object]) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == expected


async def test_a_wrong_method_is_405_not_404(client: httpx.AsyncClient) -> None:
    response = await client.post('/v1/models')
    assert response.status_code == 405
    assert response.json()['error']['type'] == 'invalid_request_error'

