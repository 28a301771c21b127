"""Requests-per-minute windows: a sliding 60-second window per subject (a user, an API key).

`LocalRateWindows` counts in this process (the embedded default, one worker). `RedisRateWindows` counts in
Redis, so that a user's limit holds across every worker and replica: one Lua script checks and counts all of
a request's windows at once (one round trip, on the small RESP client of the admission ledger). Each window
is a sorted set of request times that expires a minute after its last request.

`hit(windows)` counts the request in every window, or in none: it returns None when all have room, else the
first full window's position in `windows` and the seconds until it has room again (its oldest request leaves
the minute).
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from core.scheduler.resp import RespClient, Script

WINDOW = 60.0  # seconds

Subject = tuple[str, int]  # ('user' | 'key', id)


class RateWindows(Protocol):
    async def hit(self, windows: Sequence[tuple[Subject, int]]) -> tuple[int, float] | None: ...

    def forget(self) -> None: ...

    async def close(self) -> None: ...


class LocalRateWindows:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._times: dict[Subject, deque[float]] = {}

    async def hit(self, windows: Sequence[tuple[Subject, int]]) -> tuple[int, float] | None:
        now = self._clock()
        for position, (subject, limit) in enumerate(windows):
            times = self._times.get(subject)
            while times and now - times[0] >= WINDOW:
                times.popleft()
            if times is not None and len(times) >= limit:
                return position, times[0] + WINDOW - now
        for subject, _ in windows:
            self._times.setdefault(subject, deque()).append(now)
        return None

    def forget(self) -> None:
        now = self._clock()
        for subject in [s for s, times in self._times.items() if not times or now - times[-1] > WINDOW]:
            del self._times[subject]

    async def close(self) -> None:
        return None


# KEYS: one sorted set per window. ARGV: now (seconds), window, member, then each window's limit in KEYS order.
_HIT = Script("""
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {i - 1, tostring(tonumber(oldest[2]) + window - now)}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
end
return false
""")


class RedisRateWindows:
    def __init__(self, client: RespClient, *, prefix: str = 'mindrouter', clock: Callable[[], float] = time.time,
                 owns_client: bool = True) -> None:
        self._client = client
        self._base = f'{{{prefix}:rpm}}'  # one hash tag: a request's windows sit in one Cluster slot
        self._clock = clock
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, *, prefix: str = 'mindrouter') -> RedisRateWindows:
        return cls(RespClient.from_url(url), prefix=prefix)

    async def hit(self, windows: Sequence[tuple[Subject, int]]) -> tuple[int, float] | None:
        keys = [f'{self._base}:{kind}:{subject_id}' for (kind, subject_id), _ in windows]
        member = f'{self._clock():.6f}-{secrets.token_hex(4)}'  # two requests in one microsecond stay two
        full = await self._client.evalsha(_HIT, keys, [f'{self._clock():.6f}', str(WINDOW), member,
                                                       *(limit for _, limit in windows)])
        if not isinstance(full, list):
            return None
        position, wait = full
        return int(str(position)), float(str(wait))

    def forget(self) -> None:
        return None  # the windows expire in Redis by themselves

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()
