"""Token budgets hold for the whole fleet: each worker adds its requests' tokens in Redis, seeded once from
the audit trail (SQLite and MariaDB)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from core import accounts
from core.api_keys import Principal
from core.db import Database
from core.errors import LimitExceeded
from core.models import RequestLog
from core.quotas import QuotaGuard
from core.registry.view import RegistryView
from core.scheduler.ledger import LocalLedger
from core.scheduler.resp import RespClient
from core.token_meter import RedisTokenMeter


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f'mrtest-{secrets.token_hex(6)}'
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f'{{{name}:usage}}*')]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_two_workers_spend_one_budget_seeded_from_the_audit_trail(
        database: Database, redis_url: str, prefix: str) -> None:
    async with database.session() as session:
        user = await accounts.create_user(session, username='spender', role='student')
        assert user.id is not None
        session.add(RequestLog(request_id='earlier', user_id=user.id, endpoint='/v1/chat/completions', model='m',
                               status='completed', prompt_tokens=20, completion_tokens=10))
        await session.commit()
    spender = Principal(key_id=1, key_status='active', key_expires_at=None, user_id=user.id, username='spender',
                        user_active=True, role='student', is_admin=False, scheduler_weight=1, token_budget=100)
    meters = [RedisTokenMeter(RespClient.from_url(redis_url), prefix=prefix, fresh=0) for _ in range(2)]
    first, second = (QuotaGuard(database, LocalLedger(RegistryView()), meter=meter) for meter in meters)
    try:
        assert await first.used_tokens(user.id) == 30  # what the audit trail says of this month so far
        first.record(user.id, 40)
        await meters[0].flush()
        assert await second.used_tokens(user.id) == 70  # the other worker sees it at once
        await second.admit(spender)
        second.record(user.id, 40)
        await meters[1].flush()
        with pytest.raises(LimitExceeded, match='110 of 100 tokens'):
            await first.admit(spender)  # the budget is the fleet's, not each worker's
    finally:
        await first.close()
        await second.close()


async def test_with_redis_unreachable_the_budget_is_read_from_the_audit_trail(database: Database) -> None:
    async with database.session() as session:
        user = await accounts.create_user(session, username='offline', role='student')
        assert user.id is not None
        session.add(RequestLog(request_id='before', user_id=user.id, endpoint='/v1/chat/completions', model='m',
                               status='completed', prompt_tokens=5, completion_tokens=7))
        await session.commit()
    guard = QuotaGuard(database, LocalLedger(RegistryView()),
                       meter=RedisTokenMeter(RespClient.from_url('redis://127.0.0.1:1/0'), prefix='nowhere'))
    try:
        assert await guard.used_tokens(user.id) == 12
        guard.record(user.id, 8)
        assert await guard.used_tokens(user.id) == 20
    finally:
        await guard.close()
