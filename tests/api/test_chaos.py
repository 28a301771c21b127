"""1,000 requests with random client aborts, engine errors and engines dying mid-stream, from several
users at once: afterwards every slot, every user's running count and the queue are back to exactly zero."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from core.accounts import service as accounts
from core.db import Database
from core.models import QuotaOverride
from sim.config import SimConfig
from sim.server import SimServer

REQUESTS = 1000
CONCURRENCY = 40


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'BACKEND_COOLDOWN': '0', 'QUEUE_TIMEOUT': '5'}  # keep every backend in play; nobody waits long


@pytest.fixture
async def engines(admin: httpx.AsyncClient) -> AsyncIterator[list[SimServer]]:
    configs = [SimConfig(token_delay_ms=2, tokens=8),  # healthy
               SimConfig(token_delay_ms=2, tokens=8, fault='error_500'),  # fails every answer
               SimConfig(token_delay_ms=2, tokens=8, fault='die_mid_stream', fault_after_tokens=3)]
    sims = [SimServer('ollama', config) for config in configs]
    for sim in sims:
        await sim.start()
    try:
        for index, sim in enumerate(sims):
            response = await admin.post('/api/admin/backends/register', json={
                'name': f'engine-{index}', 'url': sim.url, 'engine': 'ollama', 'max_concurrent': 3})
            assert response.status_code == 201, response.text
        yield sims
    finally:
        for sim in sims:
            await sim.stop()


async def test_every_counter_returns_to_zero_after_a_thousand_chaotic_requests(
        app: FastAPI, client: httpx.AsyncClient, engines: list[SimServer], database: Database) -> None:
    keys = []
    async with database.session() as session:
        for index in range(5):
            user = await accounts.create_user(session, username=f'user{index}', role='faculty')
            assert user.id is not None
            session.add(QuotaOverride(user_id=user.id, rpm_limit=0, max_concurrent=0))  # limits: another test
            keys.append((await accounts.create_api_key(session, username=f'user{index}'))[1])
        await session.commit()
    rng = random.Random(42)
    statuses: dict[str, int] = {}

    async def one(number: int) -> None:
        stream = rng.random() < 0.5
        path, body = rng.choice([
            ('/v1/chat/completions', {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': f'q{number}'}],
                                      'stream': stream}),
            ('/api/chat', {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': f'q{number}'}],
                           'stream': stream}),
            ('/anthropic/v1/messages', {'model': 'llama3.2', 'max_tokens': 8, 'stream': stream,
                                        'messages': [{'role': 'user', 'content': f'q{number}'}]})])
        request = asyncio.create_task(client.post(path, json=body, headers={'X-API-Key': rng.choice(keys)}))
        if rng.random() < 0.3:  # the client gives up at a random moment
            await asyncio.sleep(rng.uniform(0, 0.03))
            request.cancel()
        try:
            response = await request
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        except asyncio.CancelledError:
            statuses['aborted'] = statuses.get('aborted', 0) + 1

    pending: set[asyncio.Task[None]] = set()
    for number in range(REQUESTS):
        if len(pending) >= CONCURRENCY:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        pending.add(asyncio.create_task(one(number)))
    await asyncio.gather(*pending)

    assert sum(statuses.values()) == REQUESTS
    aborted = statuses.get('aborted', 0) + statuses.get('499', 0)  # cancelled before or after the app saw it
    assert statuses.get('200', 0) > 300 and aborted > 100, statuses  # a real mix
    for _ in range(100):  # abandoned streams finish their cleanup in the background
        if all(b.in_flight == 0 for b in app.state.registry.backends):
            break
        await asyncio.sleep(0.02)
    assert [b.in_flight for b in app.state.registry.backends] == [0, 0, 0]
    assert await app.state.ledger.in_flight() == {}
    assert all(app.state.ledger.user_in_flight(u) == 0 for u in range(100))
    assert app.state.scheduler.waiting == 0
    for _ in range(100):
        if all(sim.stats.in_flight == 0 for sim in engines):
            break
        await asyncio.sleep(0.02)
    assert [sim.stats.in_flight for sim in engines] == [0, 0, 0]  # no engine left generating for nobody
