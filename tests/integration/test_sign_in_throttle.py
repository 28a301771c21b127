"""Failed sign-ins counted per account and per address: in this process, and in Redis for every worker.

The same behaviour is asked of both counters, on a clock the test moves (Redis gets the time from the caller).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from core.accounts.sign_in_throttle import (
    FailureCounter,
    LocalFailureCounter,
    RedisFailureCounter,
    Rule,
    ThrottlePolicy,
    account_subject,
    address_subject,
)
from core.scheduler.resp import RespClient

POLICY = ThrottlePolicy(max_failures=3, window=600.0, lockout=30.0, lockout_max=100.0)
ALICE: Rule = (account_subject('alice'), POLICY)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=['local', 'redis'])
async def counter(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[FailureCounter]:
    if request.param == 'local':
        yield LocalFailureCounter(clock)
        return
    redis_url = request.getfixturevalue('redis_url')  # skips when there is no Redis (fails under CI)
    prefix = f'mrtest-{uuid.uuid4().hex[:12]}'
    shared = RedisFailureCounter(RespClient.from_url(redis_url), prefix=prefix, clock=clock)
    yield shared
    await shared.close()
    client = aioredis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f'*{prefix}*')]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_a_subject_is_locked_after_max_failures_and_each_later_failure_doubles_the_lock(
        counter: FailureCounter, clock: Clock) -> None:
    for expected in (1, 2):
        [failure] = await counter.fail([ALICE])
        assert (failure.failures, failure.lock) == (expected, 0)
        assert await counter.locked_for([ALICE]) == 0
    [third] = await counter.fail([ALICE])
    assert (third.failures, third.lock) == (3, 30)
    assert await counter.locked_for([ALICE]) == pytest.approx(30)
    clock.now += 20
    assert await counter.locked_for([ALICE]) == pytest.approx(10)
    clock.now += 10.5
    assert await counter.locked_for([ALICE]) == 0
    assert [f.lock for f in await counter.fail([ALICE])] == [60]  # the 4th: twice as long
    clock.now += 61
    assert [f.lock for f in await counter.fail([ALICE])] == [100]  # 120, capped at lockout_max


async def test_failures_are_forgotten_a_window_after_the_last_one(counter: FailureCounter, clock: Clock) -> None:
    await counter.fail([ALICE])
    await counter.fail([ALICE])
    clock.now += 601
    assert [f.failures for f in await counter.fail([ALICE])] == [1]


async def test_clearing_an_account_leaves_the_address_counted(counter: FailureCounter) -> None:
    address: Rule = (address_subject('203.0.113.9'), POLICY)
    for _ in range(2):
        await counter.fail([ALICE, address])
    await counter.clear(ALICE[0])
    after = await counter.fail([ALICE, address])
    assert [f.failures for f in after] == [1, 3]
    assert await counter.locked_for([ALICE, address]) == pytest.approx(30)  # the address alone locks the attempt


async def test_the_account_is_the_name_whatever_its_case_and_spaces(counter: FailureCounter) -> None:
    for typed in ('alice', 'ALICE', ' Alice '):
        await counter.fail([(account_subject(typed), POLICY)])
    assert await counter.locked_for([ALICE]) == pytest.approx(30)
    assert await counter.locked_for([(account_subject('bob'), POLICY)]) == 0


async def test_two_workers_share_one_accounts_failures(redis_url: str, redis_prefix: str, clock: Clock) -> None:
    first, second = (RedisFailureCounter(RespClient.from_url(redis_url), prefix=redis_prefix, clock=clock)
                     for _ in range(2))
    try:
        await first.fail([ALICE])
        await second.fail([ALICE])
        await first.fail([ALICE])
        assert await second.locked_for([ALICE]) == pytest.approx(30)
    finally:
        await first.close()
        await second.close()
