"""A user's own limits: requests per minute (per user and per key), running requests and the token budget.
Past one: 429 in the caller's dialect with Retry-After, before the request queues or streams a byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import select

from core.accounts import service as accounts
from core.db import Database
from core.models import ApiKey, QuotaOverride, User
from core.quotas.guard import period_bounds
from sim.config import SimConfig
from sim.server import SimServer

CHAT = {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hello'}], 'max_tokens': 5}


@pytest.fixture
async def engine(admin: httpx.AsyncClient) -> AsyncIterator[SimServer]:
    async with SimServer('ollama', SimConfig(tokens=5)) as sim:
        registered = await admin.post('/api/admin/backends/register', json={
            'name': 'sim', 'url': sim.url, 'engine': 'ollama', 'max_concurrent': 8})
        assert registered.status_code == 201, registered.text
        yield sim


async def user_with(database: Database, name: str, *, key_rpm: int | None = None, **limits: int) -> str:
    async with database.session() as session:
        await accounts.create_user(session, username=name, role='student')
        _, key = await accounts.create_api_key(session, username=name)
        user = (await session.exec(select(User).where(User.username == name))).one()
        assert user.id is not None
        session.add(QuotaOverride(user_id=user.id, **limits))
        if key_rpm is not None:
            row = (await session.exec(select(ApiKey).where(ApiKey.user_id == user.id))).one()
            row.rpm_limit = key_rpm
            session.add(row)
        await session.commit()
    return key


async def test_requests_per_minute_then_429_with_retry_after_in_every_dialect(
        client: httpx.AsyncClient, engine: SimServer, database: Database) -> None:
    key = await user_with(database, 'quick', rpm_limit=3)
    headers = {'X-API-Key': key}
    for _ in range(3):
        assert (await client.post('/v1/chat/completions', headers=headers, json=CHAT)).status_code == 200

    refused = await client.post('/v1/chat/completions', headers=headers, json=CHAT)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers['retry-after']) <= 60
    error = refused.json()['error']
    assert error['type'] == 'rate_limit_error' and error['code'] == 'rate_limit_exceeded'
    assert '3 requests per minute' in error['message']
    anthropic = await client.post('/anthropic/v1/messages', headers=headers, json={**CHAT, 'max_tokens': 5})
    assert anthropic.status_code == 429 and anthropic.json()['error']['type'] == 'rate_limit_error'
    ollama = await client.post('/api/chat', headers=headers, json={**CHAT, 'stream': True})
    assert ollama.status_code == 429 and 'requests per minute' in ollama.json()['error']


async def test_a_key_with_its_own_limit_is_held_to_it(client: httpx.AsyncClient, engine: SimServer,
                                                      database: Database) -> None:
    key = await user_with(database, 'keyed', key_rpm=2, rpm_limit=100)
    for _ in range(2):
        assert (await client.post('/v1/chat/completions', headers={'X-API-Key': key}, json=CHAT)).status_code == 200
    refused = await client.post('/v1/chat/completions', headers={'X-API-Key': key}, json=CHAT)
    assert refused.status_code == 429 and 'this API key' in refused.json()['error']['message']


async def test_one_running_request_at_a_time_means_the_second_is_refused_not_queued(
        client: httpx.AsyncClient, engine: SimServer, database: Database) -> None:
    engine.config.token_delay_ms = 50
    key = await user_with(database, 'single', max_concurrent=1, rpm_limit=0)
    first = asyncio.create_task(client.post('/v1/chat/completions', headers={'X-API-Key': key}, json=CHAT))
    await asyncio.sleep(0.1)
    second = await client.post('/v1/chat/completions', headers={'X-API-Key': key}, json={**CHAT, 'stream': True})
    assert second.status_code == 429 and second.json()['error']['code'] == 'too_many_concurrent_requests'
    assert second.headers['retry-after'] == '1'
    assert (await first).status_code == 200
    again = await client.post('/v1/chat/completions', headers={'X-API-Key': key}, json=CHAT)
    assert again.status_code == 200


async def test_a_spent_token_budget_stops_requests_until_the_period_ends(
        client: httpx.AsyncClient, engine: SimServer, database: Database) -> None:
    key = await user_with(database, 'thrifty', token_budget=20, rpm_limit=0)
    headers = {'X-API-Key': key}
    spent = 0
    while spent < 20:
        answer = await client.post('/v1/chat/completions', headers=headers, json=CHAT)
        assert answer.status_code == 200
        spent += answer.json()['usage']['total_tokens']

    refused = await client.post('/v1/chat/completions', headers=headers, json={**CHAT, 'stream': True})
    assert refused.status_code == 429  # not a 200 stream that fails later
    assert refused.json()['error']['code'] == 'token_budget_exhausted'
    _, end = period_bounds('month', datetime.now(UTC))
    assert abs(int(refused.headers['retry-after']) - (end - datetime.now(UTC)).total_seconds()) < 5


def test_quota_periods_are_utc_days_weeks_from_monday_and_calendar_months() -> None:
    now = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # a Thursday
    assert period_bounds('day', now) == (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert period_bounds('week', now) == (datetime(2026, 12, 28, tzinfo=UTC), datetime(2027, 1, 4, tzinfo=UTC))
    assert period_bounds('month', now) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


async def test_limits_an_admin_raises_hold_from_the_users_next_request(
        admin: httpx.AsyncClient, engine: SimServer, database: Database) -> None:
    """The key check is cached for API_KEY_CACHE_TTL with its owner's limits; a change made here must not wait for
    it (as with a revoked key): the user who was just refused is served on the next try."""
    key = await user_with(database, 'raised', rpm_limit=1)
    user = {'X-API-Key': key}
    assert (await admin.post('/v1/chat/completions', headers=user, json=CHAT)).status_code == 200
    assert (await admin.post('/v1/chat/completions', headers=user, json=CHAT)).status_code == 429

    raised = await admin.put('/api/admin/users/raised/quota', json={'rpm_limit': 100})
    assert raised.status_code == 200, raised.text
    assert (await admin.post('/v1/chat/completions', headers=user, json=CHAT)).status_code == 200
