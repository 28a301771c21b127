"""The scheduler through the API: a user arriving behind another's flood is served next, and the admin's
queue view shows who waits, who runs and each user's deficit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from core.accounts import service as accounts
from core.db import Database
from sim.config import SimConfig
from sim.server import SimServer


@pytest.fixture
async def engine() -> AsyncIterator[SimServer]:
    async with SimServer('ollama', SimConfig(token_delay_ms=30, tokens=10)) as sim:  # 0.3 s an answer
        yield sim


async def key_for(database: Database, username: str, role: str) -> str:
    async with database.session() as session:
        await accounts.create_user(session, username=username, role=role)
        _, key = await accounts.create_api_key(session, username=username)
    return key


def chat(client: httpx.AsyncClient, key: str, text: str) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(client.post('/v1/chat/completions', headers={'X-API-Key': key}, json={
        'model': 'llama3.2', 'messages': [{'role': 'user', 'content': text}], 'max_tokens': 10}))


async def test_a_newcomer_is_served_before_the_floods_backlog_and_the_queue_shows_it(
        admin: httpx.AsyncClient, engine: SimServer, database: Database) -> None:
    registered = await admin.post('/api/admin/backends/register', json={
        'name': 'one-slot', 'url': engine.url, 'engine': 'ollama', 'max_concurrent': 1})
    assert registered.status_code == 201, registered.text
    flooder, newcomer = await key_for(database, 'flood', 'student'), await key_for(database, 'newbie', 'student')

    flood = [chat(admin, flooder, f'flood {i}') for i in range(4)]
    await asyncio.sleep(0.1)  # one runs, three queue
    question = chat(admin, newcomer, 'a quick question')
    await asyncio.sleep(0.05)

    snapshot = (await admin.get('/api/admin/queue')).json()
    assert snapshot['queued'] == 4
    users = {user['username']: user for user in snapshot['users']}
    assert users['flood']['running'] == 1 and users['flood']['queued'] == 3
    assert users['newbie']['queued'] == 1 and users['newbie']['deficit_tokens'] < users['flood']['deficit_tokens']
    assert snapshot['requests'][0]['username'] == 'newbie'  # next to be served
    assert snapshot['backends'][0]['in_flight'] == 1 and snapshot['backends'][0]['queued_for'] == 4

    finished: list[str] = []
    labelled = {task: 'flood' for task in flood} | {question: 'newbie'}
    pending = set(labelled)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in sorted(done, key=lambda t: labelled[t]):
            assert task.result().status_code == 200
            finished.append(labelled[task])
    assert finished.index('newbie') <= 1  # right after the flood's running request, not after its backlog

    empty = (await admin.get('/api/admin/queue')).json()
    assert empty['queued'] == 0 and all(u['running'] == 0 for u in empty['users'])


async def test_the_queue_is_for_admins_only(client: httpx.AsyncClient, alice_key: str) -> None:
    response = await client.get('/api/admin/queue', headers={'X-API-Key': alice_key})
    assert response.status_code == 403
