"""Token budgets hold for the whole fleet: each worker adds its requests' tokens in Redis, seeded once from
the audit trail (SQLite and MariaDB)."""

from __future__ import annotations

import pytest

from core.accounts import service as accounts
from core.accounts.api_keys import Principal
from core.db import Database
from core.errors import LimitExceeded
from core.models import RequestLog
from core.quotas.guard import QuotaGuard
from core.quotas.token_meter import RedisTokenMeter
from core.registry.view import RegistryView
from core.scheduler.ledger import LocalLedger
from core.scheduler.resp import RespClient


async def user_with_history(database: Database, username: str, tokens: tuple[int, int]) -> int:
    """A user, and one earlier request of this month in the audit trail (prompt, completion tokens)."""
    async with database.session() as session:
        user = await accounts.create_user(session, username=username, role='student')
        assert user.id is not None
        session.add(RequestLog(request_id=f'{username}-earlier', user_id=user.id, endpoint='/v1/chat/completions',
                               model='m', status='completed', prompt_tokens=tokens[0], completion_tokens=tokens[1]))
        await session.commit()
        return user.id


async def test_two_workers_spend_one_budget_seeded_from_the_audit_trail(
        database: Database, redis_url: str, redis_prefix: str) -> None:
    user_id = await user_with_history(database, 'spender', (20, 10))
    spender = Principal(key_id=1, key_status='active', key_expires_at=None, user_id=user_id, username='spender',
                        user_active=True, role='student', is_admin=False, scheduler_weight=1, token_budget=100)
    meters = [RedisTokenMeter(RespClient.from_url(redis_url), prefix=redis_prefix, fresh=0) for _ in range(2)]
    first, second = (QuotaGuard(database, LocalLedger(RegistryView()), meter=meter) for meter in meters)
    try:
        assert await first.used_tokens(user_id) == 30  # what the audit trail says of this month so far
        first.record(user_id, 40)
        await meters[0].flush()
        assert await second.used_tokens(user_id) == 70  # the other worker sees it at once
        await second.admit(spender)
        second.record(user_id, 40)
        await meters[1].flush()
        with pytest.raises(LimitExceeded, match='110 of 100 tokens'):
            await first.admit(spender)  # the budget is the fleet's, not each worker's
    finally:
        await first.close()
        await second.close()


async def test_with_redis_unreachable_the_budget_is_read_from_the_audit_trail(database: Database) -> None:
    user_id = await user_with_history(database, 'offline', (5, 7))
    guard = QuotaGuard(database, LocalLedger(RegistryView()),
                       meter=RedisTokenMeter(RespClient.from_url('redis://127.0.0.1:1/0'), prefix='nowhere'))
    try:
        assert await guard.used_tokens(user_id) == 12
        guard.record(user_id, 8)
        assert await guard.used_tokens(user_id) == 20
    finally:
        await guard.close()
