"""Requests-per-minute windows shared by every worker through Redis, and the local ones."""

from __future__ import annotations

import pytest

from core.accounts.api_keys import Principal
from core.db import Database
from core.errors import LimitExceeded
from core.quotas.guard import QuotaGuard
from core.quotas.rate_windows import LocalRateWindows, RedisRateWindows
from core.registry.view import RegistryView
from core.scheduler.ledger import LocalLedger
from core.scheduler.resp import RespClient


async def test_two_workers_share_one_users_minute(redis_url: str, redis_prefix: str) -> None:
    first, second = (RedisRateWindows(RespClient.from_url(redis_url), prefix=redis_prefix) for _ in range(2))
    try:
        user = [(('user', 7), 3)]
        assert await first.hit(user) is None
        assert await second.hit(user) is None
        assert await first.hit(user) is None
        full = await second.hit(user)  # the fourth in a minute, whichever worker gets it
        assert full is not None and full[0] == 0 and 59 < full[1] <= 60
        assert await first.hit([(('user', 8), 3)]) is None  # another user has its own window
    finally:
        await first.close()
        await second.close()


async def test_a_request_counts_in_all_its_windows_or_in_none(redis_url: str, redis_prefix: str) -> None:
    windows = RedisRateWindows(RespClient.from_url(redis_url), prefix=redis_prefix)
    try:
        assert await windows.hit([(('key', 1), 1)]) is None
        full = await windows.hit([(('user', 1), 5), (('key', 1), 1)])  # the key's window is full
        assert full is not None and full[0] == 1
        for _ in range(5):  # so the refused request did not use up one of the user's five
            assert await windows.hit([(('user', 1), 5)]) is None
        assert await windows.hit([(('user', 1), 5)]) is not None
    finally:
        await windows.close()


async def test_local_windows_slide() -> None:
    now = 1000.0
    windows = LocalRateWindows(clock=lambda: now)
    assert await windows.hit([(('user', 1), 2)]) is None
    now += 30
    assert await windows.hit([(('user', 1), 2)]) is None
    full = await windows.hit([(('user', 1), 2)])
    assert full == (0, 30.0)  # the first request leaves the window in 30 s
    now += 30.5
    assert await windows.hit([(('user', 1), 2)]) is None
    now += 120
    windows.forget()
    assert not windows._times


async def test_with_redis_unreachable_each_worker_counts_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    database = Database('sqlite+aiosqlite:///:memory:')  # never queried: no token budget here
    guard = QuotaGuard(database, LocalLedger(RegistryView()),
                       windows=RedisRateWindows(RespClient.from_url('redis://127.0.0.1:1/0'), prefix='nowhere'))
    alice = Principal(key_id=1, key_status='active', key_expires_at=None, user_id=1, username='alice',
                      user_active=True, role='student', is_admin=False, scheduler_weight=1, rpm_limit=2)
    try:
        await guard.admit(alice)
        await guard.admit(alice)
        with pytest.raises(LimitExceeded, match='2 requests per minute'):
            await guard.admit(alice)
        assert sum('Redis unreachable' in r.message for r in caplog.records) == 1  # one warning per outage
    finally:
        await guard.close()
        await database.dispose()
