"""Run-time settings through the admin API: listed with their source, changed for the very next request and for
every later start, reset to the environment's value, each change in the admin log; secrets never shown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlmodel import col, select

from app.factory import create_api_app
from core.admin import site_settings
from core.admin.settings_sync import SettingsSync
from core.admin.site_settings import mask_url
from core.config import Settings, reset_settings
from core.db import Database
from core.models import AdminAction, RequestLog, utcnow
from sim.config import SimConfig
from sim.server import SimServer

SECRET = 'an-admin-api-test-secret-key-0123456789abc'


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'SECRET_KEY': SECRET, 'CONTEXT_LENGTH_CAP': '16384'}


@pytest.fixture
async def engine() -> AsyncIterator[SimServer]:
    async with SimServer('ollama', SimConfig(tokens=3, context_length=65536)) as sim:
        yield sim


def editable(listing: dict[str, Any], name: str) -> dict[str, Any]:
    return next(entry for entry in listing['editable'] if entry['name'] == name)


async def test_the_listing_says_where_each_value_comes_from_and_hides_secrets(admin: httpx.AsyncClient) -> None:
    response = await admin.get('/api/admin/settings')
    assert response.status_code == 200
    listing = response.json()
    assert {entry['name'] for entry in listing['editable']} == {
        'context_length_cap', 'ollama_override_num_ctx', 'audit_log_prompts', 'audit_log_responses', 'audit_log_audio',
        'audit_content_retention_days', 'audit_metadata_retention_days', 'telemetry_retention_days',
        'search_provider', 'searxng_url', 'brave_api_key', 'search_timeout', 'local_login'}
    cap = editable(listing, 'context_length_cap')
    assert (cap['value'], cap['environment_value'], cap['source']) == (16384, 16384, 'environment')
    assert editable(listing, 'audit_log_prompts')['source'] == 'default'
    assert listing['read_only']['secret_key'] == '(hidden)'
    assert 'context_length_cap' not in listing['read_only'] and 'queue_timeout' in listing['read_only']
    assert SECRET not in response.text


async def test_a_changed_context_cap_applies_to_the_next_request_and_to_the_next_start(
        admin: httpx.AsyncClient, engine: SimServer, database: Database) -> None:
    registered = await admin.post('/api/admin/backends/register', json={
        'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama', 'max_concurrent': 2})
    assert registered.status_code == 201, registered.text

    changed = await admin.put('/api/admin/settings/context_length_cap', json={'value': 2048})
    assert changed.status_code == 200, changed.text
    assert (changed.json()['value'], changed.json()['source'], changed.json()['changed_by'],
            changed.json()['changed_via']) == (2048, 'console', 'root', 'api')

    answer = await admin.post('/v1/chat/completions', json={
        'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hello'}]})
    assert answer.status_code == 200, answer.text
    async with httpx.AsyncClient(base_url=engine.url) as direct:
        loaded = (await direct.get('/api/ps')).json()['models']
    assert [m['context_length'] for m in loaded] == [2048]  # num_ctx the gateway sent, capped live

    async with database.session() as session:
        entries = list(await session.exec(select(AdminAction).where(col(AdminAction.target) == 'context_length_cap')))
    assert [(e.action, e.actor, e.before, e.after, e.via) for e in entries] == [
        ('setting.change', 'root', {'context_length_cap': 16384}, {'context_length_cap': 2048}, 'api')]



async def test_a_stored_change_outlives_a_restart(database: Database, app_env: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    async with database.session() as session:  # changed while an earlier process ran
        await site_settings.change(session, Settings(), name='context_length_cap', value=2048, actor_id=None,
                                   actor='root', via='api')
    application = create_api_app()  # the environment still says 16384: the stored change wins
    async with LifespanManager(application):
        assert application.state.settings.context_length_cap == 2048


async def test_another_process_follows_a_change_and_a_reset_at_its_next_re_read(
        admin: httpx.AsyncClient, database: Database) -> None:
    """The fallback without Redis: another process's settings follow the table at its periodic re-read (the Redis
    message that makes it immediate is proven on real processes in tests/multiprocess)."""
    other = Settings()  # another worker's live settings: the environment's values
    sync = SettingsSync(database, other, interval=3600)
    await sync.start()
    try:
        assert await sync.refresh() == []  # nothing changed since it started
        assert (await admin.put('/api/admin/settings/context_length_cap', json={'value': 4096})).status_code == 200
        assert (await admin.put('/api/admin/settings/search_provider', json={'value': 'brave'})).status_code == 200
        assert sorted(await sync.refresh()) == ['context_length_cap', 'search_provider']
        assert (other.context_length_cap, other.search_provider) == (4096, 'brave')

        assert (await admin.delete('/api/admin/settings/context_length_cap')).status_code == 200
        assert await sync.refresh() == ['context_length_cap']
        assert (other.context_length_cap, other.search_provider) == (16384, 'brave')  # the environment's again
    finally:
        await sync.stop()


async def test_a_reset_returns_to_the_environments_value(admin: httpx.AsyncClient, database: Database) -> None:
    assert (await admin.put('/api/admin/settings/context_length_cap', json={'value': 4096})).status_code == 200
    assert (await admin.put('/api/admin/settings/audit_log_responses', json={'value': False})).status_code == 200

    reset = await admin.delete('/api/admin/settings/context_length_cap')
    assert reset.status_code == 200, reset.text
    assert (reset.json()['value'], reset.json()['source']) == (16384, 'environment')
    listing = (await admin.get('/api/admin/settings')).json()
    assert editable(listing, 'context_length_cap')['value'] == 16384
    assert editable(listing, 'audit_log_responses')['value'] is False  # the other change stands

    async with database.session() as session:
        actions = [e.action for e in await session.exec(
            select(AdminAction).where(col(AdminAction.target) == 'context_length_cap').order_by(col(AdminAction.id)))]
    assert actions == ['setting.change', 'setting.reset']


@pytest.mark.parametrize(('name', 'value', 'status', 'message'), [
    ('context_length_cap', 100, 400, 'context_length_cap must be a whole number between 512 and 10000000.'),
    ('context_length_cap', 'lots', 400, 'context_length_cap must be a whole number'),
    ('telemetry_retention_days', 0, 400, 'telemetry_retention_days must be a whole number between 1'),
    ('audit_log_prompts', 'maybe', 400, 'audit_log_prompts must be true or false.'),
    ('secret_key', 'x', 400, 'secret_key cannot be changed at run time'),
    ('no_such_thing', 1, 404, "There is no setting named 'no_such_thing'."),
])
async def test_bad_values_are_refused_naming_the_setting(admin: httpx.AsyncClient, name: str, value: object,
                                                         status: int, message: str) -> None:
    response = await admin.put(f'/api/admin/settings/{name}', json={'value': value})
    assert response.status_code == status
    assert response.json()['error']['message'].startswith(message)
    listing = (await admin.get('/api/admin/settings')).json()
    assert editable(listing, 'context_length_cap')['value'] == 16384


async def test_settings_are_for_admins_only(client: httpx.AsyncClient, alice_key: str) -> None:
    headers = {'X-API-Key': alice_key}
    assert (await client.get('/api/admin/settings', headers=headers)).status_code == 403
    assert (await client.put('/api/admin/settings/audit_log_prompts', headers=headers,
                             json={'value': False})).status_code == 403
    assert (await client.delete('/api/admin/settings/audit_log_prompts', headers=headers)).status_code == 403


def test_passwords_in_urls_are_masked() -> None:
    assert mask_url('mysql+aiomysql://mr:s3cret@db:3306/mindrouter?charset=utf8mb4') == \
        'mysql+aiomysql://mr:***@db:3306/mindrouter?charset=utf8mb4'
    assert mask_url('redis://:hunter2@cache:6379/0') == 'redis://:***@cache:6379/0'
    assert mask_url('redis://cache:6379/0?password=hunter2') == 'redis://cache:6379/0?password=***'
    assert mask_url('sqlite+aiosqlite:///data/mindrouter.db') == 'sqlite+aiosqlite:///data/mindrouter.db'


async def test_retention_periods_are_changed_at_run_time_and_reach_the_sweeper(
        app: FastAPI, admin: httpx.AsyncClient, database: Database) -> None:
    """0 keeps forever; the leader's sweeper reads the live settings at its next sweep."""
    async with database.session() as session:
        session.add(RequestLog(request_id='old', endpoint='/api/chat', status='completed', prompt='p', response='r',
                               created_at=utcnow() - timedelta(days=40)))
        await session.commit()
    assert not await app.state.retention.sweep()  # the default: kept forever
    assert (await admin.put('/api/admin/settings/audit_content_retention_days', json={'value': 30})).status_code == 200
    refused = await admin.put('/api/admin/settings/audit_metadata_retention_days', json={'value': -1})
    assert refused.status_code == 400 and refused.json()['error']['param'] == 'audit_metadata_retention_days'
    assert (await app.state.retention.sweep()).contents_blanked == 1
    async with database.session() as session:
        row = (await session.exec(select(RequestLog))).one()
    assert (row.request_id, row.prompt, row.response) == ('old', None, None)
