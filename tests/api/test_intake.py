"""Every inference request gets its id and its audit row, refusals included: a bad parameter, an unknown model, a
malformed body, a body over MAX_REQUEST_BYTES (none of it stored), a refused key whose owner is known, a client gone
while sending. Driven both through the FastAPI app and through the fast front door that serves the hot routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from app.factory import serve
from core.accounts import service as accounts
from core.db import Database
from sim.server import SimServer
from tests.api.audit import audit_row

LIMIT = 4096  # MAX_REQUEST_BYTES here
OVERSIZED = b'{"model": "llama3.2", "prompt": "' + b'a' * LIMIT + b'"}'


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'MAX_REQUEST_BYTES': str(LIMIT), 'AUDIT_FLUSH_INTERVAL': '0.05'}


@pytest.fixture(params=['app', 'served'])
async def caller(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without a key, through the FastAPI app itself or through what `mindrouter serve` serves."""
    front = app if request.param == 'app' else serve(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(front), base_url='http://mindrouter.test') as http:
        yield http


@pytest.fixture
async def auditor(app: FastAPI, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """An administrator's client, to read the audit trail."""
    async with database.session() as session:
        await accounts.create_user(session, username='root', role='admin')
        _, key = await accounts.create_api_key(session, username='root')
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://mindrouter.test',
                                 headers={'X-API-Key': key}) as http:
        yield http


async def audit_count(app: FastAPI, auditor: httpx.AsyncClient) -> int:
    await app.state.audit.flush()
    listing = await auditor.get('/api/admin/audit', params={'limit': 100})
    return len(listing.json()['rows'])


CHAT = [{'role': 'user', 'content': 'hi'}]


@pytest.mark.parametrize(('path', 'body', 'status', 'fragment'), [
    ('/v1/chat/completions', {'model': 'llama3.2', 'messages': CHAT, 'temperature': 7}, 400, 'temperature'),
    ('/v1/chat/completions', {'model': 'no-such-model', 'messages': CHAT}, 404, 'no-such-model'),
    ('/v1/completions', OVERSIZED, 413, 'limit'),
    ('/v1/embeddings', b'{"model": ', 400, 'not valid JSON'),
    ('/v1/rerank', {'model': 'no-such-reranker', 'query': 'q', 'documents': ['d']}, 404, 'no-such-reranker'),
    ('/api/chat', {'model': 'no-such-model', 'messages': CHAT}, 404, 'no-such-model'),
    ('/api/generate', OVERSIZED, 413, 'limit'),
    ('/api/embeddings', b'', 400, 'missing request body'),
    ('/anthropic/v1/messages', {'model': 'llama3.2', 'messages': CHAT}, 400, 'max_tokens'),
    ('/v1/search', OVERSIZED, 413, 'limit'),
])
async def test_a_refused_request_has_its_id_and_its_audit_row(
        app: FastAPI, caller: httpx.AsyncClient, auditor: httpx.AsyncClient, alice_key: str,
        path: str, body: dict[str, Any] | bytes, status: int, fragment: str) -> None:
    headers = {'Authorization': f'Bearer {alice_key}', 'Content-Type': 'application/json'}
    sent = {'content': body} if isinstance(body, bytes) else {'json': body}
    response = await caller.post(path, headers=headers, **sent)

    assert response.status_code == status, response.text
    assert fragment in response.text
    request_id = response.headers['x-request-id']
    row = await audit_row(app, auditor, request_id)
    assert (row['endpoint'], row['status'], row['http_status'], row['user']) == (path, 'failed', status, 'alice')
    assert fragment in row['error']
    assert row['prompt'] is None and row['response'] is None  # nothing of a refused body is stored


async def test_a_chunked_body_over_the_limit_is_cut_off_and_audited(
        app: FastAPI, caller: httpx.AsyncClient, auditor: httpx.AsyncClient, alice_key: str) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:  # no Content-Length: the body is counted as it arrives
        nonlocal pulled
        yield b'{"model": "llama3.2", "messages": [{"role": "user", "content": "'
        while pulled < 1000:
            pulled += 1
            yield b'a' * 1024

    response = await caller.post('/v1/chat/completions', content=endless(),
                                 headers={'Authorization': f'Bearer {alice_key}'})

    assert response.status_code == 413 and 'exceeds the limit of 4096 bytes' in response.json()['error']['message']
    assert pulled <= LIMIT // 1024 + 1  # the rest was never read
    row = await audit_row(app, auditor, response.headers['x-request-id'])
    assert (row['status'], row['http_status'], row['prompt']) == ('failed', 413, None)


