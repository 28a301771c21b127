"""What the served application logs per request: with ACCESS_LOG=true one line per request that says who asked
for what and how it went, and never a key, a query string or a prompt; by default nothing at all. Lines logged
while an inference request is served carry its X-Request-ID."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from app.factory import serve
from app.hotpath import HotPaths
from app.logs import JsonFormatter
from core.config import reset_settings
from sim.server import SimServer

PROMPT = 'my-private-prompt-about-7f3a'
SECRET = 'query-secret-91c2'


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'ACCESS_LOG': 'true'}


Logged = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged() -> Iterator[Logged]:
    """What was logged so far, at every level, as the JSON lines LOG_FORMAT=json writes (each formatted as it is
    logged, in the request's own context). Without the test's own client's lines (httpx logs the URLs it asks
    for, query strings included; the gateway keeps httpx at WARNING)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lambda: [entry for entry in map(orjson.loads, stream.getvalue().splitlines())
                       if entry['logger'].split('.')[0] not in ('httpx', 'httpcore')]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the application as uvicorn serves it (fast path and access line in front)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(serve(app)), base_url='http://mindrouter.test') as http:
        yield http


async def test_one_line_per_request_with_who_and_how_and_never_a_key_a_query_or_a_prompt(
        admin: httpx.AsyncClient, served: httpx.AsyncClient, logged: Logged) -> None:
    key = admin.headers['x-api-key']
    async with SimServer('ollama') as engine:
        await admin.post('/api/admin/backends/register', json={'name': 'o', 'url': engine.url, 'engine': 'ollama'})
        listed = await served.get(f'/v1/models?api_key={SECRET}&token={SECRET}',
                                  headers={'Authorization': f'Bearer {key}'})
        answered = await served.post(f'/v1/chat/completions?key={SECRET}', headers={'X-API-Key': key}, json={
            'model': 'llama3.2', 'max_tokens': 2, 'messages': [{'role': 'user', 'content': PROMPT}]})
        refused = await served.get('/v1/models', headers={'X-API-Key': 'mr_not-a-real-key'})
    assert (listed.status_code, answered.status_code, refused.status_code) == (200, 200, 401)

    lines = logged()
    access = [line for line in lines if line['logger'] == 'mindrouter.access']
    assert [line['message'] for line in access] == [
        f'GET /v1/models 200 {access[0]["http"]["duration_ms"]:.1f} ms user=root key=1',
        f'POST /v1/chat/completions 200 {access[1]["http"]["duration_ms"]:.1f} ms user=root key=1',
        f'GET /v1/models 401 {access[2]["http"]["duration_ms"]:.1f} ms',
    ]
    assert access[1]['http'] == {'method': 'POST', 'path': '/v1/chat/completions', 'status': 200,
                                 'duration_ms': access[1]['http']['duration_ms'],
                                 'user': 'root', 'key_id': 1}
    assert access[1]['request_id'] == answered.headers['x-request-id']
    assert 'request_id' not in access[0]  # not an inference request: it has none

    everything = orjson.dumps(lines).decode()
    for never in (key, key[3:], SECRET, PROMPT, 'mr_not-a-real-key'):
        assert never not in everything


async def test_by_default_no_line_per_request(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch, alice_key: str, logged: Logged) -> None:
    monkeypatch.setenv('ACCESS_LOG', 'false')
    reset_settings()
    served = serve(app)
    assert isinstance(served, HotPaths)  # nothing in front of the fast path
    async with httpx.AsyncClient(transport=httpx.ASGITransport(served), base_url='http://mindrouter.test') as http:
        assert (await http.get('/v1/models', headers={'X-API-Key': alice_key})).status_code == 200
        assert (await http.get('/healthz')).status_code == 200
    assert [line for line in logged() if line['logger'] == 'mindrouter.access'] == []


async def test_a_failover_warning_carries_the_id_of_the_request_it_happened_to(
        admin: httpx.AsyncClient, served: httpx.AsyncClient, logged: Logged) -> None:
    async with SimServer('ollama') as broken, SimServer('ollama') as fine:
        for name, engine in (('broken', broken), ('fine', fine)):
            await admin.post('/api/admin/backends/register', json={'name': name, 'url': engine.url, 'engine': 'ollama'})
        broken.config.fault, broken.config.fault_scope = 'error_500', 'all'
        request_ids = []
        for _ in range(6):  # one of them meets the broken backend first, and is served by the other
            answered = await served.post('/v1/chat/completions', headers={'X-API-Key': admin.headers['x-api-key']},
                                         json={'model': 'llama3.2', 'max_tokens': 2,
                                               'messages': [{'role': 'user', 'content': 'hi'}]})
            assert answered.status_code == 200
            request_ids.append(answered.headers['x-request-id'])
        assert broken.stats.requests_total == 1

    lines = logged()
    failover = [line for line in lines if 'failed before the first byte' in line['message']]
    assert len(failover) == 1 and failover[0]['level'] == 'warning'
    assert failover[0]['request_id'] in request_ids
    assert all(line.get('request_id') in (None, *request_ids) for line in lines)
