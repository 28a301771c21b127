"""The background jobs of a MindRouter process, on one APScheduler `AsyncIOScheduler` per process.

Every process keeps its own view fresh: it re-reads the registry, and — when it is not the one polling —
the latest GPU readings that the poller stored. The cluster-wide jobs (sidecar polls, backend health
checks with model catalog and engine load, telemetry samples, drain completion) run in exactly one
process: the holder of the `cluster-jobs` lease (core.jobs.leadership). With one process that is simply it;
with several workers or replicas, one of them, and another takes over within a lease period when it dies.

Each job runs at most once at a time (`max_instances=1`, late runs coalesced), and a failing job logs and
runs again at its next interval: no error stops the schedule. A job that keeps failing (the database is down)
logs its first failure and the run that works again, not every run in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.errors import DatabaseUnavailable
from core.jobs.leadership import Leadership
from core.models import BackendStatus
from core.quotas.guard import QuotaGuard
from core.registry.lifecycle import BackendLifecycle
from core.registry.monitor import RegistryMonitor
from core.registry.view import RegistryView
from core.scheduler.fair_queue import FairQueue
from core.telemetry.history import TelemetryRecorder
from core.telemetry.poller import NodePoller

log = logging.getLogger('mindrouter.jobs')

DRAIN_CHECK_INTERVAL = 0.5  # seconds: a drained backend turns disabled this soon after its last request
STOP_GRACE = 5.0  # seconds the runs in progress get to finish at shutdown
FORGET_INTERVAL = 60.0  # seconds between sweeps of users idle for a fairness window


@dataclass(frozen=True, slots=True)
class Housekeeping:
    """A cluster-wide chore (run by the leader only), e.g. deleting chat uploads that were never sent."""

    name: str
    every: float  # seconds
    run: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JobIntervals:
    registry_reload: float
    node_poll: float
    backend_check: float
    telemetry_sample: float
    lease_ttl: float


class BackgroundJobs:
    def __init__(self, *, leadership: Leadership, monitor: RegistryMonitor, poller: NodePoller,
                 telemetry: TelemetryRecorder, lifecycle: BackendLifecycle, registry: RegistryView,
                 fair_queue: FairQueue, quota: QuotaGuard, intervals: JobIntervals,
                 housekeeping: Sequence[Housekeeping] = ()) -> None:
        self.leadership = leadership
        self._housekeeping = tuple(housekeeping)
        self._registry = registry
        self._fair_queue = fair_queue
        self._quota = quota
        self._monitor = monitor
        self._poller = poller
        self._telemetry = telemetry
        self._lifecycle = lifecycle
        self._intervals = intervals
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()  # job runs in progress, awaited at stop
        self._stopping = False
        self._failing: set[str] = set()  # jobs whose last run failed (reported once, until one succeeds)

    async def start(self) -> None:
        """Claim the lease first (a lone process leads from its first second), then schedule everything."""
        await self.leadership.renew()
        every = self._intervals
        scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={'max_instances': 1, 'coalesce': True,
                                                                 'misfire_grace_time': None})
        now = datetime.now(UTC)
        self._add(scheduler, 'leadership', every.lease_ttl / 3, self._renew)
        self._add(scheduler, 'registry-reload', every.registry_reload, self._monitor.reload)
        self._add(scheduler, 'gpu-readings', every.node_poll, self._gpu_readings, first_run=now)
        self._add(scheduler, 'backend-checks', every.backend_check, self._leader(self._monitor.check_all))
        self._add(scheduler, 'telemetry', every.telemetry_sample, self._leader(self._telemetry.tick))
        self._add(scheduler, 'drains', DRAIN_CHECK_INTERVAL, self._leader(self._finish_drains))
        self._add(scheduler, 'forget-idle-users', FORGET_INTERVAL, self._forget_idle_users)
        for chore in self._housekeeping:
            self._add(scheduler, chore.name, chore.every, self._leader(chore.run))
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """Stop scheduling, let the runs in progress finish (a few seconds at most; cut off after that), then
        hand the lease over. A run left behind would use the database after the app disposed of it."""
        self._stopping = True
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.pause()
            if self._running:
                await asyncio.wait(set(self._running), timeout=STOP_GRACE)
            scheduler.shutdown(wait=False)  # takes effect on the next turn of the loop
            await asyncio.sleep(0)
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self.leadership.resign()

    async def _renew(self) -> None:
        await self.leadership.renew()

    async def _gpu_readings(self) -> None:
        """The leader polls every node's sidecar; the others take what it stored. Each backend's GPU
        utilisation (one term of the scheduler's score) follows the new readings."""
        if self.leadership.held:
            await self._poller.poll_all()
        else:
            await self._poller.load_readings()
        for backend in self._registry.backends:
            figures = self._poller.backend_figures(backend.node_id, backend.gpu_indices) or {}
            utilization = figures.get('utilization_gpu')
            backend.gpu_utilization = float(utilization) if utilization is not None else None

    async def _forget_idle_users(self) -> None:
        """Memory stays bounded: fair-share clocks and quota windows of users gone quiet are dropped."""
        self._fair_queue.forget_idle()
        self._quota.forget()

    async def _finish_drains(self) -> None:
        # Twice a second, but the database is read only while this process's view shows a backend draining
        # (every admin action reloads it; another worker's drain shows at the next reload, and the drain waits a
        # reload interval to settle anyway): an idle check no longer costs a query that a request waits behind.
        if any(backend.status == BackendStatus.draining for backend in self._registry.backends):
            await self._lifecycle.finish_drains()

    def _leader(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def run_if_leader() -> None:
            if self.leadership.held:
                await job()
        run_if_leader.__name__ = getattr(job, '__name__', 'job')
        return run_if_leader

    def _first_failure(self, name: str) -> bool:
        """Whether to report this failure: a job is reported when it starts failing, not on every run after."""
        first = name not in self._failing
        self._failing.add(name)
        return first

    def _add(self, scheduler: AsyncIOScheduler, name: str, seconds: float, job: Callable[[], Awaitable[None]], *,
             first_run: datetime | None = None) -> None:
        async def guarded() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job()
            except DatabaseUnavailable as exc:
                if self._first_failure(name):
                    log.warning('%s: %s', name, exc.message)
            except Exception:
                if self._first_failure(name):
                    log.exception('%s failed; it runs again every %g s', name, seconds)
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                log.info('%s: cut off at shutdown', name)  # not an error: the process is stopping
            else:
                if name in self._failing:
                    self._failing.discard(name)
                    log.info('%s: works again', name)
            finally:
                self._running.discard(task)

        kwargs = {'next_run_time': first_run} if first_run is not None else {}
        scheduler.add_job(guarded, 'interval', seconds=seconds, id=name, name=name, **kwargs)
