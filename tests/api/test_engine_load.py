"""Each health check also asks the engine how busy it is: vLLM's metrics, Ollama's loaded models."""

from __future__ import annotations

import asyncio

import httpx

from sim.config import SimConfig
from sim.server import SimServer


async def backend(admin: httpx.AsyncClient, name: str) -> dict[str, object]:
    found: dict[str, object] = next(b for b in (await admin.get('/api/admin/backends')).json() if b['name'] == name)
    return found


async def test_vllm_reports_running_requests_and_kv_cache_use(admin: httpx.AsyncClient) -> None:
    async with SimServer('vllm', SimConfig(token_delay_ms=30, tokens=40)) as engine:
        registered = (await admin.post('/api/admin/backends/register',
                                       json={'name': 'v', 'url': engine.url, 'engine': 'vllm'})).json()
        assert registered['engine_load'] == {'running': 0, 'waiting': 0, 'kv_cache_usage': 0.0,
                                             'loaded_models': None}
        busy = asyncio.create_task(admin.post('/v1/chat/completions', json={
            'model': 'meta-llama/Llama-3.2-1B-Instruct', 'messages': [{'role': 'user', 'content': 'long'}]}))
        for _ in range(200):  # until the engine is generating for it
            if engine.stats.running:
                break
            await asyncio.sleep(0.01)
        refreshed = (await admin.post(f'/api/admin/backends/{registered["id"]}/refresh')).json()
        assert refreshed['engine_load']['running'] == 1 and refreshed['engine_load']['kv_cache_usage'] > 0
        assert (await busy).status_code == 200


async def test_ollama_reports_the_models_it_has_loaded(admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama') as engine:
        registered = (await admin.post('/api/admin/backends/register',
                                       json={'name': 'o', 'url': engine.url, 'engine': 'ollama'})).json()
        chat = await admin.post('/api/chat', json={'model': 'llama3.2', 'stream': False,
                                                   'messages': [{'role': 'user', 'content': 'hi'}]})
        assert chat.status_code == 200
        refreshed = (await admin.post(f'/api/admin/backends/{registered["id"]}/refresh')).json()
        assert 'llama3.2:latest' in refreshed['engine_load']['loaded_models']
        assert (await backend(admin, 'o'))['engine_load'] == refreshed['engine_load']


async def test_an_admin_sets_a_models_context_length(
        admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama', SimConfig(context_length=131072)) as engine:
        await admin.post('/api/admin/backends/register', json={'name': 'o', 'url': engine.url, 'engine': 'ollama'})
        model = (await admin.get('/api/admin/models')).json()[0]
        assert (model['name'], model['context_length_max'], model['context_length']) == (
            'llama3.2:latest', 131072, 32768)  # capped by CONTEXT_LENGTH_CAP

        changed = await admin.patch('/api/admin/models/llama3.2:latest', json={'context_length_override': 65536})
        assert changed.status_code == 200 and changed.json()['context_length'] == 65536
        too_big = await admin.patch('/api/admin/models/llama3.2:latest', json={'context_length_override': 10**7})
        assert too_big.status_code == 400 and too_big.json()['error']['param'] == 'context_length_override'
        unknown = await admin.patch('/api/admin/models/nope', json={'context_length_override': 4096})
        assert unknown.status_code == 404

        cleared = await admin.patch('/api/admin/models/llama3.2:latest', json={'context_length_override': None})
        assert cleared.json()['context_length'] == 32768


async def test_a_model_is_named_in_its_settings_as_inference_names_it(admin: httpx.AsyncClient) -> None:
    """`llama3.2` is `llama3.2:latest` to a chat request, so it is to PATCH /api/admin/models too."""
    async with SimServer('ollama', SimConfig(context_length=131072)) as engine:
        await admin.post('/api/admin/backends/register', json={'name': 'o', 'url': engine.url, 'engine': 'ollama'})

        changed = await admin.patch('/api/admin/models/llama3.2', json={'context_length_override': 65536,
                                                                        'capabilities_override': ['completion']})
        assert changed.status_code == 200, changed.text
        assert (changed.json()['name'], changed.json()['context_length'], changed.json()['capabilities']) == (
            'llama3.2:latest', 65536, ['completion'])
        listed = {m['name']: m for m in (await admin.get('/api/admin/models')).json()}
        assert listed['llama3.2:latest']['context_length'] == 65536
        [logged] = (await admin.get('/api/admin/log', params={'action': 'model.settings'})).json()['rows']
        assert logged['target'] == 'model llama3.2:latest'
        assert (await admin.patch('/api/admin/models/llama3.2:8b', json={'context_length_override': 4096})
                ).status_code == 404  # another tag is another model
