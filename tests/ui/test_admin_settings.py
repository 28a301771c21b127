"""Run-time settings, as an admin changes them in the console: in force for the very next request, said where
they come from, written to the admin log, refused inline when wrong, and secrets never shown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from nicegui.testing import User
from sqlmodel import col, select

from core.config import reset_settings
from core.db import Database
from core.models import AdminAction, RequestLog
from sim.config import SimConfig
from sim.server import SimServer
from tests.ui.conftest import ADMIN, log_in

SECRET = 'a-very-private-signing-secret-0123456789'


@pytest.fixture
async def engine() -> AsyncIterator[SimServer]:
    async with SimServer('ollama', SimConfig(tokens=5)) as sim:
        yield sim


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv('SECRET_KEY', SECRET)
    monkeypatch.setenv('TELEMETRY_RETENTION_DAYS', '14')
    reset_settings()
    return SECRET


async def sign_in_as_admin(user: User) -> None:
    await log_in(user, *ADMIN)
    await user.should_see(marker='nav-admin', retries=50)  # the password check takes a moment


async def audit_row(live: FastAPI, database: Database, request_id: str) -> RequestLog:
    """The request's audit row, once the background writer has stored it."""
    for _ in range(50):
        await live.state.audit.flush()
        async with database.session() as session:
            row = (await session.exec(select(RequestLog).where(RequestLog.request_id == request_id))).first()
        if row is not None:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f'no audit row for {request_id}')


async def test_an_admin_stops_keeping_prompts_and_the_next_request_keeps_none(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    registered = await admin_api.post('/api/admin/backends/register', json={
        'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama', 'max_concurrent': 2})
    assert registered.status_code == 201, registered.text

    await sign_in_as_admin(user)
    await user.open('/admin/settings')
    await user.should_see(marker='source-audit_log_prompts', content='Default value', retries=30)
    await user.should_see(marker='value-audit_log_prompts', content='now: on')

    user.find(marker='input-audit_log_prompts').click()  # the switch: off
    user.find(marker='save-audit_log_prompts').click()
    await user.should_see(marker='source-audit_log_prompts', content='Changed in the console', retries=30)
    await user.should_see(marker='source-audit_log_prompts', content=f'by {ADMIN[0]}')
    await user.should_see(marker='value-audit_log_prompts', content='now: off')

    answer = await admin_api.post('/v1/chat/completions', json={
        'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'my private plans'}]})
    assert answer.status_code == 200, answer.text
    row = await audit_row(live, people, answer.headers['x-request-id'])
    assert row.prompt is None
    assert row.response  # responses are still kept

    async with people.session() as session:
        entries = list(await session.exec(select(AdminAction).where(col(AdminAction.action) == 'setting.change')))
    assert [(e.actor, e.target, e.before, e.after, e.via) for e in entries] == \
        [(ADMIN[0], 'audit_log_prompts', {'audit_log_prompts': True}, {'audit_log_prompts': False}, 'console')]

    # reset: the environment's value (here the default) is back, for the next request too
    user.find(marker='reset-audit_log_prompts').click()
    await user.should_see(marker='source-audit_log_prompts', content='Default value', retries=30)
    again = await admin_api.post('/v1/chat/completions', json={
        'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'my public plans'}]})
    kept = (await audit_row(live, people, again.headers['x-request-id'])).prompt
    assert kept is not None and 'my public plans' in kept


async def test_a_context_cap_below_the_minimum_is_refused_inline(people: Database, live: FastAPI,
                                                                 user: User) -> None:
    await sign_in_as_admin(user)
    await user.open('/admin/settings')
    await user.should_see(marker='value-context_length_cap', content='now: 32,768', retries=30)

    user.find(marker='input-context_length_cap').clear().type('100')
    user.find(marker='save-context_length_cap').click()
    await user.should_see(marker='error-context_length_cap',
                          content='context_length_cap must be a whole number between 512 and 10000000.')
    await user.should_see(marker='value-context_length_cap', content='now: 32,768')

    user.find(marker='input-context_length_cap').clear().type('8192')
    user.find(marker='save-context_length_cap').click()
    await user.should_see(marker='value-context_length_cap', content='now: 8,192', retries=30)
    await user.should_not_see(marker='error-context_length_cap', content='must be')
    assert live.state.settings.context_length_cap == 8192  # what the gateway reads per request


async def test_the_environment_is_named_as_the_source_and_secrets_are_never_shown(
        secret_env: str, people: Database, user: User) -> None:
    await sign_in_as_admin(user)
    await user.open('/admin/settings')
    await user.should_see(marker='source-telemetry_retention_days', content='Set in the environment', retries=30)
    await user.should_see(marker='value-telemetry_retention_days', content='now: 14')
    table = user.find(marker='read-only-settings').elements.pop()
    shown = {row['name']: row['value'] for row in table.props['rows']}
    assert shown['secret_key'] == '(hidden)'
    assert 'queue_timeout' in shown and 'context_length_cap' not in shown  # editable ones are above
    assert secret_env not in str(table.props['rows'])
