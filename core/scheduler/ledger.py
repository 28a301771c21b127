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
from typing import Protocol

from core.registry.view import BackendState, RegistryView


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
