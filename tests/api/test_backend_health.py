"""Backends that stop answering: one blip is tolerated, repeated failed checks take a backend out until it
answers again, and a failed live request keeps new requests away while the backend is checked at once."""

from __future__ import annotations

import logging

import httpx
import pytest

from sim.server import SimServer

CHAT = {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hello'}], 'max_tokens': 2}


async def register(admin: httpx.AsyncClient, name: str, sim: SimServer) -> int:
    response = await admin.post('/api/admin/backends/register',
                                json={'name': name, 'url': sim.url, 'engine': 'ollama', 'max_concurrent': 4})
    assert response.status_code == 201, response.text
    backend_id: int = response.json()['id']
    return backend_id


async def test_a_dead_backend_goes_unhealthy_after_repeated_checks_and_comes_back(
        admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama') as sim:
        backend_id = await register(admin, 'gpu1', sim)
        sim.config.fault, sim.config.fault_scope = 'refuse', 'all'  # the engine is gone

        first = (await admin.post(f'/api/admin/backends/{backend_id}/refresh')).json()
        assert first['status'] == 'healthy' and first['last_error']  # one failed check: a blip
        second = (await admin.post(f'/api/admin/backends/{backend_id}/refresh')).json()
        assert second['status'] == 'unhealthy'
        refused = await admin.post('/v1/chat/completions', json=CHAT)
        assert refused.status_code == 503

        sim.config.fault = None  # back
        back = (await admin.post(f'/api/admin/backends/{backend_id}/refresh')).json()
        assert back['status'] == 'healthy' and back['last_error'] is None
        assert (await admin.post('/v1/chat/completions', json=CHAT)).status_code == 200


async def test_the_log_says_once_that_a_backend_went_unhealthy_and_once_that_it_is_back(
        admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger='mindrouter')
    async with SimServer('ollama') as sim:
        backend_id = await register(admin, 'gpu1', sim)
        sim.config.fault, sim.config.fault_scope = 'refuse', 'all'
        for _ in range(6):  # the second failed check takes it out; the others only confirm it
            await admin.post(f'/api/admin/backends/{backend_id}/refresh')
        sim.config.fault = None
        for _ in range(3):
            await admin.post(f'/api/admin/backends/{backend_id}/refresh')

    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == 'mindrouter.registry']
    assert [level for level, _ in lines] == ['INFO', 'WARNING', 'INFO']
    assert lines[0][1] == 'backend gpu1 is healthy'  # registered: unknown, then its first check
    assert lines[1][1].startswith('backend gpu1 is unhealthy after 2 failed checks in a row: ')
    assert lines[2][1] == 'backend gpu1 is healthy again'


async def test_a_failed_request_keeps_new_requests_off_that_backend_while_it_is_checked(
        admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama') as broken, SimServer('ollama') as fine:
        await register(admin, 'broken', broken)
        await register(admin, 'fine', fine)
        broken.config.fault, broken.config.fault_scope = 'error_500', 'all'

        served_by = []
        for _ in range(6):
            response = await admin.post('/v1/chat/completions', json=CHAT)
            assert response.status_code == 200
            served_by.append(response.headers['x-mindrouter-backend'])
        assert set(served_by) == {'fine'}
        # One live request found it broken; the cool-down kept the other five away from it.
        assert broken.stats.requests_total == 1
