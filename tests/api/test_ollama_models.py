"""An admin pulls a model onto an Ollama backend (watching the progress) and deletes it again."""

from __future__ import annotations

import httpx
import orjson

from sim.server import SimServer


async def test_pull_streams_progress_then_serves_the_model_and_delete_removes_it(admin: httpx.AsyncClient) -> None:
    async with SimServer('ollama') as engine:
        backend = (await admin.post('/api/admin/backends/register',
                                    json={'name': 'gpu1', 'url': engine.url, 'engine': 'ollama'})).json()
        pulled = await admin.post(f'/api/admin/backends/{backend["id"]}/ollama/pull', json={'model': 'gemma3:1b'})
        lines = [orjson.loads(line) for line in pulled.text.splitlines()]
        assert pulled.headers['content-type'].startswith('application/x-ndjson')
        assert lines[0]['status'] == 'pulling manifest'
        assert {'status': 'success'} in lines and lines[-1] == {'status': 'models refreshed'}
        catalog = {m['id'] for m in (await admin.get('/v1/models')).json()['data']}
        assert 'gemma3:1b' in catalog

        deleted = await admin.post(f'/api/admin/backends/{backend["id"]}/ollama/delete', json={'model': 'gemma3:1b'})
        assert deleted.status_code == 200
        assert 'gemma3:1b' not in {m['name'] for m in deleted.json()['models']}
        missing = await admin.post(f'/api/admin/backends/{backend["id"]}/ollama/delete', json={'model': 'gemma3:1b'})
        assert missing.status_code == 404
        bad = await admin.post(f'/api/admin/backends/{backend["id"]}/ollama/delete', json={'model': 'a b'})
        assert bad.status_code == 400 and bad.json()['error']['param'] == 'model'


async def test_only_ollama_backends_manage_models(admin: httpx.AsyncClient) -> None:
    async with SimServer('vllm') as engine:
        backend = (await admin.post('/api/admin/backends/register',
                                    json={'name': 'v', 'url': engine.url, 'engine': 'vllm'})).json()
        refused = await admin.post(f'/api/admin/backends/{backend["id"]}/ollama/pull', json={'model': 'x'})
        assert refused.status_code == 400 and 'Ollama' in refused.json()['error']['message']


async def test_a_pull_refused_before_its_first_progress_line_is_an_error_status_not_a_200(
        admin: httpx.AsyncClient) -> None:
    """Found by Schemathesis (tests/hostile/test_fuzz.py): a malformed name used to stream a 200 with an error line."""
    async with SimServer('ollama') as engine:
        backend = (await admin.post('/api/admin/backends/register',
                                    json={'name': 'gpu1', 'url': engine.url, 'engine': 'ollama'})).json()
        bad = await admin.post(f'/api/admin/backends/{backend["id"]}/ollama/pull', json={'model': '', 'stream': True})
        assert bad.status_code == 400 and bad.json()['error']['param'] == 'model'
    gone = await admin.post(f'/api/admin/backends/{backend["id"]}/ollama/pull', json={'model': 'gemma3:1b'})
    assert gone.status_code == 502 and gone.json()['error']['message'].startswith('the pull from')
