"""What anyone may see about the cluster: /status with alerts, tokens served, daily trends, throughput."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sim.server import SimServer

CHAT = {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'count me'}], 'max_tokens': 3}


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'AUDIT_FLUSH_INTERVAL': '0.05'}


async def test_status_counts_backends_and_raises_alerts(admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama') as engine:
        backend = (await admin.post('/api/admin/backends/register',
                                    json={'name': 'gpu1', 'url': engine.url, 'engine': 'ollama'})).json()
        anonymous = httpx.AsyncClient(transport=admin._transport, base_url='http://test')  # no key needed
        async with anonymous:
            ok = (await anonymous.get('/status')).json()
            assert ok['status'] == 'ok' and ok['backends']['healthy'] == 1 and 'llama3.2:latest' in ok['models']
            assert ok['alerts'] == []

            engine.config.fault, engine.config.fault_scope = 'refuse', 'all'
            for _ in range(2):  # two failed checks in a row
                await admin.post(f'/api/admin/backends/{backend["id"]}/refresh')
            down = (await anonymous.get('/status')).json()
    assert down['status'] == 'down'
    assert {alert['kind'] for alert in down['alerts']} == {'backend_unhealthy', 'no_healthy_backend'}


async def test_tokens_trends_and_throughput_follow_the_traffic(admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama') as engine:
        await admin.post('/api/admin/backends/register', json={'name': 'gpu1', 'url': engine.url, 'engine': 'ollama'})
        for _ in range(3):
            assert (await admin.post('/v1/chat/completions', json=CHAT)).status_code == 200
    await asyncio.sleep(0.5)  # the audit writer flushes every 50 ms here; the figures are then cached a while
    totals = (await admin.get('/api/cluster/total-tokens')).json()
    assert totals['requests'] == 3 and totals['completion_tokens'] == 9 and totals['total_tokens'] > 9
    trends = (await admin.get('/api/cluster/trends?days=7')).json()
    assert trends['series'][-1]['requests'] == 3 and trends['series'][-1]['active_users'] == 1
    assert (await admin.get('/api/cluster/throughput')).json()['tokens_per_second'] > 0
    assert (await admin.get('/api/cluster/trends?days=0')).status_code == 400
