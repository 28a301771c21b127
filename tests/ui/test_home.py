"""The public status page, as a visitor sees it (NiceGUI's simulated user, no browser)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from nicegui.testing import User
from sqlalchemy import func, select

from core.config import reset_settings
from core.db import Database
from core.models import RequestLog
from sim import SimConfig, SimServer
from tests.ui.conftest import STUDENT, log_in

MODELS = ['meta-llama/Llama-3.2-1B-Instruct', 'BAAI/bge-small-en-v1.5']


@pytest.fixture
def quick_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit writer flushes every 50 ms (list it before `live`), so served tokens show at once."""
    monkeypatch.setenv('AUDIT_FLUSH_INTERVAL', '0.05')
    reset_settings()


@pytest.fixture
async def engine(admin_api: httpx.AsyncClient) -> AsyncIterator[SimServer]:
    """A vLLM engine with two models, registered as backend 'gpu-a'."""
    async with SimServer('vllm', SimConfig(models=MODELS, tokens=5)) as sim:
        response = await admin_api.post('/api/admin/backends/register',
                                        json={'name': 'gpu-a', 'url': sim.url, 'engine': 'vllm'})
        assert response.status_code == 201 and response.json()['status'] == 'healthy', response.text
        yield sim


async def value(user: User, marker: str) -> str:
    """The big figure of one status card."""
    await user.should_see(marker=f'{marker}-value')
    (label,) = user.find(marker=f'{marker}-value').elements
    return str(label.text)


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
async def test_a_visitor_sees_what_mindrouter_is_and_that_it_is_serving(migrated_url: str, user: User) -> None:
    await user.open('/')
    await user.should_see('MindRouter')
    await user.should_see('Serving: database reachable and up to date.')
    await user.should_see('Authorization: Bearer KEY')
    await user.should_see('No backends registered yet', marker='cluster-status')


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
async def test_a_visitor_is_told_when_the_database_needs_migrating(configured_url: str, user: User) -> None:
    await user.open('/')
    await user.should_see('Database schema is out of date')
    await user.should_see('Status unknown', marker='cluster-status')


async def test_a_visitor_sees_the_figures_of_a_live_cluster(
        quick_audit: None, people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer,
        user: User) -> None:
    chat = {'model': MODELS[0], 'messages': [{'role': 'user', 'content': 'count me in'}]}
    answer = await admin_api.post('/v1/chat/completions', json=chat)
    assert answer.status_code == 200, answer.text
    for _ in range(100):  # the audit writer records the request a moment later
        async with people.session() as session:
            if (await session.exec(select(func.count()).select_from(RequestLog))).one()[0]:
                break
        await asyncio.sleep(0.05)

    await user.open('/')
    await user.should_see('All systems operational', marker='cluster-status')
    assert await value(user, 'stat-backends') == '1 / 1'
    assert await value(user, 'stat-models') == '2'
    assert await value(user, 'stat-nodes') == '0 / 0'
    assert await value(user, 'stat-tokens') == str(answer.json()['usage']['total_tokens'])
    assert await value(user, 'stat-throughput') == '0.08 tok/s'  # 5 tokens over the last minute
    await user.should_see(marker='throughput-chart')
    await user.should_see(marker='no-alerts')
    await user.should_see("OpenAI(base_url='http://test/v1'", marker='snippet-openai')

    await user.open('/models')
    await user.should_see(MODELS[0])
    await user.should_see('gpu-a')


async def test_an_open_page_shows_the_cluster_going_down_with_its_alerts(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    await user.open('/')
    await user.should_see('All systems operational', marker='cluster-status')

    engine.config.fault, engine.config.fault_scope = 'refuse', 'all'  # the engine is gone
    backend_id = (await admin_api.get('/api/admin/backends')).json()[0]['id']
    for _ in range(2):  # two failed checks in a row take it out
        await admin_api.post(f'/api/admin/backends/{backend_id}/refresh')

    # the open page catches up by itself at its next refresh (every 5 s), without a reload
    await user.should_see('Down: no backend is taking requests', marker='cluster-status', retries=80)
    await user.should_see('backend gpu-a fails its health checks', marker='alert')
    await user.should_see('no backend is taking requests', marker='alert')
    assert await value(user, 'stat-backends') == '0 / 1'
    await user.should_see('1 unhealthy', marker='stat-backends-caption')


async def test_a_visitor_is_invited_to_log_in_and_a_signed_in_user_to_the_dashboard(
        people: Database, user: User) -> None:
    await user.open('/')
    await user.should_see('Log in', marker='cta-login')
    await user.should_not_see(marker='cta-dashboard')

    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=30)  # the password hash takes its time
    await user.open('/')
    await user.should_see(marker='cta-dashboard')
    await user.should_not_see(marker='cta-login')
    user.find(marker='cta-dashboard').click()
    await user.should_see(marker='page-title')
