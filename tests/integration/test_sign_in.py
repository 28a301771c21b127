"""Signing in with a password under the guessing guard, on SQLite and MariaDB: locks, the admin log, and the
bound on password checks running at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.accounts import security
from core.accounts import service as accounts
from core.accounts.sign_in import SignInGuard
from core.accounts.sign_in_throttle import FailureCounter, LocalFailureCounter, RedisFailureCounter, ThrottlePolicy
from core.audit import admin_log
from core.db import Database
from core.errors import LimitExceeded
from core.scheduler.resp import RespClient

ACCOUNT = ThrottlePolicy(max_failures=3, window=600.0, lockout=30.0, lockout_max=900.0)
ADDRESS = ThrottlePolicy(max_failures=5, window=600.0, lockout=30.0, lockout_max=900.0)
HOME, ELSEWHERE = '198.51.100.7', '203.0.113.9'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def people(database: Database) -> Database:
    async with database.session() as session:
        for name in ('alice', 'bob', 'carol', 'dave'):
            await accounts.create_user(session, username=name, role='student', password=f'{name}-password')
    return database


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords argon2 was asked to check, in order."""
    seen: list[str] = []
    real = security.verify_password

    def counted(password: str, password_hash: str | None) -> bool:
        seen.append(password)
        return real(password, password_hash)

    monkeypatch.setattr(security, 'verify_password', counted)
    return seen


def guard(counter: FailureCounter | None = None, *, clock: Clock | None = None, checks: int = 4) -> SignInGuard:
    return SignInGuard(counter or LocalFailureCounter(clock or Clock()), account=ACCOUNT, address=ADDRESS,
                       max_concurrent_checks=checks)


async def attempt(database: Database, gate: SignInGuard, username: str, password: str,
                  address: str = HOME) -> str | None:
    """The signed-in username, or None."""
    async with database.session() as session:
        user = await gate.authenticate(session, username=username, password=password, address=address)
    return user.username if user else None


async def test_after_max_failures_the_next_attempt_is_refused_without_a_password_check(
        people: Database, checks: list[str]) -> None:
    clock = Clock()
    gate = guard(clock=clock)
    for n in range(3):
        assert await attempt(people, gate, 'alice', f'guess-{n}') is None
    with pytest.raises(LimitExceeded, match=r'^Too many failed sign-ins; try again in 30 s\.$') as refused:
        await attempt(people, gate, 'alice', 'alice-password')  # even the right one
    assert refused.value.retry_after == pytest.approx(30)
    assert checks == ['guess-0', 'guess-1', 'guess-2']
    clock.now += 31
    assert await attempt(people, gate, 'alice', 'alice-password') == 'alice'


async def test_an_unknown_account_is_refused_in_the_same_words(people: Database) -> None:
    gate = guard()
    answers = []
    for name in ('alice', 'nobody'):
        for _ in range(3):
            await attempt(people, gate, name, 'wrong', address=f'192.0.2.{len(answers) + 1}')
        with pytest.raises(LimitExceeded) as refused:
            await attempt(people, gate, name, 'wrong', address='192.0.2.99')
        answers.append(refused.value.message)
    assert answers[0] == answers[1]


async def test_guessing_many_accounts_from_one_address_locks_the_address(people: Database,
                                                                         checks: list[str]) -> None:
    gate = guard()
    for name in ('alice', 'bob', 'carol', 'dave', 'alice'):  # no account reaches its own limit
        assert await attempt(people, gate, name, 'Winter2024!') is None
    with pytest.raises(LimitExceeded):
        await attempt(people, gate, 'bob', 'bob-password')
    assert len(checks) == 5
    assert await attempt(people, gate, 'bob', 'bob-password', address=ELSEWHERE) == 'bob'


async def test_a_successful_sign_in_clears_the_accounts_failures(people: Database) -> None:
    gate = guard()
    for _ in range(2):
        await attempt(people, gate, 'alice', 'wrong')
    assert await attempt(people, gate, 'alice', 'alice-password') == 'alice'
    for _ in range(2):  # two more do not lock: the count started again
        await attempt(people, gate, 'alice', 'wrong', address=ELSEWHERE)
    assert await attempt(people, gate, 'alice', 'alice-password', address=ELSEWHERE) == 'alice'


async def test_failures_and_locks_are_in_the_admin_log_without_the_password(people: Database) -> None:
    gate = guard()
    for _ in range(3):
        await attempt(people, gate, 'alice', 'hunter2-secret')
    async with people.session() as session:
        failed, total_failed = await admin_log.search(session, action='sign_in.failed')
        locked, _ = await admin_log.search(session, action='sign_in.locked')
        by_alice, _ = await admin_log.search(session, actor='alice')
    assert total_failed == 3
    assert {(entry.actor, entry.target) for entry in failed} == {('alice', f'from {HOME}')}
    assert [(entry.target, entry.after) for entry in locked] == [
        ('account alice', {'locked': 'account', 'address': HOME, 'failures': 3, 'seconds': 30})]
    assert len(by_alice) == 4
    assert all('hunter2' not in repr((e.target, e.before, e.after)) for e in by_alice)


async def test_password_checks_run_a_bounded_number_at_a_time(people: Database,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    running, most = 0, 0
    lock = threading.Lock()
    real = security.verify_password

    def slow(password: str, password_hash: str | None) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return real(password, password_hash)

    monkeypatch.setattr(security, 'verify_password', slow)
    gate = guard(checks=2)
    await asyncio.gather(*(attempt(people, gate, 'bob', 'bob-password', address=f'192.0.2.{n}') for n in range(6)))
    assert most == 2


async def test_queued_attempts_are_refused_once_a_lock_starts(people: Database, checks: list[str]) -> None:
    """Twenty guesses sent at once: the ones that waited for a check find the account locked."""
    gate = guard(checks=1)
    outcomes = await asyncio.gather(*(attempt(people, gate, 'carol', f'guess-{n}', address=f'192.0.2.{n}')
                                      for n in range(20)), return_exceptions=True)
    assert len(checks) == 3
    assert sum(isinstance(outcome, LimitExceeded) for outcome in outcomes) == 17


async def test_with_redis_unreachable_each_process_counts_on_its_own(people: Database,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    gate = guard(RedisFailureCounter(RespClient.from_url('redis://127.0.0.1:1/0'), prefix='nowhere'))
    try:
        for _ in range(3):
            await attempt(people, gate, 'dave', 'wrong')
        with pytest.raises(LimitExceeded):
            await attempt(people, gate, 'dave', 'dave-password')
    finally:
        await gate.close()
    assert sum('Redis unreachable' in r.message for r in caplog.records) == 1  # one warning per outage
