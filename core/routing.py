"""Which backend serves a request, and the slot it holds there while it runs.

`BackendPicker` is the seam the fair-share scheduler will implement; `LeastLoadedPicker` is the simple
policy until then: the healthy backend serving the model with the most free capacity, never more
requests on a backend than its `max_concurrent`, and a first-come-first-served wait when all are full.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import BackendUnavailable
from core.registry.view import BackendState, RegistryView


class Slot:
    """A held place on a backend. `release()` is idempotent: call it on every exit path."""

    __slots__ = ('_on_release', 'backend', 'queued_ms')

    def __init__(self, backend: BackendState, queued_ms: float, on_release: LeastLoadedPicker) -> None:
        self.backend = backend
        self.queued_ms = queued_ms
        self._on_release: LeastLoadedPicker | None = on_release

    def release(self) -> None:
        picker, self._on_release = self._on_release, None
        if picker is not None:
            picker.release(self.backend)


class BackendPicker(Protocol):
    async def acquire(self, model: str, *, exclude: frozenset[int] = frozenset()) -> Slot: ...


@dataclass(slots=True, eq=False)
class _Waiter:
    model: str
    exclude: frozenset[int]
    future: asyncio.Future[BackendState] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class LeastLoadedPicker:
    def __init__(self, registry: RegistryView, *, queue_timeout: float) -> None:
        self._registry = registry
        self._queue_timeout = queue_timeout
        self._waiters: deque[_Waiter] = deque()

    async def acquire(self, model: str, *, exclude: frozenset[int] = frozenset()) -> Slot:
        """A slot on a healthy backend serving `model` (already resolved), waiting while all are full."""
        started = time.perf_counter()
        healthy = [b for b in self._registry.serving(model) if b.healthy and b.id not in exclude]
        if not healthy:
            raise BackendUnavailable(f'no healthy backend is serving {model!r} right now')
        # Backends cooling down after a failed request are avoided while others can serve, not excluded:
        # when every healthy one is cooling down, trying one beats refusing the request.
        now = time.monotonic()
        candidates = [b for b in healthy if b.cooldown_until <= now] or healthy
        backend = _least_loaded(candidates)
        if backend is None:
            backend = await self._wait(model, exclude)
        else:
            backend.in_flight += 1
        return Slot(backend, (time.perf_counter() - started) * 1000, self)

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return len(self._waiters)

    def release(self, backend: BackendState) -> None:
        """Hand the freed place straight to the oldest waiter that can use it, else free it."""
        if backend.healthy:
            for waiter in self._waiters:
                if backend.id not in waiter.exclude and waiter.model in backend.models:
                    self._waiters.remove(waiter)
                    waiter.future.set_result(backend)  # the in-flight count carries over to the waiter
                    return
        backend.in_flight -= 1

    async def _wait(self, model: str, exclude: frozenset[int]) -> BackendState:
        waiter = _Waiter(model, exclude)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), self._queue_timeout)
        except BaseException as exc:  # timed out, or the client went away while queued
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.future.done():
                self.release(waiter.future.result())  # handed over just as we gave up: pass it on
            else:
                waiter.future.cancel()
            if isinstance(exc, TimeoutError):
                raise BackendUnavailable(f'every backend serving {model!r} stayed busy for '
                                         f'{self._queue_timeout:g} s; try again later') from None
            raise


def _least_loaded(candidates: list[BackendState]) -> BackendState | None:
    best: BackendState | None = None
    best_load = 1.0
    for backend in candidates:
        if backend.has_free_slot:
            load = backend.in_flight / backend.max_concurrent
            if best is None or load < best_load:
                best, best_load = backend, load
    return best

