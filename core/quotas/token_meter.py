"""Tokens used per user in the current quota period, counted in Redis by every worker and replica, so that a
token budget holds for the whole fleet at once (without Redis, core.quotas.guard keeps the count per process and
re-reads the audit trail every minute).

One hash per period (`{<prefix>:usage}:<YYYYMMDD of the period's start>`, user id -> tokens), which expires a
day after the period ends. A user's count is seeded from the audit trail the first time any worker needs it in
the period (HSETNX: the first seed wins), and every finished request adds its tokens — only to a seeded
count, so an addition can never stand in for the audit trail's sum. Reads are kept for a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from core.scheduler.resp import RespClient, Script

log = logging.getLogger('mindrouter.quotas')

_SEED = Script("""
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HGET', KEYS[1], ARGV[1])
""")
_ADD = Script("""
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) end
return false
""")


class RedisTokenMeter:
    def __init__(self, client: RespClient, *, prefix: str = 'mindrouter', fresh: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._base = f'{{{prefix}:usage}}'
        self._fresh = fresh
        self._clock = clock
        self._read: dict[tuple[str, int], tuple[int, float]] = {}  # (key, user) -> (tokens, when read)
        self._writes: set[asyncio.Task[object]] = set()

    @classmethod
    def from_url(cls, url: str, *, prefix: str = 'mindrouter') -> RedisTokenMeter:
        return cls(RespClient.from_url(url), prefix=prefix)

    async def used(self, user_id: int, *, period_start: datetime, period_end: datetime,
                   load: Callable[[], Awaitable[int]]) -> int:
        """The user's tokens this period, fleet-wide; raises OSError or RespError when Redis is unreachable."""
        key = self._key(period_start)
        cached = self._read.get((key, user_id))
        if cached is not None and self._clock() - cached[1] < self._fresh:
            return cached[0]
        value = await self._client.execute('HGET', key, user_id)
        if value is None:
            ttl_ms = int((period_end - period_start).total_seconds() * 1000) + 86_400_000
            value = await self._client.evalsha(_SEED, [key], [user_id, await load(), ttl_ms])
        tokens = int(str(value))
        self._read[(key, user_id)] = (tokens, self._clock())
        return tokens

    def record(self, user_id: int, tokens: int, *, period_start: datetime) -> None:
        """A request finished having used `tokens`: added in the background (fire and forget, logged on failure)."""
        key = self._key(period_start)
        cached = self._read.get((key, user_id))
        if cached is not None:
            self._read[(key, user_id)] = (cached[0] + tokens, cached[1])
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            self._client.evalsha(_ADD, [key], [user_id, tokens]), name='token-meter')
        self._writes.add(task)
        task.add_done_callback(self._written)

    def forget(self) -> None:
        now = self._clock()
        for entry in [k for k, (_, at) in self._read.items() if now - at > 60]:
            del self._read[entry]

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait until the additions sent so far have reached Redis (or failed)."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout)

    async def close(self) -> None:
        await self.flush()
        await self._client.close()

    def _written(self, task: asyncio.Task[object]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning('quotas: a request\'s tokens were not added in Redis: %s', task.exception())

    def _key(self, period_start: datetime) -> str:
        return f'{self._base}:{period_start:%Y%m%d}'
