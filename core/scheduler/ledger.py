"""The admission ledger: who holds a slot on which backend right now.

A backend's `max_concurrent` is the engine's own limit, so it must hold for the whole fleet, not per API
worker. `LocalLedger` keeps the counts in this process (the embedded default, one worker); the Redis
ledger (`core.scheduler.redis_ledger`) keeps them where every worker and replica sees them. Both speak
this protocol; the picker and the drain never know which one they have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Protocol, runtime_checkable

from core.registry.view import BackendState, RegistryView


@dataclass(frozen=True, slots=True)
class FairAsk:
    """A request asking for a slot in fleet-wide fair order (RedisLedger.acquire_fair)."""

    ticket: str  # unique across the fleet: worker id and a counter
    user_id: int
    weight: float
    cost: float
    model: str
    tag: float | None = None  # None: a new request, to be tagged; else the start tag it was queued with


@dataclass(slots=True, eq=False)
class Lease:
    """A slot held on `backend`. The ledger that granted it releases it exactly once."""

    id: str
    backend: BackendState
    user_id: int | None = None


class AdmissionLedger(Protocol):
    async def try_acquire(self, candidates: Sequence[BackendState], *, user_id: int | None) -> Lease | None:
        """A lease on the first of `candidates` (in the caller's order of preference) with a free slot
        fleet-wide, or None when all are full."""
        ...

    def release(self, lease: Lease) -> None:
        """Give the slot back. Synchronous, so that it runs in any cleanup path, even a cancelled one."""
        ...

    async def in_flight(self) -> dict[int, int]:
        """Slots held now on each backend, fleet-wide (backends with none may be absent)."""
        ...

    def user_in_flight(self, user_id: int) -> int:
        """Requests the user has running now, as last known (fleet-wide with Redis)."""
        ...

    def on_freed(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a slot may have been freed anywhere (waiters should look again)."""
        ...

    def note_waiting(self, waiters: int) -> None:
        """How many requests are queued in this process now: while any are, frees elsewhere must reach us."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class FleetFairness(Protocol):
    """A ledger that also keeps the fair-share clock for the whole fleet (RedisLedger): tags requests, queues
    them where every worker sees them, and grants slots lowest tag first across workers."""

    worker_id: str

    async def acquire_fair(self, candidates: Sequence[BackendState], ask: FairAsk
                           ) -> tuple[Lease | None, float | None]: ...

    def dequeue(self, ask: FairAsk, *, refund_tokens: float) -> None: ...

    def correct(self, user_id: int, tokens: float, weight: float) -> None: ...

    async def fair_state(self) -> tuple[float, dict[int, float]]: ...


class LocalLedger:
    """This process's slots, counted on the backends' own `in_flight`: nothing to share, nothing to await."""

    def __init__(self, registry: RegistryView) -> None:
        self._registry = registry
        self._users: dict[int, int] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._ids = count(1)

    async def try_acquire(self, candidates: Sequence[BackendState], *, user_id: int | None) -> Lease | None:
        for backend in candidates:
            if backend.in_flight < backend.max_concurrent:
                backend.in_flight += 1
                if user_id is not None:
                    self._users[user_id] = self._users.get(user_id, 0) + 1
                return Lease(str(next(self._ids)), backend, user_id)
        return None

    def release(self, lease: Lease) -> None:
        lease.backend.in_flight -= 1
        if lease.user_id is not None:
            left = self._users.get(lease.user_id, 0) - 1
            if left > 0:
                self._users[lease.user_id] = left
            else:
                self._users.pop(lease.user_id, None)
        for callback in self._callbacks:
            callback()

    async def in_flight(self) -> dict[int, int]:
        return {backend.id: backend.in_flight for backend in self._registry.backends if backend.in_flight}

    def user_in_flight(self, user_id: int) -> int:
        return self._users.get(user_id, 0)

    def on_freed(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def note_waiting(self, waiters: int) -> None:
        return None  # every release happens in this process and wakes the picker directly

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
