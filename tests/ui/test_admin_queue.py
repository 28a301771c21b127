"""The live queue, as an operator watches it: a request waiting for a busy backend shows up with its user and
model, and is gone once the backend is free (NiceGUI's simulated user, the scheduler driven directly)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from nicegui.testing import User

from core import runtime
from core.accounts import service as accounts
from core.db import Database
from core.scheduler.scheduler import Requester
from sim.config import SimConfig
from sim.server import SimServer
from tests.ui.conftest import STUDENT, rows_of, sign_in_as_admin

MODEL = 'llama3.2:latest'


@pytest.fixture
async def engine() -> AsyncIterator[SimServer]:
    async with SimServer('ollama', SimConfig(tokens=5)) as sim:
        yield sim




async def test_a_waiting_request_shows_in_the_queue_and_leaves_when_served(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    registered = await admin_api.post('/api/admin/backends/register', json={
        'name': 'one-slot', 'url': engine.url, 'engine': 'ollama', 'max_concurrent': 1})
    assert registered.status_code == 201, registered.text
    async with people.session() as session:
        student = await accounts.get_user(session, username=STUDENT[0])
    assert student.id is not None
    live_services = runtime.current()
    assert live_services is not None
    scheduler = live_services.scheduler

    await sign_in_as_admin(user)
    await user.open('/admin/queue')
    await user.should_see(marker='queue-empty', retries=30)

    # the backend's only slot is taken, and one more request has to wait for it
    running = await scheduler.acquire(MODEL, requester=Requester(user_id=student.id, cost=300))
    waiting = asyncio.create_task(scheduler.acquire(MODEL, requester=Requester(user_id=student.id, cost=200)))
    await user.should_see('1 queued', retries=30)
    await user.should_see('1 running')
    assert [(r['username'], r['model'], r['cost_tokens']) for r in rows_of(user, 'queue-requests')] == \
        [(STUDENT[0], MODEL, 200)]
    users = rows_of(user, 'queue-users')
    assert [(u['username'], u['queued'], u['running']) for u in users] == [(STUDENT[0], 1, 1)]
    assert [(b['name'], b['running'], b['queued_for']) for b in rows_of(user, 'queue-backends')] == \
        [('one-slot', '1 of 1', 1)]

    # the first finishes: the waiting one runs; then it finishes too and the queue is empty again
    running.release(used_tokens=300)
    served = await asyncio.wait_for(waiting, 5)
    await user.should_see('0 queued', retries=30)
    assert rows_of(user, 'queue-requests') == []
    served.release(used_tokens=200)
    await user.should_see(marker='queue-empty', retries=30)
