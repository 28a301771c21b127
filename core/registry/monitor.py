"""Keeps the in-memory registry current: `reload()` re-reads the database (every process, every few
seconds: another one may have registered a backend or changed its health), `check_all()` re-checks every
backend's model list, health and engine load (the process running the cluster-wide jobs, periodically),
and `check_soon()` checks one backend at once after a live request failed on it. core.jobs.background schedules them.
Along the way it collects the engines' own evidence of queues hidden inside them (core.registry.capacity): vLLM's
waiting count at each check, and the durations of Ollama's answers that `note_ollama_timings()` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.errors import DatabaseUnavailable
from core.models import Backend, BackendStatus, Engine
from core.registry import store
from core.registry.capacity import CapacityAdvice, OllamaWatch, VllmWatch, ollama_queue_ms
from core.registry.discovery import DiscoveryError, discover
from core.registry.engine_load import read_load
from core.registry.view import RegistryView
from core.translate.ollama_dialect import OllamaTimings

log = logging.getLogger('mindrouter.registry')


class RegistryMonitor:
    def __init__(self, database: Database, view: RegistryView, client: httpx.AsyncClient, *,
                 unhealthy_after: int = 2) -> None:
        self._database = database
        self._view = view
        self._client = client
        self._unhealthy_after = unhealthy_after
        self._failures: dict[int, int] = {}  # backend id -> consecutive failed checks
        self._urgent: dict[int, asyncio.Task[Backend]] = {}  # checks asked for after live failures
        self._vllm_watch = VllmWatch()
        self._ollama_watch = OllamaWatch()

    async def reload(self) -> None:
        async with self._database.session() as session:
            await self._store_ollama_advice(session)
            states = await store.load_states(session)
            aliases = await store.load_aliases(session)
        self._view.replace(states)
        self._view.replace_aliases(aliases)

    def note_ollama_timings(self, backend_id: int, concurrency: int, timings: OllamaTimings) -> None:
        """An Ollama answer's own durations, and how many requests this gateway had on the backend when it was
        sent (itself included): evidence for or against a queue inside the engine. Synchronous and cheap."""
        waited = ollama_queue_ms(timings)
        if waited is not None:
            self._ollama_watch.observe(backend_id, concurrency=concurrency, waited_ms=waited)

    async def _store_ollama_advice(self, session: AsyncSession) -> None:
        for backend_id in self._ollama_watch.backends():
            state = self._view.backend(backend_id)
            if state is None:
                self._ollama_watch.forget(backend_id)
                continue
            advice = self._ollama_watch.advice(backend_id, max_concurrent=state.max_concurrent)
            if advice is not None:
                await store.record_capacity_advice(session, backend_id=backend_id, advice=advice)
                _log_advice(state.name, advice)

    async def check(self, backend_id: int) -> Backend:
        """Discover one backend's models now and store the result. A backend turns unhealthy after
        `unhealthy_after` consecutive failed checks (one blip does not take it out), healthy on the first
        good one."""
        async with self._database.session() as session:
            backend = await store.get_backend(session, backend_id=backend_id)
            before = BackendStatus(backend.status)
            try:
                found = await discover(self._client, backend.url, backend.engine)
            except DiscoveryError as exc:
                failures = self._failures[backend_id] = self._failures.get(backend_id, 0) + 1
                log.debug('backend %s failed its check (%d in a row): %s', backend.name, failures, exc)
                backend = await store.record_discovery(session, backend_id=backend_id, discovery=None,
                                                       error=str(exc), mark_unhealthy=failures >= self._unhealthy_after)
            else:
                self._failures.pop(backend_id, None)
                load = await read_load(self._client, backend.url, backend.engine)
                backend = await store.record_discovery(session, backend_id=backend_id, discovery=found, load=load)
                if backend.engine == Engine.vllm:
                    advice = self._vllm_watch.check(backend_id, load, max_concurrent=backend.max_concurrent)
                    if advice is not None:  # stored at every check while it holds: the advice stays fresh
                        known = CapacityAdvice.from_json(backend.capacity_advice)
                        await store.record_capacity_advice(session, backend_id=backend_id, advice=advice)
                        if known is None or known.suggested != advice.suggested:
                            _log_advice(backend.name, advice)
        _log_change(backend, before, failures=self._failures.get(backend_id, 0))
        await self.reload()
        state = self._view.backend(backend_id)
        if state is not None and state.healthy and backend_id not in self._failures:
            state.cooldown_until = 0.0  # it answers again: no need to wait out the cool-down
        return backend

    def check_soon(self, backend_id: int) -> None:
        """Check a backend now, in the background (a live request just failed on it); one at a time."""
        if backend_id in self._urgent:
            return
        task = asyncio.get_running_loop().create_task(self.check(backend_id), name=f'check-{backend_id}')
        self._urgent[backend_id] = task
        task.add_done_callback(lambda done: self._urgent_done(backend_id, done))

    def _urgent_done(self, backend_id: int, task: asyncio.Task[Backend]) -> None:
        self._urgent.pop(backend_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning('urgent check of backend %d failed: %s', backend_id, task.exception())

    def forget(self, backend_id: int) -> None:
        """A deleted backend: drop its failure count and stop an urgent check of it."""
        self._failures.pop(backend_id, None)
        self._vllm_watch.forget(backend_id)
        self._ollama_watch.forget(backend_id)
        urgent = self._urgent.pop(backend_id, None)
        if urgent is not None:
            urgent.cancel()

    async def check_all(self) -> None:
        targets = [b.id for b in self._view.backends if b.status != BackendStatus.disabled]  # draining: still checked
        results = await asyncio.gather(*(self.check(backend_id) for backend_id in targets), return_exceptions=True)
        quiet = (DatabaseUnavailable, store.BackendNotFound)  # not found: deleted since this process's last reload
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, quiet):
                log.error('backend check failed', exc_info=result)

    async def stop(self) -> None:
        """Cancel the urgent checks still running."""
        tasks = list(self._urgent.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._urgent.clear()


def _log_change(backend: Backend, before: BackendStatus, *, failures: int) -> None:
    """A line when a check changes a backend's health, none for the checks that only confirm it."""
    after = BackendStatus(backend.status)
    if after == before:
        return
    if after == BackendStatus.unhealthy:
        log.warning('backend %s is unhealthy after %d failed checks in a row: %s', backend.name, failures,
                    backend.last_error)
    elif after == BackendStatus.healthy:
        log.info('backend %s is healthy%s', backend.name, ' again' if before == BackendStatus.unhealthy else '')


def _log_advice(name: str, advice: CapacityAdvice) -> None:
    log.warning('backend %s queues requests inside its engine: %s', name, advice.evidence)
