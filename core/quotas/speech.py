"""Speech budgets, in speech's own units: characters read aloud (text to speech) and seconds of audio heard (speech
to text), per quota period, next to the token budget. Each is the user's override when an admin set one, else its
role's; 0 means unlimited. Past a budget: 429 with Retry-After at the period's end.

Usage is counted as core.quotas.guard counts tokens: with REDIS_URL fleet-wide in Redis (a RedisTokenMeter per unit,
seconds kept as milliseconds since Redis counts integers), seeded from the audit trail; else per process, read from
the audit trail once and then kept current by each finished request, re-read every `refresh` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlmodel import col

from core.accounts.api_keys import Principal
from core.db import Database
from core.errors import LimitExceeded
from core.models import RequestLog
from core.quotas.guard import QuotaGuard, period_bounds
from core.quotas.token_meter import RedisTokenMeter
from core.scheduler.resp import RespError

log = logging.getLogger('mindrouter.quotas')


class SpeechUnit(StrEnum):
    chars = 'chars'  # text to speech: characters of input
    seconds = 'seconds'  # speech to text: seconds of audio


_COLUMN = {SpeechUnit.chars: RequestLog.speech_chars, SpeechUnit.seconds: RequestLog.audio_seconds}
_SCALE = {SpeechUnit.chars: 1, SpeechUnit.seconds: 1000}  # Redis counts integers: seconds as milliseconds


@dataclass(slots=True)
class _Usage:
    period_start: object
    amount: float
    loaded_at: float


class SpeechQuota:
    def __init__(self, database: Database, guard: QuotaGuard, *,
                 meters: dict[SpeechUnit, RedisTokenMeter] | None = None, refresh: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._database = database
        self._guard = guard  # its period and clock: one quota period for every budget
        self._meters = meters or {}
        self._refresh = refresh
        self._clock = clock
        self._usage: dict[tuple[SpeechUnit, int], _Usage] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._meters_down = False  # Redis unreachable: said once, not on every request

    @staticmethod
    def budget(principal: Principal, unit: SpeechUnit) -> int:
        return principal.tts_char_budget if unit == SpeechUnit.chars else principal.stt_seconds_budget

    async def admit(self, principal: Principal, unit: SpeechUnit) -> None:
        """Raise LimitExceeded (429, Retry-After: the period's end) when the user's budget in `unit` is spent."""
        budget = self.budget(principal, unit)
        if not budget:
            return
        used = await self.used(principal.user_id, unit)
        if used >= budget:
            now = self._guard.now()
            _, end = period_bounds(self._guard.period, now)
            what = 'characters of text to speech' if unit == SpeechUnit.chars else 'seconds of audio transcribed'
            raise LimitExceeded(f'{principal.username} used {used:,.0f} of {budget:,} {what} this '
                                f'{self._guard.period}; the budget renews at {end:%Y-%m-%d %H:%M} UTC, or ask an admin '
                                'for more', code='speech_budget_exhausted', retry_after=(end - now).total_seconds())

    def record(self, user_id: int, unit: SpeechUnit, amount: float, *, has_budget: bool) -> None:
        """A request finished having used `amount` (characters or seconds)."""
        if amount <= 0:
            return
        usage = self._usage.get((unit, user_id))
        if usage is not None:
            usage.amount += amount
        meter = self._meters.get(unit)
        if meter is not None and has_budget:
            start, _ = period_bounds(self._guard.period, self._guard.now())
            meter.record(user_id, round(amount * _SCALE[unit]), period_start=start)

    async def used(self, user_id: int, unit: SpeechUnit) -> float:
        start, end = period_bounds(self._guard.period, self._guard.now())
        meter = self._meters.get(unit)
        if meter is not None:
            try:
                scaled = await meter.used(user_id, period_start=start, period_end=end,
                                          load=lambda: self._load_scaled(user_id, unit, start))
            except (OSError, RespError) as exc:
                if not self._meters_down:
                    log.warning('quotas: Redis unreachable (%s); speech budgets counted per worker', exc)
                    self._meters_down = True
            else:
                self._meters_down = False
                return scaled / _SCALE[unit]
        key = (unit, user_id)
        usage = self._usage.get(key)
        if usage is None or usage.period_start != start:
            usage = self._usage[key] = _Usage(start, await self._load(user_id, unit, start), self._clock())
        elif self._clock() - usage.loaded_at > self._refresh:
            usage.loaded_at = self._clock()  # one refresh at a time
            task = asyncio.get_running_loop().create_task(self._reload(user_id, unit, usage))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return usage.amount

    async def _reload(self, user_id: int, unit: SpeechUnit, usage: _Usage) -> None:
        usage.amount = await self._load(user_id, unit, usage.period_start)

    async def _load_scaled(self, user_id: int, unit: SpeechUnit, since: object) -> int:
        return round(await self._load(user_id, unit, since) * _SCALE[unit])

    async def _load(self, user_id: int, unit: SpeechUnit, since: object) -> float:
        query = select(func.coalesce(func.sum(col(_COLUMN[unit])), 0)).where(
            col(RequestLog.user_id) == user_id, col(RequestLog.created_at) >= since)
        async with self._database.connect() as conn:
            return float((await conn.execute(query)).scalar_one())

    async def close(self) -> None:
        for meter in self._meters.values():
            await meter.close()
