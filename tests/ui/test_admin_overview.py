"""The admin overview, as an operator sees it: the cluster's health and throughput live, and who used the most
tokens, on which models, over the range they pick, exportable (NiceGUI's simulated user)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nicegui.testing import User

from core.accounts import service as accounts
from core.db import Database
from core.models import RequestLog, utcnow
from sim.config import SimConfig
from sim.server import SimServer
from tests.ui.conftest import ADMIN, STUDENT, rows_of, sign_in_as_admin


@pytest.fixture
async def engine() -> AsyncIterator[SimServer]:
    async with SimServer('ollama', SimConfig(tokens=5)) as sim:
        yield sim


async def used(database: Database, username: str, model: str, tokens: int, *, hours_ago: float = 0.1,
               times: int = 1) -> None:
    """Requests in the log, as the gateway would have written them."""
    async with database.session() as session:
        account = await accounts.get_user(session, username=username)
        for number in range(times):
            when = utcnow() - timedelta(hours=hours_ago, seconds=number)
            session.add(RequestLog(request_id=f'{username}-{model}-{hours_ago}-{number}', user_id=account.id,
                                   endpoint='/v1/chat/completions', model=model, status='completed',
                                   prompt_tokens=tokens // 2, completion_tokens=tokens - tokens // 2,
                                   created_at=when, completed_at=when))
        await session.commit()




async def should_list(user: User, marker: str, fields: tuple[str, ...], expected: list[tuple[Any, ...]]) -> None:
    """The table shows these rows (in order), once the page has loaded them."""
    shown: list[tuple[Any, ...]] = []
    for _ in range(30):
        shown = [tuple(row[f] for f in fields) for row in rows_of(user, marker)]
        if shown == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f'{marker} shows {shown}, not {expected}')


async def test_the_overview_shows_a_live_backend_and_the_top_users_and_models(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    registered = await admin_api.post('/api/admin/backends/register', json={
        'name': 'gpu-a', 'url': engine.url, 'engine': 'ollama', 'max_concurrent': 2})
    assert registered.status_code == 201, registered.text
    await used(people, STUDENT[0], 'llama3.2:latest', 600, times=3)
    await used(people, ADMIN[0], 'qwen3:0.6b', 100)
    await used(people, ADMIN[0], 'qwen3:0.6b', 5000, hours_ago=24 * 3)  # three days ago

    await sign_in_as_admin(user)
    await user.open('/admin')
    await user.should_see('Backends: 1 of 1 taking requests (1 healthy)')
    await user.should_see(marker='cluster-status', content='ok')
    await user.should_see('0 queued')
    await user.should_see(marker='throughput-chart')

    # last 24 hours: the student's three requests lead
    await should_list(user, 'top-users', ('username', 'requests', 'total_tokens'),
                      [(STUDENT[0], 3, 1800), (ADMIN[0], 1, 100)])
    await should_list(user, 'top-models', ('model', 'requests'), [('llama3.2:latest', 3), ('qwen3:0.6b', 1)])

    # last 7 days: the admin's big request three days ago counts too
    user.find(marker='top-range').elements.pop().set_value('7d')
    await should_list(user, 'top-users', ('username', 'total_tokens'), [(ADMIN[0], 5100), (STUDENT[0], 1800)])

    user.find(marker='export-users-csv').click()
    exported = (await user.download.next()).text.splitlines()
    assert exported == ['username,requests,prompt_tokens,completion_tokens,total_tokens',
                        f'{ADMIN[0]},2,2550,2550,5100', f'{STUDENT[0]},3,900,900,1800']
    user.find(marker='export-models-json').click()
    document = json.loads((await user.download.next()).content)
    assert document['range'] == '7d' and document['rows'][0]['model'] == 'qwen3:0.6b'


async def test_the_overview_says_when_nothing_is_used_yet(people: Database, live: FastAPI, user: User) -> None:
    await sign_in_as_admin(user)
    await user.open('/admin')
    await user.should_see('Backends: 0 of 0 taking requests')
    await user.should_see('Nodes: 0 online, 0 offline, 0 in all')
    assert rows_of(user, 'top-users') == []
