"""Failed sign-ins counted per subject (an account, a client address), and the lock they earn.

A subject that reaches `max_failures` failed sign-ins is locked for `lockout` seconds from its last failure;
each further failure after a lock ends doubles the next lock, up to `lockout_max`. A subject is forgotten
once `window` seconds (plus its current lock) pass without a failure. A success clears a subject at once.

`LocalFailureCounter` counts in this process (the embedded default). `RedisFailureCounter` counts in Redis,
so that a guesser gains nothing by spreading attempts over workers and replicas: one Lua script per call,
on the small RESP client the admission ledger and the request windows use (core.scheduler.resp). Each
subject is a hash (failures, last failure time) that expires by itself.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.scheduler.resp import RespClient, Script

Subject = tuple[str, str]  # ('account', digest of the lower-cased username) | ('address', client address)
_MAX_DOUBLINGS = 30  # past this the lock is lockout_max anyway; keeps 2**n a small number


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    max_failures: int  # failures that start the first lock
    window: float  # seconds a failure is remembered after the last one
    lockout: float  # the first lock, in seconds
    lockout_max: float  # no lock is longer

    def lock_seconds(self, failures: int) -> float:
        """The lock `failures` failures earn, counted from the last of them (0: none)."""
        if failures < self.max_failures:
            return 0.0
        doublings: int = min(failures - self.max_failures, _MAX_DOUBLINGS)
        return min(self.lockout * float(2 ** doublings), self.lockout_max)


Rule = tuple[Subject, ThrottlePolicy]


@dataclass(frozen=True, slots=True)
class Failure:
    failures: int  # the subject's failures now, this one included
    lock: float  # seconds this failure locks the subject for (0: not locked)


class FailureCounter(Protocol):
    async def locked_for(self, rules: Sequence[Rule]) -> float:
        """Seconds until every subject may try again (0: now)."""
        ...

    async def fail(self, rules: Sequence[Rule]) -> list[Failure]:
        """Count one failure for every subject; what each has now, in `rules` order."""
        ...

    async def clear(self, subject: Subject) -> None: ...

    async def close(self) -> None: ...


def account_subject(username: str) -> Subject:
    """A fixed-size name for whatever was typed: usernames are matched case-insensitively on MariaDB."""
    return 'account', hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def address_subject(address: str) -> Subject:
    return 'address', address


@dataclass(slots=True)
class _Record:
    failures: int
    last: float
    forget_at: float


class LocalFailureCounter:
    _PRUNE_EVERY = 60.0  # seconds

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._records: dict[Subject, _Record] = {}
        self._pruned_at = clock()

    async def locked_for(self, rules: Sequence[Rule]) -> float:
        now = self._clock()
        wait = 0.0
        for subject, policy in rules:
            record = self._live(subject, now)
            if record is not None:
                wait = max(wait, record.last + policy.lock_seconds(record.failures) - now)
        return wait

    async def fail(self, rules: Sequence[Rule]) -> list[Failure]:
        now = self._clock()
        self._prune(now)
        outcome = []
        for subject, policy in rules:
            record = self._live(subject, now)
            failures = 1 if record is None else record.failures + 1
            lock = policy.lock_seconds(failures)
            self._records[subject] = _Record(failures=failures, last=now, forget_at=now + policy.window + lock)
            outcome.append(Failure(failures=failures, lock=lock))
        return outcome

    async def clear(self, subject: Subject) -> None:
        self._records.pop(subject, None)

    async def close(self) -> None:
        return None

    def _live(self, subject: Subject, now: float) -> _Record | None:
        record = self._records.get(subject)
        return None if record is None or now > record.forget_at else record

    def _prune(self, now: float) -> None:
        """Failures are only counted after a password check, and those are bounded, so this stays small."""
        if now - self._pruned_at < self._PRUNE_EVERY:
            return
        self._pruned_at = now
        for subject in [subject for subject, record in self._records.items() if now > record.forget_at]:
            del self._records[subject]


# Both scripts: KEYS one hash per subject; ARGV now, then per key its max_failures, window, lockout, lockout_max.
_LOCK = """
local function lock(n, i)
  local max_failures = tonumber(ARGV[4 * i - 2])
  if n < max_failures then return 0 end
  return math.min(tonumber(ARGV[4 * i]) * 2 ^ math.min(n - max_failures, 30), tonumber(ARGV[4 * i + 1]))
end
local function live(key, i, now)
  local record = redis.call('HMGET', key, 'n', 't')
  if not record[1] then return 0, now end
  local n, last = tonumber(record[1]), tonumber(record[2])
  if now - last > tonumber(ARGV[4 * i - 1]) + lock(n, i) then return 0, now end
  return n, last
end
local now = tonumber(ARGV[1])
"""
_LOCKED_FOR = Script(_LOCK + """
local wait = 0
for i, key in ipairs(KEYS) do
  local n, last = live(key, i, now)
  wait = math.max(wait, last + lock(n, i) - now)
end
return tostring(wait)
""")
_FAIL = Script(_LOCK + """
local out = {}
for i, key in ipairs(KEYS) do
  local n = live(key, i, now) + 1
  local locked = lock(n, i)
  redis.call('HSET', key, 'n', n, 't', ARGV[1])
  redis.call('PEXPIRE', key, math.ceil((tonumber(ARGV[4 * i - 1]) + locked) * 1000))
  out[i] = {n, tostring(locked)}
end
return out
""")


class RedisFailureCounter:
    def __init__(self, client: RespClient, *, prefix: str = 'mindrouter', clock: Callable[[], float] = time.time,
                 owns_client: bool = True) -> None:
        self._client = client
        self._base = f'{{{prefix}:signin}}'  # one hash tag: an attempt's subjects sit in one Cluster slot
        self._clock = clock
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, *, prefix: str = 'mindrouter') -> RedisFailureCounter:
        return cls(RespClient.from_url(url, timeout=2.0, connect_timeout=1.0), prefix=prefix)

    async def locked_for(self, rules: Sequence[Rule]) -> float:
        wait = await self._client.evalsha(_LOCKED_FOR, *self._arguments(rules))
        return max(0.0, float(str(wait)))

    async def fail(self, rules: Sequence[Rule]) -> list[Failure]:
        replies = await self._client.evalsha(_FAIL, *self._arguments(rules))
        assert isinstance(replies, list)
        return [Failure(failures=int(str(n)), lock=float(str(lock))) for n, lock in replies]

    async def clear(self, subject: Subject) -> None:
        await self._client.execute('DEL', self._key(subject))

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()

    def _key(self, subject: Subject) -> str:
        kind, name = subject
        return f'{self._base}:{kind}:{name}'

    def _arguments(self, rules: Sequence[Rule]) -> tuple[list[str], list[str | int]]:
        arguments: list[str | int] = [f'{self._clock():.6f}']
        for _, policy in rules:
            arguments += [policy.max_failures, f'{policy.window:.6f}', f'{policy.lockout:.6f}',
                          f'{policy.lockout_max:.6f}']
        return [self._key(subject) for subject, _ in rules], arguments

