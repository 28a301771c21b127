"""An admin's hand on a backend: enable, disable, drain. Health checks never override these decisions.

Drain stops new requests at once (only healthy backends are picked), lets the requests already on the
backend finish, and then disables it on its own. In-flight requests are counted by this process; with
several API workers the fleet-wide count arrives with the Redis admission ledger (scheduler work).
"""

from __future__ import annotations

import asyncio
import logging

from core.db import Database
from core.models import Backend, BackendStatus
from core.registry import store
from core.registry.monitor import RegistryMonitor
from core.registry.view import RegistryView

log = logging.getLogger('mindrouter.registry')

_DRAIN_POLL = 0.1  # seconds between looks at a draining backend's in-flight count


class BackendLifecycle:
    def __init__(self, database: Database, view: RegistryView, monitor: RegistryMonitor) -> None:
        self._database = database
        self._view = view
        self._monitor = monitor
        self._drains: dict[int, asyncio.Task[None]] = {}

    async def disable(self, backend_id: int) -> Backend:
        self._cancel_drain(backend_id)
        return await self._set(backend_id, BackendStatus.disabled)

    async def enable(self, backend_id: int) -> Backend:
        """Back into rotation after a fresh check (healthy or unhealthy, as the engine answers)."""
        self._cancel_drain(backend_id)
        await self._set(backend_id, BackendStatus.unknown)
        return await self._monitor.check(backend_id)

    async def drain(self, backend_id: int) -> Backend:
        backend = await self._set(backend_id, BackendStatus.draining)
        if backend_id not in self._drains:
            self._drains[backend_id] = asyncio.get_running_loop().create_task(
                self._finish_drain(backend_id), name=f'drain-{backend_id}')
        return backend

    async def stop(self) -> None:
        for task in self._drains.values():
            task.cancel()
        await asyncio.gather(*self._drains.values(), return_exceptions=True)
        self._drains.clear()

    async def _finish_drain(self, backend_id: int) -> None:
        try:
            while True:
                state = self._view.backend(backend_id)
                if state is None or state.status != BackendStatus.draining:
                    return  # deleted, or an admin changed their mind
                if state.in_flight == 0:
                    await self._set(backend_id, BackendStatus.disabled)
                    log.info('backend %s drained: disabled', state.name)
                    return
                await asyncio.sleep(_DRAIN_POLL)
        finally:
            self._drains.pop(backend_id, None)

    async def _set(self, backend_id: int, status: BackendStatus) -> Backend:
        async with self._database.session() as session:
            backend = await store.set_status(session, backend_id=backend_id, status=status)
        await self._monitor.reload()
        return backend

    def _cancel_drain(self, backend_id: int) -> None:
        task = self._drains.pop(backend_id, None)
        if task is not None:
            task.cancel()
