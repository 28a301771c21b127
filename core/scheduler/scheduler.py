"""Which backend serves a request, and the slot it holds there while it runs.

`BackendPicker` is the seam the fair-share scheduler implements; `LeastLoadedPicker` orders the healthy
backends serving the model by load (backends cooling down after a failed request last) and asks the
admission ledger for a slot on the first with room. When every one is full the request waits, first
come first served, until a slot is freed anywhere in the fleet or the queue timeout passes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import BackendUnavailable
from core.registry.view import BackendState, RegistryView
from core.scheduler.ledger import AdmissionLedger, Lease

log = logging.getLogger('mindrouter.scheduler')


class Slot:
    """A held place on a backend. `release()` is idempotent and synchronous: call it on every exit path."""

    __slots__ = ('_lease', '_ledger', 'queued_ms')

    def __init__(self, lease: Lease, queued_ms: float, ledger: AdmissionLedger) -> None:
        self._lease = lease
        self.queued_ms = queued_ms
        self._ledger: AdmissionLedger | None = ledger

    @property
    def backend(self) -> BackendState:
        return self._lease.backend

    def release(self) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger.release(self._lease)


class BackendPicker(Protocol):
    async def acquire(self, model: str, *, user_id: int | None = None,
                      exclude: frozenset[int] = frozenset()) -> Slot: ...


@dataclass(slots=True, eq=False)
class _Waiter:
    model: str
    user_id: int | None
    exclude: frozenset[int]
    future: asyncio.Future[Lease] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class LeastLoadedPicker:
    def __init__(self, registry: RegistryView, ledger: AdmissionLedger, *, queue_timeout: float) -> None:
        self._registry = registry
        self._ledger = ledger
        self._queue_timeout = queue_timeout
        self._waiters: deque[_Waiter] = deque()
        self._dispatcher: asyncio.Task[None] | None = None
        self._look_again = False
        ledger.on_freed(self.wake)

    async def acquire(self, model: str, *, user_id: int | None = None,
                      exclude: frozenset[int] = frozenset()) -> Slot:
        """A slot on a healthy backend serving `model` (already resolved), waiting while all are full."""
        started = time.perf_counter()
        candidates = self._candidates(model, exclude)
        if not candidates:
            raise BackendUnavailable(f'no healthy backend is serving {model!r} right now')
        # Nobody waiting: take a slot if there is one. Otherwise join the queue, so that a request arriving
        # just as a slot frees cannot overtake those that have waited for it.
        lease = None if self._waiters else await self._ledger.try_acquire(candidates, user_id=user_id)
        if lease is None:
            lease = await self._wait(_Waiter(model, user_id, exclude))
        return Slot(lease, (time.perf_counter() - started) * 1000, self._ledger)

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return len(self._waiters)

    def wake(self) -> None:
        """A slot may be free somewhere: let the waiters, oldest first, try again."""
        if not self._waiters:
            return
        self._look_again = True
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(), name='slot-dispatch')

    def _candidates(self, model: str, exclude: frozenset[int]) -> list[BackendState]:
        healthy = [b for b in self._registry.serving(model) if b.healthy and b.id not in exclude]
        # Backends cooling down after a failed request are avoided while others can serve, not excluded:
        # when every healthy one is cooling down, trying one beats refusing the request.
        now = time.monotonic()
        healthy.sort(key=lambda b: (b.cooldown_until > now, b.total_in_flight / b.max_concurrent))
        return healthy

    async def _wait(self, waiter: _Waiter) -> Lease:
        self._waiters.append(waiter)
        self._ledger.note_waiting(len(self._waiters))
        self.wake()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), self._queue_timeout)
        except BaseException as exc:  # timed out, or the client went away while queued
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.future.done() and not waiter.future.cancelled():
                self._ledger.release(waiter.future.result())  # granted just as we gave up: pass it on
            else:
                waiter.future.cancel()
            if isinstance(exc, TimeoutError):
                raise BackendUnavailable(f'every backend serving {waiter.model!r} stayed busy for '
                                         f'{self._queue_timeout:g} s; try again later') from None
            raise
        finally:
            self._ledger.note_waiting(len(self._waiters))

    async def _dispatch(self) -> None:
        """Hand free slots to the waiters, oldest first; a model whose backends are full is skipped for the
        rest of the pass, so a waiter for another model is not held up behind it."""
        while self._look_again:
            self._look_again = False
            full: set[tuple[str, frozenset[int]]] = set()
            for waiter in list(self._waiters):
                if waiter.future.done() or (waiter.model, waiter.exclude) in full:
                    continue
                candidates = self._candidates(waiter.model, waiter.exclude)
                try:
                    lease = await self._ledger.try_acquire(candidates, user_id=waiter.user_id) if candidates else None
                except Exception as exc:  # the ledger's store is unreachable: the waiters time out with a 503
                    log.warning('admission: could not hand out a slot: %s', exc)
                    return
                if lease is None:
                    full.add((waiter.model, waiter.exclude))
                elif waiter.future.done():  # gave up while we asked: the slot goes straight back
                    self._ledger.release(lease)
                else:
                    self._waiters.remove(waiter)
                    waiter.future.set_result(lease)
