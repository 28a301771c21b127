"""The admin API over the audit trails: /api/admin/audit (search, one request, export) and /api/admin/log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert
from sqlmodel import select

from core.audit import admin_log
from core.audit import search as audit_search
from core.db import Database
from core.models import RequestLog, User, utcnow

CHAT = '/v1/chat/completions'


@pytest.fixture
async def trail(admin: httpx.AsyncClient, alice_key: str, database: Database) -> Database:
    """root (admin) and alice (student) with five requests between them, over three days."""
    now = utcnow()
    async with database.session() as session:
        ids = dict(list(await session.exec(select(User.username, User.id))))
        rows: list[dict[str, Any]] = [
            {'request_id': 'a-1', 'user_id': ids['alice'], 'model': 'llama3.2:latest', 'status': 'completed',
             'minutes': 10, 'prompt': orjson.dumps([{'role': 'user', 'content': 'What is a GPU?'}]).decode(),
             'response': 'A graphics processor.', 'prompt_tokens': 7, 'completion_tokens': 5},
            {'request_id': 'a-2', 'user_id': ids['alice'], 'model': 'qwen3:8b', 'status': 'failed', 'minutes': 90,
             'http_status': 502, 'error': 'engine error'},
            {'request_id': 'a-old', 'user_id': ids['alice'], 'model': 'llama3.2:latest', 'status': 'completed',
             'minutes': 3 * 24 * 60, 'prompt': 'plain completion prompt'},
            {'request_id': 'r-1', 'user_id': ids['root'], 'model': 'qwen3:8b', 'status': 'completed', 'minutes': 5,
             'endpoint': '/api/chat'},
            {'request_id': 'r-2', 'user_id': ids['root'], 'model': 'llama3.2:latest', 'status': 'cancelled',
             'minutes': 30, 'http_status': 499},
        ]
        values = [{'endpoint': CHAT, 'http_status': 200, 'total_ms': 400.0, **row,
                   'created_at': now - timedelta(minutes=row.pop('minutes'))} for row in rows]
        await session.exec(insert(RequestLog), params=values)
        await session.commit()
    return database


def ids_of(body: dict[str, Any]) -> list[str]:
    return [row['request_id'] for row in body['rows']]


async def test_search_filters_by_user_model_status_endpoint_and_time(admin: httpx.AsyncClient,
                                                                     trail: Database) -> None:
    everything = (await admin.get('/api/admin/audit')).json()
    assert ids_of(everything) == ['r-1', 'a-1', 'r-2', 'a-2', 'a-old']  # newest first
    assert (everything['total'], everything['total_exact']) == (5, True)
    assert 'prompt' not in everything['rows'][0]  # lists never carry prompts
    assert everything['rows'][1]['user'] == 'alice'

    assert ids_of((await admin.get('/api/admin/audit', params={'user': 'alice'})).json()) == ['a-1', 'a-2', 'a-old']
    assert ids_of((await admin.get('/api/admin/audit', params={'model': 'qwen3:8b'})).json()) == ['r-1', 'a-2']
    assert ids_of((await admin.get('/api/admin/audit', params={'status': 'cancelled'})).json()) == ['r-2']
    assert ids_of((await admin.get('/api/admin/audit', params={'endpoint': '/api/chat'})).json()) == ['r-1']
    since = (utcnow() - timedelta(hours=1)).isoformat()
    assert ids_of((await admin.get('/api/admin/audit', params={'since': since})).json()) == ['r-1', 'a-1', 'r-2']
    both = await admin.get('/api/admin/audit', params={'user': 'alice', 'model': 'llama3.2:latest', 'since': since})
    assert ids_of(both.json()) == ['a-1']

    page = (await admin.get('/api/admin/audit', params={'offset': 1, 'limit': 2})).json()
    assert ids_of(page) == ['a-1', 'r-2'] and page['total'] == 5


async def test_free_text_needs_a_bounded_range(admin: httpx.AsyncClient, trail: Database) -> None:
    unbounded = await admin.get('/api/admin/audit', params={'q': 'GPU'})
    assert unbounded.status_code == 400
    assert unbounded.json()['error']['param'] == 'q'
    since = (utcnow() - timedelta(days=1)).isoformat()
    found = await admin.get('/api/admin/audit', params={'q': 'graphics', 'since': since})
    assert ids_of(found.json()) == ['a-1']


async def test_bad_filters_are_refused_naming_the_parameter(admin: httpx.AsyncClient, trail: Database) -> None:
    for params, name in (({'user': 'nobody'}, 'user'), ({'status': 'odd'}, 'status'), ({'since': 'soon'}, 'since')):
        response = await admin.get('/api/admin/audit', params=params)
        assert response.status_code == 400, params
        assert response.json()['error']['param'] == name


async def test_one_request_comes_with_its_prompt_and_response(admin: httpx.AsyncClient, trail: Database) -> None:
    record = (await admin.get('/api/admin/audit/a-1')).json()
    assert record['prompt'] == [{'role': 'user', 'content': 'What is a GPU?'}]
    assert record['response'] == 'A graphics processor.'
    assert record['user'] == 'alice' and record['status'] == 'completed'
    assert (await admin.get('/api/admin/audit/a-old')).json()['prompt'] == 'plain completion prompt'
    missing = await admin.get('/api/admin/audit/no-such-request')
    assert missing.status_code == 404


async def test_export_streams_the_filters_conversations_as_json(admin: httpx.AsyncClient, trail: Database) -> None:
    response = await admin.get('/api/admin/audit/export', params={'user': 'alice'})
    assert response.status_code == 200
    assert 'attachment' in response.headers['content-disposition']
    exported = orjson.loads(response.content)
    assert [entry['request_id'] for entry in exported] == ['a-old', 'a-2', 'a-1']  # oldest first
    assert exported[2]['prompt'] == [{'role': 'user', 'content': 'What is a GPU?'}]
    assert exported[2]['response'] == 'A graphics processor.'
    assert (exported[2]['prompt_tokens'], exported[2]['completion_tokens']) == (7, 5)
    assert orjson.loads((await admin.get('/api/admin/audit/export', params={'user': 'root', 'status': 'failed'}))
                        .content) == []


async def test_export_in_chunks_matches_the_search(admin: httpx.AsyncClient, trail: Database) -> None:
    chunks = [chunk async for chunk in audit_search.export_json(trail, audit_search.AuditFilter(), chunk_size=2)]
    assert len(chunks) == 5  # '[', three chunks of at most two, ']'
    streamed = [entry['request_id'] for entry in orjson.loads(b''.join(chunks))]
    searched = ids_of((await admin.get('/api/admin/audit')).json())
    assert streamed == list(reversed(searched))


async def test_an_export_past_the_limit_is_refused(admin: httpx.AsyncClient, trail: Database,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_search, 'EXPORT_MAX_ROWS', 3)
    response = await admin.get('/api/admin/audit/export')
    assert response.status_code == 400
    assert 'more than 3 requests match' in response.json()['error']['message']


async def test_the_admin_log_lists_entries_with_what_changed(admin: httpx.AsyncClient, trail: Database) -> None:
    async with trail.session() as session:
        await admin_log.record(session, actor_id=None, actor='root', action='user.role', target='user alice',
                               before={'role': 'student', 'email': 'a@x'}, after={'role': 'faculty', 'email': 'a@x'},
                               via='api')
        await admin_log.record(session, actor_id=None, actor='ops', action='backend.drain', target='backend 3')
    body = (await admin.get('/api/admin/log')).json()
    assert body['total'] == 2
    assert [row['action'] for row in body['rows']] == ['backend.drain', 'user.role']
    change = body['rows'][1]
    assert change['changed'] == ['role'] and change['before']['role'] == 'student' and change['via'] == 'api'
    assert [row['actor'] for row in (await admin.get('/api/admin/log', params={'actor': 'ops'})).json()['rows']] \
        == ['ops']
    assert (await admin.get('/api/admin/log', params={'action': 'user.'})).json()['total'] == 1


async def test_a_students_key_is_refused_everywhere(client: httpx.AsyncClient, alice_key: str,
                                                   trail: Database) -> None:
    client.headers['X-API-Key'] = alice_key
    for path in ('/api/admin/audit', '/api/admin/audit/a-1', '/api/admin/audit/export', '/api/admin/log'):
        assert (await client.get(path)).status_code == 403, path
    del client.headers['X-API-Key']
    assert (await client.get('/api/admin/audit')).status_code == 401



async def test_the_upstream_search_path_answers_like_the_audit_search(admin: httpx.AsyncClient,
                                                                      trail: Database) -> None:
    """Scripts written against the product's documented GET /api/admin/audit/search keep working."""
    for params in ({}, {'user': 'alice'}, {'model': 'qwen3:8b', 'status': 'failed'}, {'offset': 1, 'limit': 2},
                   {'endpoint': '/api/chat'}, {'since': (utcnow() - timedelta(hours=1)).isoformat()}):
        upstream = await admin.get('/api/admin/audit/search', params=params)
        assert upstream.status_code == 200, (params, upstream.text)
        assert upstream.json() == (await admin.get('/api/admin/audit', params=params)).json(), params
    body = (await admin.get('/api/admin/audit/search', params={'user': 'alice'})).json()
    assert set(body) == {'rows', 'total', 'total_exact', 'offset', 'limit'}
    assert ids_of(body) == ['a-1', 'a-2', 'a-old'] and body['total'] == 3
    refused = await admin.get('/api/admin/audit/search', params={'status': 'odd'})
    assert refused.status_code == 400 and refused.json()['error']['param'] == 'status'


