"""Background jobs across processes: two gateway workers on one database, as `serve --workers 2` runs them.
One of them holds the lease and polls each sidecar; the other shows the same readings without a poll of its
own, and takes over when the first one stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlmodel import select

from app.factory import create_api_app
from core.accounts import service as accounts
from core.config import reset_settings
from core.db import Database
from core.models import JobLease
from sim.sidecar import SidecarConfig, SidecarSim

KEY = 'node-secret-77'
POLL = 0.2


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'NODE_POLL_INTERVAL': str(POLL), 'LEADER_LEASE_TTL': '3', 'TELEMETRY_SAMPLE_INTERVAL': '0.2'}


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError('condition not met in time')


@pytest.fixture
async def workers(database: Database, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
                  ) -> AsyncIterator[list[tuple[FastAPI, LifespanManager]]]:
    """Two workers' apps (the first started first): same settings, same database, each its own memory."""
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    started: list[tuple[FastAPI, LifespanManager]] = []
    try:
        for _ in range(2):
            worker = create_api_app()
            manager = LifespanManager(worker)
            await manager.__aenter__()
            started.append((worker, manager))
        yield started
    finally:
        for worker, manager in reversed(started):
            if not getattr(worker.state, 'stopped', False):
                await manager.__aexit__(None, None, None)
            # In one test process both workers share the process-wide Database: the first to stop disposed
            # of it and the other reopened its pool, which nobody else will close.
            await worker.state.database.dispose()


async def stop(worker: tuple[FastAPI, LifespanManager]) -> None:
    await worker[1].__aexit__(None, None, None)
    worker[0].state.stopped = True


async def test_one_worker_polls_the_other_shows_the_same_readings_and_takes_over(
        workers: list[tuple[FastAPI, LifespanManager]], database: Database) -> None:
    (first, _), (second, _) = workers
    assert first.state.jobs.leadership.held and not second.state.jobs.leadership.held
    async with database.session() as session:
        await accounts.create_user(session, username='root', role='admin')
        _, key = await accounts.create_api_key(session, username='root')
    async with SidecarSim(SidecarConfig(gpus=2, key=KEY)) as sidecar:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(first), base_url='http://worker1',
                                     headers={'X-API-Key': key}) as admin:
            node = await admin.post('/api/admin/nodes/register', json={
                'name': 'gpu1', 'hostname': 'gpu1', 'sidecar_url': sidecar.url, 'sidecar_key': KEY})
        assert node.status_code == 201, node.text

        await until(lambda: first.state.node_poller.polls >= 4)
        assert second.state.node_poller.polls == 0  # never a second poll of the same sidecar
        await until(lambda: bool(second.state.node_poller.snapshots))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(second), base_url='http://worker2',
                                     headers={'X-API-Key': key}) as other:
            listed = (await other.get('/api/admin/nodes')).json()
        assert listed[0]['status'] == 'online' and len(listed[0]['gpus']) == 2  # the first worker's reading

        await stop(workers[0])  # the first worker shuts down and lets go of the lease
        await until(lambda: second.state.jobs.leadership.held)
        polls = second.state.node_poller.polls
        await until(lambda: second.state.node_poller.polls > polls)

    async with database.session() as session:
        leases = list(await session.exec(select(JobLease)))
    assert [lease.holder for lease in leases] == [second.state.jobs.leadership.holder]
