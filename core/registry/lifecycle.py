"""An admin's hand on a backend: enable, disable, drain, delete. Health checks never override these decisions.

Drain stops new requests at once (only healthy backends are picked; every worker sees the new status at its
next registry reload), lets the requests already on the backend finish, and then disables it on its own.
`finish_drains()` — a cluster-wide job, run by one process (core.jobs.background) — does the last step: a draining
backend becomes disabled once every worker has had a reload interval to see it draining and the admission
ledger counts no request on it anywhere in the fleet.

Delete is refused while that ledger counts a request on the backend; draining first is how an admin gets there
without cutting anyone off.
"""

from __future__ import annotations

import logging
import time

from core.db import Database
from core.errors import InvalidRequest
from core.models import Backend, BackendStatus
from core.registry import store
from core.registry.monitor import RegistryMonitor
from core.scheduler.ledger import AdmissionLedger

log = logging.getLogger('mindrouter.registry')


class BackendInUse(InvalidRequest):
    status_code = 409
    code = 'backend_in_use'


class BackendLifecycle:
    def __init__(self, database: Database, monitor: RegistryMonitor, ledger: AdmissionLedger, *,
                 settle: float) -> None:
        self._database = database
        self._monitor = monitor
        self._ledger = ledger
        self._settle = settle  # seconds every worker needs to see a status change (its registry reload)
        self._draining_since: dict[int, float] = {}  # backend id -> when this process first saw it draining

    async def disable(self, backend_id: int) -> Backend:
        return await self._set(backend_id, BackendStatus.disabled)

    async def enable(self, backend_id: int) -> Backend:
        """Back into rotation after a fresh check (healthy or unhealthy, as the engine answers)."""
        await self._set(backend_id, BackendStatus.unknown)
        return await self._monitor.check(backend_id)

    async def drain(self, backend_id: int) -> Backend:
        return await self._set(backend_id, BackendStatus.draining)

    async def delete(self, backend_id: int) -> Backend:
        """Remove the backend for good (core.registry.store.delete_backend) and take it out of this process's
        view at once; the other workers drop it at their next reload. Refused (BackendInUse) while a request
        runs on it anywhere in the fleet. The deleted row is returned, for the record."""
        async with self._database.session() as session:
            backend = await store.get_backend(session, backend_id=backend_id)  # 404 before anything else
        running = (await self._ledger.in_flight()).get(backend_id, 0)
        if running:
            raise BackendInUse(
                f'backend {backend.name} has {running} request{"" if running == 1 else "s"} in flight; drain it first '
                f'(POST /api/admin/backends/{backend_id}/drain, or Drain in the console): it takes no new requests '
                'and turns disabled when the last one ends, then delete it', param='id')
        async with self._database.session() as session:
            deleted = await store.delete_backend(session, backend_id=backend_id)
        self._draining_since.pop(backend_id, None)
        self._monitor.forget(backend_id)
        await self._monitor.reload()
        log.info('backend %s (id %d) deleted', deleted.name, backend_id)
        return deleted

    async def finish_drains(self) -> list[int]:
        """Disable the draining backends that nothing runs on any more; the ids disabled."""
        async with self._database.session() as session:
            draining = await store.draining_ids(session)
        now = time.monotonic()
        self._draining_since = {i: self._draining_since.get(i, now) for i in draining}
        settled = [i for i in draining if now - self._draining_since[i] >= self._settle]
        if not settled:
            return []
        in_flight = await self._ledger.in_flight()
        finished = []
        for backend_id in settled:
            if in_flight.get(backend_id, 0):
                continue
            async with self._database.session() as session:
                if await store.finish_drain(session, backend_id=backend_id):
                    finished.append(backend_id)
                    log.info('backend %d drained: disabled', backend_id)
        if finished:
            await self._monitor.reload()
        return finished

    async def _set(self, backend_id: int, status: BackendStatus) -> Backend:
        async with self._database.session() as session:
            backend = await store.set_status(session, backend_id=backend_id, status=status)
        await self._monitor.reload()
        return backend
