"""Signing in with a password, guarded against guessing.

- Throttled per account and per client address (core.accounts.sign_in_throttle): a locked subject is refused
  at once, before any password check, with the same answer whether or not the account exists.
- Password checks run a bounded number at a time (`LOGIN_MAX_CONCURRENT_CHECKS`): each argon2 verify takes
  64 MiB, so a flood of attempts waits its turn instead of exhausting memory. The throttle is asked again
  once a turn comes, so attempts that queued up behind a lock do not all get their check.
- Every failed attempt, and every lock it starts, is written to the admin log (actions `sign_in.failed` and
  `sign_in.locked`, the typed username as the actor, the address in the target), never the password.
  Refused attempts are not written one by one: a guesser could otherwise fill the log for free.
- A successful sign-in clears the account's failures (not the address's: one's own account must not reset a
  guesser's count against others).

With Redis the counts are shared by every process; while Redis is unreachable each process counts alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from core.accounts.service import authenticate_password
from core.accounts.sign_in_throttle import (
    Failure,
    FailureCounter,
    LocalFailureCounter,
    RedisFailureCounter,
    Rule,
    ThrottlePolicy,
    account_subject,
    address_subject,
)
from core.audit import admin_log
from core.config import Settings, get_settings
from core.errors import LimitExceeded
from core.models import User

log = logging.getLogger('mindrouter.accounts')

T = TypeVar('T')

_ACTOR_LENGTH = 64  # admin_actions.actor


class SignInGuard:
    def __init__(self, counter: FailureCounter, *, account: ThrottlePolicy, address: ThrottlePolicy,
                 max_concurrent_checks: int) -> None:
        self._counter = counter
        self._fallback = LocalFailureCounter()  # while Redis is unreachable
        self._counter_down = False
        self._account = account
        self._address = address
        self._checks = asyncio.Semaphore(max_concurrent_checks)

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInGuard:
        counter: FailureCounter = LocalFailureCounter()
        if settings.redis_url:
            counter = RedisFailureCounter.from_url(settings.redis_url, prefix=settings.redis_prefix)
        common = {'window': settings.login_failure_window, 'lockout': settings.login_lockout_seconds,
                  'lockout_max': settings.login_lockout_max_seconds}
        return cls(counter, account=ThrottlePolicy(max_failures=settings.login_max_failures, **common),
                   address=ThrottlePolicy(max_failures=settings.login_max_failures_per_address, **common),
                   max_concurrent_checks=settings.login_max_concurrent_checks)

    async def authenticate(self, session: AsyncSession, *, username: str, password: str, address: str) -> User | None:
        """The active user with this password, else None (a failure, counted and logged). Raises LimitExceeded
        while the account or the address is locked."""
        rules: list[Rule] = [(account_subject(username), self._account), (address_subject(address), self._address)]
        await self._refuse_while_locked(rules)
        async with self._checks:
            await self._refuse_while_locked(rules)  # others may have failed while this attempt waited
            user = await authenticate_password(session, username=username, password=password)
        if user is not None:
            await self._call(lambda counter: counter.clear(rules[0][0]))
            return user
        account, by_address = await self._call(lambda counter: counter.fail(rules))
        await self._record(session, username=username, address=address, account=account, by_address=by_address)
        return None

    async def close(self) -> None:
        await self._counter.close()

    async def _refuse_while_locked(self, rules: list[Rule]) -> None:
        wait = await self._call(lambda counter: counter.locked_for(rules))
        if wait > 0:
            raise LimitExceeded(f'Too many failed sign-ins; try again in {math.ceil(wait)} s.',
                                code='too_many_sign_ins', retry_after=wait)

    async def _call(self, call: Callable[[FailureCounter], Awaitable[T]]) -> T:
        """`call` on the shared counter; on this process's own while Redis is unreachable."""
        try:
            result = await call(self._counter)
        except OSError as exc:
            if not self._counter_down:
                log.warning('sign-in: Redis unreachable (%s); counting failed sign-ins in this process', exc)
                self._counter_down = True
            return await call(self._fallback)
        if self._counter_down:
            log.info('sign-in: Redis reachable again; failed sign-ins are counted fleet-wide')
            self._counter_down = False
        return result

    async def _record(self, session: AsyncSession, *, username: str, address: str, account: Failure,
                      by_address: Failure) -> None:
        actor = username[:_ACTOR_LENGTH]
        await admin_log.record(session, actor_id=None, actor=actor, action='sign_in.failed',
                               target=f'from {address}', commit=False,
                               after={'address': address, 'account_failures': account.failures,
                                      'address_failures': by_address.failures})
        for kind, failure, target in (('account', account, f'account {actor}'),
                                      ('address', by_address, f'address {address}')):
            if failure.lock > 0:
                log.warning('sign-in: %s locked for %d s after %d failed sign-ins', target,
                            math.ceil(failure.lock), failure.failures)
                await admin_log.record(session, actor_id=None, actor=actor, action='sign_in.locked', target=target,
                                       commit=False, after={'locked': kind, 'address': address,
                                                            'failures': failure.failures,
                                                            'seconds': math.ceil(failure.lock)})
        await session.commit()


_guard: SignInGuard | None = None


def get_sign_in_guard() -> SignInGuard:
    """The process's guard, built from the settings at first use (the login page runs in every UI process)."""
    global _guard
    if _guard is None:
        _guard = SignInGuard.from_settings(get_settings())
    return _guard


async def close_sign_in_guard() -> None:
    """Forget the process's guard (shutdown; tests change the settings between cases)."""
    global _guard
    if _guard is not None:
        guard, _guard = _guard, None
        await guard.close()
