"""Model aliases through the admin API: an admin points a name agents know at a served model; every user's
requests under that name are answered by it, listed in every dialect's catalog, audited with both names; an
alias may never shadow a served model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, select

from core.db import Database
from core.models import AdminAction
from sim.server import SimServer
from tests.api.audit import audit_row


@pytest.fixture
async def engine(admin: httpx.AsyncClient) -> AsyncIterator[SimServer]:
    async with SimServer('ollama') as sim:  # serves llama3.2:latest, qwen3:0.6b, nomic-embed-text:latest
        registered = await admin.post('/api/admin/backends/register',
                                      json={'name': 'gpu-a', 'url': sim.url, 'engine': 'ollama'})
        assert registered.status_code == 201, registered.text
        yield sim


async def test_an_admin_creates_lists_and_deletes_an_alias_and_each_change_is_logged(
        admin: httpx.AsyncClient, engine: SimServer, database: Database) -> None:
    created = await admin.put('/api/admin/model-aliases/claude-sonnet-4-5', json={'target': 'qwen3:0.6b'})
    assert created.status_code == 200, created.text
    assert created.json() == {'alias': 'claude-sonnet-4-5', 'target': 'qwen3:0.6b', 'served_as': 'qwen3:0.6b',
                              'active': True, 'shadowed': False}
    moved = await admin.put('/api/admin/model-aliases/claude-sonnet-4-5', json={'target': 'llama3.2'})
    assert moved.json()['served_as'] == 'llama3.2:latest'
    assert [a['alias'] for a in (await admin.get('/api/admin/model-aliases')).json()] == ['claude-sonnet-4-5']

    assert (await admin.delete('/api/admin/model-aliases/claude-sonnet-4-5')).status_code == 200
    assert (await admin.get('/api/admin/model-aliases')).json() == []
    assert (await admin.delete('/api/admin/model-aliases/claude-sonnet-4-5')).status_code == 404

    async with database.session() as session:
        log = list(await session.exec(select(AdminAction).where(col(AdminAction.action).startswith('model_alias'))
                                      .order_by(col(AdminAction.id))))
    assert [(e.action, e.before, e.after, e.via) for e in log] == [
        ('model_alias.set', None, {'target': 'qwen3:0.6b'}, 'api'),
        ('model_alias.set', {'target': 'qwen3:0.6b'}, {'target': 'llama3.2'}, 'api'),
        ('model_alias.delete', {'target': 'llama3.2'}, None, 'api'),
    ]


async def test_an_alias_may_not_shadow_a_served_model_nor_point_nowhere(admin: httpx.AsyncClient,
                                                                        engine: SimServer) -> None:
    shadow = await admin.put('/api/admin/model-aliases/qwen3:0.6b', json={'target': 'llama3.2:latest'})
    assert shadow.status_code == 409
    assert 'shadow' in shadow.json()['error']['message']
    untagged = await admin.put('/api/admin/model-aliases/llama3.2', json={'target': 'qwen3:0.6b'})
    assert untagged.status_code == 409  # llama3.2 already answers as llama3.2:latest
    nowhere = await admin.put('/api/admin/model-aliases/gpt-5-codex', json={'target': 'no-such-model'})
    assert nowhere.status_code == 400
    assert (await admin.put('/api/admin/model-aliases/gpt-5-codex', json={'target': 'qwen3:0.6b'})).status_code == 200
    chained = await admin.put('/api/admin/model-aliases/gpt-5', json={'target': 'gpt-5-codex'})
    assert chained.status_code == 400
    assert (await admin.put('/api/admin/model-aliases/bad name', json={'target': 'qwen3:0.6b'})).status_code == 400


async def test_the_alias_api_needs_an_admin_key(client: httpx.AsyncClient, alice_key: str) -> None:
    assert (await client.get('/api/admin/model-aliases')).status_code == 401
    student = {'X-API-Key': alice_key}
    assert (await client.get('/api/admin/model-aliases', headers=student)).status_code == 403
    refused = await client.put('/api/admin/model-aliases/x', json={'target': 'y'}, headers=student)
    assert refused.status_code == 403
    assert (await client.delete('/api/admin/model-aliases/x', headers=student)).status_code == 403


async def test_a_request_under_an_alias_is_answered_as_asked_listed_and_audited_with_both_names(
        app: FastAPI, admin: httpx.AsyncClient, engine: SimServer, alice_key: str) -> None:
    await admin.put('/api/admin/model-aliases/claude-haiku-4-5', json={'target': 'qwen3:0.6b'})
    student = {'Authorization': f'Bearer {alice_key}'}

    answer = await admin.post('/v1/chat/completions', headers=student, json={
        'model': 'claude-haiku-4-5', 'messages': [{'role': 'user', 'content': 'hi'}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()['model'] == 'claude-haiku-4-5'
    row = await audit_row(app, admin, answer.headers['X-Request-ID'])
    assert row['model'] == 'qwen3:0.6b' and row['requested_model'] == 'claude-haiku-4-5'

    plain = await admin.post('/v1/chat/completions', headers=student, json={
        'model': 'qwen3:0.6b', 'messages': [{'role': 'user', 'content': 'hi'}]})
    assert (await audit_row(app, admin, plain.headers['X-Request-ID']))['requested_model'] is None

    openai_list = {m['id']: m for m in (await admin.get('/v1/models', headers=student)).json()['data']}
    assert openai_list['claude-haiku-4-5']['alias_for'] == 'qwen3:0.6b'
    assert 'alias_for' not in openai_list['qwen3:0.6b']
    assert (await admin.get('/v1/models/claude-haiku-4-5', headers=student)).json()['id'] == 'claude-haiku-4-5'
    tags = {m['name']: m for m in (await admin.get('/api/tags', headers=student)).json()['models']}
    assert tags['claude-haiku-4-5']['alias_for'] == 'qwen3:0.6b'
    anthropic = {m['id']: m for m in (await admin.get('/anthropic/v1/models', headers=student)).json()['data']}
    assert anthropic['claude-haiku-4-5']['display_name'] == 'claude-haiku-4-5 → qwen3:0.6b'

    await admin.delete('/api/admin/model-aliases/claude-haiku-4-5')
    gone = await admin.post('/v1/chat/completions', headers=student, json={
        'model': 'claude-haiku-4-5', 'messages': [{'role': 'user', 'content': 'hi'}]})
    assert gone.status_code == 404


async def test_a_model_served_later_under_an_alias_name_wins_and_the_alias_shows_shadowed(
        app: FastAPI, admin: httpx.AsyncClient, engine: SimServer) -> None:
    await admin.put('/api/admin/model-aliases/tinyllama', json={'target': 'qwen3:0.6b'})
    async with SimServer('vllm') as other:  # then a backend starts serving a model of the alias's name
        other.config.models = ['tinyllama']
        registered = await admin.post('/api/admin/backends/register',
                                      json={'name': 'gpu-b', 'url': other.url, 'engine': 'vllm'})
        assert registered.status_code == 201, registered.text
        listed = (await admin.get('/api/admin/model-aliases')).json()
        assert listed == [{'alias': 'tinyllama', 'target': 'qwen3:0.6b', 'served_as': 'qwen3:0.6b',
                           'active': False, 'shadowed': True}]
        answer = await admin.post('/v1/chat/completions', json={
            'model': 'tinyllama', 'messages': [{'role': 'user', 'content': 'hi'}]})
        assert answer.status_code == 200
        assert answer.headers['X-MindRouter-Backend'] == 'gpu-b'
        ids = [m['id'] for m in (await admin.get('/v1/models')).json()['data']]
        assert ids.count('tinyllama') == 1
