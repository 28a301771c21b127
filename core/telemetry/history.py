"""The telemetry recorder: every TELEMETRY_SAMPLE_INTERVAL seconds it turns the poller's latest sidecar
readings and the registry view's backends into one batch of rows, and at most once an hour deletes rows
older than TELEMETRY_RETENTION_DAYS.

It reads memory only (no sidecar request of its own: the poller already made one per node), and writes off
every request path. A failed batch is logged and dropped — a gap in a chart is cheaper than a growing
buffer — and the next run (core.jobs.background) tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped
from sqlmodel import col

from core.db import Database
from core.models import Backend, BackendSample, GpuSample, Node, utcnow
from core.models.telemetry import BACKEND_FIGURES, GPU_FIGURES
from core.registry.view import RegistryView
from core.telemetry.poller import NodePoller
from core.telemetry.sidecar import NodeSnapshot

log = logging.getLogger('mindrouter.telemetry')

PRUNE_EVERY = 3600.0  # seconds: deleting is a range scan on taken_at; hourly keeps it small and rare


@dataclass(slots=True, frozen=True)
class SampleCounts:
    gpus: int
    backends: int


def figure(value: Any) -> float | None:
    """A sidecar number as a float; anything else (null, a string, a bool) as None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def gpu_rows(snapshots: dict[int, NodeSnapshot], taken_at: datetime) -> list[dict[str, Any]]:
    rows = []
    for node_id, snapshot in snapshots.items():
        for gpu in snapshot.gpus:
            index = gpu.get('index')
            if isinstance(index, bool) or not isinstance(index, int):
                continue  # nothing to file it under
            # A GPU that answered {index, error} still gets a row: all nulls mark the gap as "present, unread".
            rows.append({'node_id': node_id, 'gpu_index': index, 'taken_at': taken_at,
                         **{name: figure(gpu.get(name)) for name in GPU_FIGURES}})
    return rows


def backend_rows(registry: RegistryView, poller: NodePoller, taken_at: datetime) -> list[dict[str, Any]]:
    rows = []
    for backend in registry.backends:
        figures = poller.backend_figures(backend.node_id, backend.gpu_indices) or {}
        rows.append({'backend_id': backend.id, 'taken_at': taken_at, 'in_flight': backend.total_in_flight,
                     'max_concurrent': backend.max_concurrent, 'healthy': backend.healthy,
                     **{name: figure(figures.get(name)) for name in BACKEND_FIGURES}})
    return rows


class TelemetryRecorder:
    def __init__(self, database: Database, poller: NodePoller, registry: RegistryView, *,
                 retention_days: int | Callable[[], int]) -> None:
        self._database = database
        self._poller = poller
        self._registry = registry
        # a callable is read at every prune: an admin may change the retention while the gateway runs
        self._retention_days = retention_days
        self._last_prune: float | None = None  # monotonic time of the last prune

    @property
    def retention(self) -> timedelta:
        days = self._retention_days
        return timedelta(days=days() if callable(days) else days)

    async def sample_now(self, *, at: datetime | None = None) -> SampleCounts:
        """Write one sample of every GPU and backend, all rows or none. `at` defaults to now; it is cut to
        whole seconds because MariaDB's DATETIME keeps none, and both databases must give the same series."""
        taken_at = (at or utcnow()).replace(microsecond=0)
        gpus = gpu_rows(dict(self._poller.snapshots), taken_at)
        backends = backend_rows(self._registry, self._poller, taken_at)
        async with self._database.connect() as conn:
            # A node or backend deleted since the view was built would fail its foreign key and the whole batch.
            gpus = _only(gpus, 'node_id', await _ids(conn, col(Node.id), {row['node_id'] for row in gpus}))
            backends = _only(backends, 'backend_id',
                             await _ids(conn, col(Backend.id), {row['backend_id'] for row in backends}))
            if gpus:
                await conn.execute(insert(GpuSample), gpus)  # executemany
            if backends:
                await conn.execute(insert(BackendSample), backends)
            await conn.commit()
        return SampleCounts(gpus=len(gpus), backends=len(backends))

    async def prune(self, *, now: datetime | None = None) -> int:
        """Delete rows older than the retention period; the number of rows deleted."""
        cutoff = (now or utcnow()) - self.retention
        async with self._database.connect() as conn:
            deleted = 0
            for table in (GpuSample, BackendSample):
                result = await conn.execute(delete(table).where(col(table.taken_at) < cutoff))
                deleted += max(result.rowcount, 0)
            await conn.commit()
        self._last_prune = time.monotonic()
        return deleted

    async def tick(self) -> None:
        """One scheduled run (core.jobs.background): a sample, and the hourly prune when it is due. Failures are logged
        and the next run tries again."""
        try:
            counts = await self.sample_now()
            log.debug('telemetry: wrote %d GPU and %d backend rows', counts.gpus, counts.backends)
        except Exception as exc:
            log.warning('telemetry: sample not written: %s', _first_line(exc))
        if self._last_prune is None or time.monotonic() - self._last_prune >= PRUNE_EVERY:
            try:
                await self.prune()
            except Exception as exc:
                self._last_prune = time.monotonic()  # not every tick of an outage: try again in an hour
                log.warning('telemetry: old rows not pruned: %s', _first_line(exc))


async def _ids(conn: AsyncConnection, column: Mapped[int | None], wanted: set[int]) -> set[int]:
    if not wanted:
        return set()
    found = await conn.execute(select(column).where(column.in_(wanted)))
    return {value for value in found.scalars() if value is not None}


def _only(rows: Iterable[dict[str, Any]], key: str, allowed: set[int]) -> list[dict[str, Any]]:
    return [row for row in rows if row[key] in allowed]


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, 'message', None) or f'{exc.__class__.__name__}: {exc}'
    return str(message).splitlines()[0]