async def test_a_refused_key_is_audited_as_its_owners_and_an_unknown_one_is_not(
        app: FastAPI, caller: httpx.AsyncClient, auditor: httpx.AsyncClient, database: Database,
        alice_key: str) -> None:
    async with database.session() as session:
        [(key, _)] = await accounts.list_api_keys(session, username='alice')
        await accounts.revoke_api_key(session, key_ref=str(key.id))
    app.state.authenticator.invalidate()  # revoked in this process: no cache to wait for
    before = await audit_count(app, auditor)

    unknown = await caller.post('/api/chat', headers={'Authorization': 'Bearer mr_nobody'}, json={})
    assert unknown.status_code == 401 and 'x-request-id' not in unknown.headers
    revoked = await caller.post('/api/chat', headers={'Authorization': f'Bearer {alice_key}'},
                                json={'model': 'llama3.2', 'messages': CHAT})
    assert revoked.status_code == 401 and 'revoked' in revoked.json()['error']

    row = await audit_row(app, auditor, revoked.headers['x-request-id'])
    assert (row['user'], row['api_key_id'], row['http_status']) == ('alice', key.id, 401)
    assert await audit_count(app, auditor) == before + 1  # the unknown key left nothing


async def test_a_disabled_owner_is_audited(app: FastAPI, caller: httpx.AsyncClient, auditor: httpx.AsyncClient,
                                           database: Database, alice_key: str) -> None:
    async with database.session() as session:
        alice = await accounts.get_user(session, username='alice')
        alice.is_active = False
        session.add(alice)
        await session.commit()
    app.state.authenticator.invalidate()

    response = await caller.post('/anthropic/v1/messages', headers={'X-API-Key': alice_key},
                                 json={'model': 'llama3.2', 'max_tokens': 5, 'messages': CHAT})
    assert response.status_code == 403 and response.json()['error']['type'] == 'permission_error'
    row = await audit_row(app, auditor, response.headers['x-request-id'])
    assert (row['user'], row['endpoint'], row['http_status']) == ('alice', '/anthropic/v1/messages', 403)


async def test_a_client_gone_while_sending_is_audited_as_cancelled(app: FastAPI, auditor: httpx.AsyncClient,
                                                                   alice_key: str) -> None:
    messages: list[Message] = [{'type': 'http.request', 'body': b'{"model": "llama3.2", ', 'more_body': True},
                               {'type': 'http.disconnect'}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1', 'method': 'POST', 'scheme': 'http',
             'path': '/v1/chat/completions', 'raw_path': b'/v1/chat/completions', 'query_string': b'',
             'root_path': '', 'client': ('127.0.0.1', 50000), 'server': ('mindrouter.test', 80),
             'headers': [(b'host', b'mindrouter.test'), (b'authorization', f'Bearer {alice_key}'.encode()),
                         (b'transfer-encoding', b'chunked')]}
    await serve(app)(scope, receive, send)

    start = sent[0]
    assert start['status'] == 499
    request_id = dict(start['headers'])[b'x-request-id'].decode()
    row = await audit_row(app, auditor, request_id)
    assert (row['status'], row['http_status']) == ('cancelled', 499)


async def test_an_ollama_load_request_has_its_id_and_its_row(app: FastAPI, caller: httpx.AsyncClient,
                                                             auditor: httpx.AsyncClient, alice_key: str) -> None:
    async with SimServer('ollama') as engine:
        registered = await auditor.post('/api/admin/backends/register',
                                        json={'name': 'o', 'url': engine.url, 'engine': 'ollama'})
        assert registered.status_code == 201, registered.text
        response = await caller.post('/api/generate', headers={'X-API-Key': alice_key}, json={'model': 'llama3.2'})

    assert response.status_code == 200 and response.json()['done_reason'] == 'load'
    row = await audit_row(app, auditor, response.headers['x-request-id'])
    assert (row['status'], row['model'], row['endpoint']) == ('completed', 'llama3.2:latest', '/api/generate')
