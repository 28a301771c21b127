"""Keeps the in-memory registry current: re-reads the database every few seconds (other processes may
have registered backends) and re-checks every backend's model list and health periodically.

The cluster-registry work adds sidecar polling, drain and telemetry on top of this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import httpx

from core.db import Database
from core.errors import DatabaseUnavailable
from core.models import Backend, BackendStatus
from core.registry import store
from core.registry.discovery import DiscoveryError, discover
from core.registry.view import RegistryView

log = logging.getLogger('mindrouter.registry')


class RegistryMonitor:
    def __init__(self, database: Database, view: RegistryView, client: httpx.AsyncClient, *,
                 check_interval: float, reload_interval: float) -> None:
        self._database = database
        self._view = view
        self._check_interval = check_interval
        self._reload_interval = reload_interval
        self._client = client
        self._tasks: list[asyncio.Task[None]] = []

    async def reload(self) -> None:
        async with self._database.session() as session:
            self._view.replace(await store.load_states(session))

    async def check(self, backend_id: int) -> Backend:
        """Discover one backend's models now, store the result (healthy or the error) and reload."""
        async with self._database.session() as session:
            backend = await store.get_backend(session, backend_id=backend_id)
            try:
                found = await discover(self._client, backend.url, backend.engine)
            except DiscoveryError as exc:
                log.warning('backend %s is unhealthy: %s', backend.name, exc)
                backend = await store.record_discovery(session, backend_id=backend_id, discovery=None, error=str(exc))
            else:
                backend = await store.record_discovery(session, backend_id=backend_id, discovery=found)
        await self.reload()
        return backend

    async def check_all(self) -> None:
        targets = [b.id for b in self._view.backends if b.status != BackendStatus.disabled]  # draining: still checked
        results = await asyncio.gather(*(self.check(backend_id) for backend_id in targets), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, DatabaseUnavailable):
                log.error('backend check failed', exc_info=result)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._every(self._reload_interval, self.reload), name='registry-reload'),
                       loop.create_task(self._every(self._check_interval, self.check_all), name='backend-checks')]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @staticmethod
    async def _every(interval: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except DatabaseUnavailable as exc:
                log.warning('registry: %s', exc.message)
            except Exception:
                log.exception('registry job failed')
