"""A background job that keeps failing says so once, and once more when it works again: a database outage
must not write a line per job per interval."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from core.errors import DatabaseUnavailable
from core.jobs.background import BackgroundJobs, Housekeeping, JobIntervals

HOUR = 3600.0


async def nothing() -> None:
    pass


async def true() -> bool:
    return True


def jobs_with(chore: Housekeeping) -> BackgroundJobs:
    """Every job but `chore` idle (an hour apart, doing nothing); this process the leader."""
    return BackgroundJobs(
        leadership=SimpleNamespace(held=True, renew=true, resign=nothing),
        monitor=SimpleNamespace(reload=nothing, check_all=nothing),
        poller=SimpleNamespace(poll_all=nothing, load_readings=nothing),
        telemetry=SimpleNamespace(tick=nothing),
        lifecycle=SimpleNamespace(finish_drains=nothing),
        registry=SimpleNamespace(backends=[]),
        fair_queue=SimpleNamespace(forget_idle=lambda: None),
        quota=SimpleNamespace(forget=lambda: None),
        intervals=JobIntervals(registry_reload=HOUR, node_poll=HOUR, backend_check=HOUR, telemetry_sample=HOUR,
                               lease_ttl=HOUR),
        housekeeping=[chore])


async def test_a_failing_job_logs_when_it_starts_failing_and_when_it_works_again(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger='mindrouter.jobs')
    outcomes = [DatabaseUnavailable('cannot reach the database at db:3306')] * 4 + [None] * 2 \
        + [RuntimeError('a bug')] * 3 + [None]
    done = asyncio.Event()

    async def flaky() -> None:
        outcome = outcomes.pop(0)
        if not outcomes:
            done.set()
        if outcome is not None:
            raise outcome

    jobs = jobs_with(Housekeeping('flaky', 0.02, flaky))
    await jobs.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=10)
    finally:
        await jobs.stop()

    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [
        ('WARNING', 'flaky: cannot reach the database at db:3306', False),
        ('INFO', 'flaky: works again', False),
        ('ERROR', 'flaky failed; it runs again every 0.02 s', True),
        ('INFO', 'flaky: works again', False),
    ]
