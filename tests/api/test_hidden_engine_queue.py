"""A backend registered with a higher max_concurrent than its engine runs at once queues requests inside the
engine, out of fair share's reach. The engines' own signals give it away — vLLM's waiting count, the time an
Ollama answer spent waiting for a slot — and the admin is told the max_concurrent the evidence supports, and
applies it in one call. Here the simulated engines run 2 at once and are registered with 6."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from sim.config import SimConfig
from sim.server import SimServer

VLLM_MODEL = 'meta-llama/Llama-3.2-1B-Instruct'


async def register(admin: httpx.AsyncClient, engine: SimServer, kind: str, max_concurrent: int) -> dict[str, Any]:
    response = await admin.post('/api/admin/backends/register', json={
        'name': kind, 'url': engine.url, 'engine': kind, 'max_concurrent': max_concurrent})
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


async def until(condition: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError('condition not met in time')


def chats(client: httpx.AsyncClient, model: str, count: int, path: str = '/v1/chat/completions') -> asyncio.Future[Any]:
    body = {'model': model, 'messages': [{'role': 'user', 'content': 'tell me a long story'}], 'stream': False}
    return asyncio.gather(*(client.post(path, json=body) for _ in range(count)))


async def test_vllm_queueing_inside_the_engine_is_advised_after_two_checks_and_applied(admin: httpx.AsyncClient
                                                                                       ) -> None:
    async with SimServer('vllm', SimConfig(max_concurrency=2, token_delay_ms=40, tokens=60)) as engine:
        backend = await register(admin, engine, 'vllm', max_concurrent=6)
        busy = chats(admin, VLLM_MODEL, 6)
        await until(lambda: engine.stats.running == 2 and engine.stats.waiting >= 2)

        once = (await admin.post(f'/api/admin/backends/{backend["id"]}/refresh')).json()
        assert once['engine_load']['waiting'] >= 2
        assert once['capacity_advice'] is None  # one check may catch a request between arrival and admission
        twice = (await admin.post(f'/api/admin/backends/{backend["id"]}/refresh')).json()
        advice = twice['capacity_advice']
        assert (advice['suggested'], advice['registered'], advice['signal']) == (2, 6, 'vllm_waiting')
        assert 'max_concurrent is 6' in advice['evidence']

        applied = await admin.post(f'/api/admin/backends/{backend["id"]}/capacity-advice/apply')
        assert applied.status_code == 200, applied.text
        assert (applied.json()['max_concurrent'], applied.json()['capacity_advice']) == (2, None)
        assert all(r.status_code == 200 for r in await busy)
        [logged] = (await admin.get('/api/admin/log', params={'action': 'backend.apply_capacity_advice'})
                    ).json()['rows']
        assert logged['before']['max_concurrent'] == 6 and logged['after'] == {'max_concurrent': 2}

        again = await admin.post(f'/api/admin/backends/{backend["id"]}/capacity-advice/apply')
        assert again.status_code == 400 and again.json()['error']['code'] == 'no_capacity_advice'


async def test_no_advice_while_the_gateway_keeps_to_the_engines_own_limit(admin: httpx.AsyncClient) -> None:
    """Registered with the engine's real limit, the queue is ours (fair share), not the engine's."""
    async with SimServer('vllm', SimConfig(max_concurrency=2, token_delay_ms=40, tokens=30)) as engine:
        backend = await register(admin, engine, 'vllm', max_concurrent=2)
        busy = chats(admin, VLLM_MODEL, 6)
        await until(lambda: engine.stats.running == 2)
        for _ in range(3):
            checked = (await admin.post(f'/api/admin/backends/{backend["id"]}/refresh')).json()
            assert checked['engine_load']['waiting'] == 0 and checked['capacity_advice'] is None
        assert all(r.status_code == 200 for r in await busy)


async def test_ollama_answers_that_waited_for_a_slot_give_the_advice(admin: httpx.AsyncClient, app: FastAPI) -> None:
    async with SimServer('ollama', SimConfig(max_concurrency=2, token_delay_ms=15, tokens=20)) as engine:
        backend = await register(admin, engine, 'ollama', max_concurrent=6)
        answers = await chats(admin, 'llama3.2', 6, path='/api/chat')
        assert all(r.status_code == 200 for r in answers)
        waited = [a.json()['total_duration'] - a.json()['load_duration'] - a.json()['prompt_eval_duration']
                  - a.json()['eval_duration'] for a in answers]
        assert sum(w > 100e6 for w in waited) >= 3  # four of them queued inside the engine, ~300 ms or more

        await app.state.monitor.reload()  # every process stores its evidence at its next registry reload
        [listed] = (await admin.get('/api/admin/backends')).json()
        advice = listed['capacity_advice']
        assert (advice['suggested'], advice['registered'], advice['signal']) == (2, 6, 'ollama_queue_time')

        dismissed = await admin.delete(f'/api/admin/backends/{backend["id"]}/capacity-advice')
        assert dismissed.status_code == 200 and dismissed.json()['capacity_advice'] is None
        await app.state.monitor.reload()
        assert (await admin.get('/api/admin/backends')).json()[0]['capacity_advice'] is None  # said once


async def test_streamed_ollama_answers_count_too(admin: httpx.AsyncClient, app: FastAPI) -> None:
    async with SimServer('ollama', SimConfig(max_concurrency=2, token_delay_ms=15, tokens=20)) as engine:
        await register(admin, engine, 'ollama', max_concurrent=6)
        body = {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hi'}], 'stream': True}
        answers = await asyncio.gather(*(admin.post('/v1/chat/completions', json=body) for _ in range(6)))
        assert all(r.status_code == 200 for r in answers)
        await app.state.monitor.reload()
        [listed] = (await admin.get('/api/admin/backends')).json()
        assert listed['capacity_advice']['suggested'] == 2


async def test_changing_max_concurrent_clears_the_advice(admin: httpx.AsyncClient, app: FastAPI) -> None:
    async with SimServer('ollama', SimConfig(max_concurrency=2, token_delay_ms=15, tokens=20)) as engine:
        backend = await register(admin, engine, 'ollama', max_concurrent=6)
        await chats(admin, 'llama3.2', 6, path='/api/chat')
        await app.state.monitor.reload()
        assert (await admin.get('/api/admin/backends')).json()[0]['capacity_advice'] is not None
        edited = await admin.patch(f'/api/admin/backends/{backend["id"]}', json={'max_concurrent': 3})
        assert edited.status_code == 200 and edited.json()['capacity_advice'] is None