async def test_the_upstream_conversation_export_streams_the_filtered_conversations(admin: httpx.AsyncClient,
                                                                                  trail: Database) -> None:
    response = await admin.get('/api/admin/conversations/export', params={'user': 'alice'})
    assert response.status_code == 200
    assert response.headers['content-type'] == 'application/json'
    exported = orjson.loads(response.content)
    assert [entry['request_id'] for entry in exported] == ['a-old', 'a-2', 'a-1']
    assert exported[2]['prompt'] == [{'role': 'user', 'content': 'What is a GPU?'}]
    assert exported[2]['response'] == 'A graphics processor.'
    assert response.content == (await admin.get('/api/admin/audit/export', params={'user': 'alice'})).content
    by_model = orjson.loads((await admin.get('/api/admin/conversations/export', params={'model': 'qwen3:8b'})).content)
    assert [entry['request_id'] for entry in by_model] == ['a-2', 'r-1']


async def test_the_upstream_export_is_bounded_like_the_audit_export(admin: httpx.AsyncClient, trail: Database,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_search, 'EXPORT_MAX_ROWS', 3)
    response = await admin.get('/api/admin/conversations/export')
    assert response.status_code == 400  # refused before the first byte: narrow the filters
    assert 'more than 3 requests match' in response.json()['error']['message']


async def test_the_upstream_paths_are_for_admins_only(client: httpx.AsyncClient, alice_key: str,
                                                     trail: Database) -> None:
    paths = ('/api/admin/audit/search', '/api/admin/conversations/export')
    del client.headers['X-API-Key']  # the trail was set up with the admin's key on this client
    for path in paths:
        assert (await client.get(path)).status_code == 401, path
    client.headers['X-API-Key'] = alice_key
    for path in paths:
        refused = await client.get(path)
        assert refused.status_code == 403, path
        assert refused.json()['error']['type'] == 'permission_error'
