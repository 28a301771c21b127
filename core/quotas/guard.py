"""Each user's own limits, checked before a request queues and before any byte of an answer is sent:

- running requests at once (`max_concurrent`), counted by the admission ledger (fleet-wide with Redis);
- requests per minute, per user and per API key (a sliding 60-second window; in Redis with REDIS_URL, so
  the limit holds across workers; see core.quotas.rate_windows);
- tokens per quota period (`QUOTA_PERIOD`: day, week or month, UTC): counted in Redis with REDIS_URL
  (core.quotas.token_meter, seeded from the audit trail), else from the audit trail in each process.

Each limit is the user's override when an admin set one, else its role's; 0 means unlimited. A request
past a limit gets 429 with Retry-After: when the oldest request leaves the minute's window, when the
period ends, or in a second for the running-requests limit.

Without Redis, the period's usage is read from the audit trail once per user, then kept in memory: each
finished request adds its tokens, and the sum is re-read every `refresh` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlmodel import col

from core.accounts.api_keys import Principal
from core.db import Database
from core.errors import LimitExceeded
from core.models import RequestLog
from core.quotas.rate_windows import LocalRateWindows, RateWindows, Subject
from core.quotas.token_meter import RedisTokenMeter
from core.scheduler.ledger import AdmissionLedger
from core.scheduler.resp import RespError

Period = Literal['day', 'week', 'month']
log = logging.getLogger('mindrouter.quotas')


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """The UTC quota period containing `now`: [start, end)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == 'day':
        return day, day + timedelta(days=1)
    if period == 'week':
        start = day - timedelta(days=day.weekday())  # Monday
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


@dataclass(slots=True)
class _Usage:
    period_start: datetime
    tokens: int
    loaded_at: float  # monotonic


class QuotaGuard:
    def __init__(self, database: Database, ledger: AdmissionLedger, *, period: Period = 'month',
                 windows: RateWindows | None = None, meter: RedisTokenMeter | None = None, refresh: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] | None = None) -> None:
        self._database = database
        self._ledger = ledger
        self._windows = windows or LocalRateWindows(clock)
        self._fallback = LocalRateWindows(clock)  # while Redis is unreachable
        self._windows_down = False
        self._meter = meter  # with Redis: the period's tokens counted fleet-wide
        self._meter_down = False
        self.period: Period = period
        self._refresh = refresh
        self._clock = clock
        self._now = wall_clock or (lambda: datetime.now(UTC))
        self._usage: dict[int, _Usage] = {}
        self._refreshing: dict[int, asyncio.Task[None]] = {}

    async def admit(self, principal: Principal) -> None:
        """Raise LimitExceeded (429) when a limit stops the request; else count it in the minute windows.
        The token budget is checked first: a request refused for it does not use up a minute's allowance."""
        if principal.max_concurrent and self._ledger.user_in_flight(principal.user_id) >= principal.max_concurrent:
            raise LimitExceeded(f'{principal.username} already has {principal.max_concurrent} requests running, '
                                'the most allowed at once; send the next one when one finishes',
                                code='too_many_concurrent_requests', retry_after=1)
        if principal.token_budget:
            used = await self.used_tokens(principal.user_id)
            if used >= principal.token_budget:
                _, end = period_bounds(self.period, self.now())
                raise LimitExceeded(f'{principal.username} used {used:,} of {principal.token_budget:,} tokens this '
                                    f'{self.period}; the budget renews at {end:%Y-%m-%d %H:%M} UTC, or ask an admin '
                                    'for more', code='token_budget_exhausted',
                                    retry_after=(end - self.now()).total_seconds())
        windows: list[tuple[Subject, int]] = []
        names: list[str] = []
        if principal.rpm_limit:
            windows.append((('user', principal.user_id), principal.rpm_limit))
            names.append(principal.username)
        if principal.key_rpm_limit:
            windows.append((('key', principal.key_id), principal.key_rpm_limit))
            names.append('this API key')
        if windows:
            full = await self._hit(windows)
            if full is not None:
                position, wait = full
                raise LimitExceeded(f'{names[position]} reached {windows[position][1]} requests per minute; '
                                    f'try again in {max(1, round(wait))} s', code='rate_limit_exceeded',
                                    retry_after=wait)

    async def _hit(self, windows: list[tuple[Subject, int]]) -> tuple[int, float] | None:
        """Count the request in its windows; in this process's own while Redis is unreachable."""
        try:
            full = await self._windows.hit(windows)
        except OSError as exc:
            if not self._windows_down:
                log.warning('quotas: Redis unreachable (%s); counting requests per minute in this worker', exc)
                self._windows_down = True
            return await self._fallback.hit(windows)
        if self._windows_down:
            log.info('quotas: Redis reachable again; requests per minute are counted fleet-wide')
            self._windows_down = False
        return full

    def record(self, user_id: int, tokens: int, *, has_budget: bool = True) -> None:
        """A request finished having used `tokens` (prompt + completion). Without a budget nothing is sent
        to Redis: the user's count there is seeded from the audit trail if a budget is ever set."""
        if tokens <= 0:
            return
        usage = self._usage.get(user_id)
        if usage is not None:
            usage.tokens += tokens
        if self._meter is not None and has_budget:
            self._meter.record(user_id, tokens, period_start=period_bounds(self.period, self.now())[0])

    async def used_tokens(self, user_id: int) -> int:
        """Tokens used this period: fleet-wide from Redis when there is one; else (or while it is unreachable)
        loaded from the audit trail once, then refreshed in the background."""
        start, end = period_bounds(self.period, self.now())
        if self._meter is not None:
            try:
                used = await self._meter.used(user_id, period_start=start, period_end=end,
                                              load=lambda: self._load(user_id, start))
            except (OSError, RespError) as exc:
                if not self._meter_down:
                    log.warning('quotas: Redis unreachable (%s); token budgets counted per worker', exc)
                    self._meter_down = True
            else:
                self._meter_down = False
                return used
        usage = self._usage.get(user_id)
        if usage is None or usage.period_start != start:
            usage = self._usage[user_id] = _Usage(start, await self._load(user_id, start), self._clock())
        elif self._clock() - usage.loaded_at > self._refresh and user_id not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self._reload(user_id, usage), name=f'quota-{user_id}')
            self._refreshing[user_id] = task
            task.add_done_callback(lambda _: self._refreshing.pop(user_id, None))
        return usage.tokens

    def forget(self, older_than: float = 3600.0) -> None:
        """Drop minute windows and usage nobody has needed for a while (memory stays bounded)."""
        now = self._clock()
        self._windows.forget()
        self._fallback.forget()
        if self._meter is not None:
            self._meter.forget()
        for user_id in [u for u, usage in self._usage.items() if now - usage.loaded_at > older_than]:
            del self._usage[user_id]

    async def close(self) -> None:
        await self._windows.close()
        if self._meter is not None:
            await self._meter.close()

    async def _reload(self, user_id: int, usage: _Usage) -> None:
        loaded_at = self._clock()
        usage.tokens, usage.loaded_at = await self._load(user_id, usage.period_start), loaded_at

    async def _load(self, user_id: int, since: datetime) -> int:
        query = select(func.coalesce(func.sum(col(RequestLog.prompt_tokens) + col(RequestLog.completion_tokens)), 0)
                       ).where(col(RequestLog.user_id) == user_id, col(RequestLog.created_at) >= since)
        async with self._database.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    def now(self) -> datetime:
        """The current time, UTC (the quota periods are UTC)."""
        return self._now().astimezone(UTC)
