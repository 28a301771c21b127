"""POST /v1/search against the fake SearXNG and Brave: results in one shape, every failure in the OpenAI envelope,
one audit row per request, limits counted, the provider changed at run time, the Brave key never shown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlmodel import col, select

from app.factory import create_api_app
from core.config import reset_settings
from core.db import Database
from core.models import AdminAction, SiteSetting
from sim.search import SearchSim, expected_results

BRAVE_KEY = 'brv-api-test-subscription-token-7f3a9c'
MAX = 6  # SEARCH_MAX_RESULTS here


@pytest.fixture
async def searxng() -> AsyncIterator[SearchSim]:
    async with SearchSim('searxng') as fake:
        yield fake


@pytest.fixture
async def brave() -> AsyncIterator[SearchSim]:
    async with SearchSim('brave', key=BRAVE_KEY) as fake:
        yield fake


@pytest.fixture
def app_env(request: pytest.FixtureRequest, searxng: SearchSim, brave: SearchSim) -> dict[str, str]:
    """Both fakes configured, SearXNG the default; a test changes some with indirect parametrisation."""
    env = {'SEARCH_PROVIDER': 'searxng', 'SEARXNG_URL': searxng.url, 'BRAVE_API_KEY': BRAVE_KEY,
           'BRAVE_API_URL': brave.search_url, 'SEARCH_TIMEOUT': '2', 'SEARCH_MAX_RESULTS': str(MAX),
           'AUDIT_FLUSH_INTERVAL': '0.05'}
    return {**env, **getattr(request, 'param', {})}


def search(client: httpx.AsyncClient, key: str, body: Any) -> Any:
    return client.post('/v1/search', json=body, headers={'Authorization': f'Bearer {key}'})


async def audit_rows(app: FastAPI, admin: httpx.AsyncClient, expected: int) -> list[dict[str, Any]]:
    """The /v1/search audit rows, oldest first, once the background writer stored `expected` of them."""
    rows: list[dict[str, Any]] = []
    for _ in range(50):
        await app.state.audit.flush()
        listing = await admin.get('/api/admin/audit', params={'endpoint': '/v1/search', 'limit': 100})
        assert listing.status_code == 200, listing.text
        rows = listing.json()['rows']
        if len(rows) >= expected:
            return rows[::-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f'{len(rows)} audit rows, expected {expected}')


async def test_searxng_results_come_back_in_one_shape(client: httpx.AsyncClient, alice_key: str,
                                                      searxng: SearchSim) -> None:
    response = await search(client, alice_key, {'query': '  northern lights  ', 'max_results': 3})

    assert response.status_code == 200, response.text
    assert response.json() == {'object': 'list', 'query': 'northern lights', 'provider': 'searxng',
                               'data': expected_results('searxng', 'northern lights', 3)}
    assert response.headers['x-request-id'] and response.headers['x-mindrouter-backend'] == 'searxng'
    assert float(response.headers['x-mindrouter-overhead-ms']) >= 0
    assert response.headers['x-mindrouter-queue-ms'] == '0.00'
    assert searxng.stats.last_params == {'q': 'northern lights', 'format': 'json'}


async def test_brave_results_without_highlighting_and_max_results_by_default(
        client: httpx.AsyncClient, alice_key: str, brave: SearchSim) -> None:
    response = await client.post('/v1/search', json={'query': 'tidal power', 'provider': 'brave'},
                                 headers={'X-API-Key': alice_key})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body['provider'] == 'brave' and body['data'] == expected_results('brave', 'tidal power', MAX)
    assert not any('<strong>' in result['snippet'] for result in body['data'])
    assert brave.stats.last_params == {'q': 'tidal power', 'count': str(MAX)}
    assert response.headers['x-mindrouter-backend'] == 'brave'


@pytest.mark.parametrize('app_env', [{'SEARCH_PROVIDER': 'brave'}], indirect=True)
async def test_the_default_provider_comes_from_the_settings(client: httpx.AsyncClient, alice_key: str) -> None:
    response = await search(client, alice_key, {'query': 'x'})
    assert response.status_code == 200 and response.json()['provider'] == 'brave'


@pytest.mark.parametrize(('body', 'param'), [
    (None, None), ([1], None), ({}, 'query'), ({'query': ''}, 'query'), ({'query': 7}, 'query'),
    ({'query': 'x' * 1001}, 'query'), ({'query': 'x', 'max_results': 0}, 'max_results'),
    ({'query': 'x', 'max_results': MAX + 1}, 'max_results'), ({'query': 'x', 'max_results': 'two'}, 'max_results'),
    ({'query': 'x', 'provider': 'bing'}, 'provider'),
])
async def test_bad_input_is_a_400_naming_the_parameter(client: httpx.AsyncClient, alice_key: str,
                                                       searxng: SearchSim, body: Any, param: str | None) -> None:
    if body is None:
        response = await client.post('/v1/search', content=b'{not json', headers={'X-API-Key': alice_key})
    else:
        response = await search(client, alice_key, body)

    assert response.status_code == 400
    error = response.json()['error']
    assert error['type'] == 'invalid_request_error' and error['param'] == param
    assert param is None or param in error['message']
    assert searxng.stats.searches == 0


@pytest.mark.parametrize(('fault', 'status', 'reason'), [
    ('error_500', 502, 'HTTP 500'), ('garbage', 502, 'not valid JSON'), ('refuse', 502, 'closed the connection'),
    ('hang', 504, 'no answer within 2 s'),
])
@pytest.mark.parametrize('provider', ['searxng', 'brave'])
async def test_provider_failures_are_502_or_504_in_the_openai_envelope(
        client: httpx.AsyncClient, alice_key: str, searxng: SearchSim, brave: SearchSim, provider: str, fault: str,
        status: int, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    (searxng if provider == 'searxng' else brave).config.fault = fault

    response = await search(client, alice_key, {'query': 'x', 'provider': provider})

    assert response.status_code == status
    error = response.json()['error']
    assert (error['type'], error['code']) == ('server_error', 'upstream_error')
    assert error['message'].startswith(f'Web search with {"SearXNG" if provider == "searxng" else "Brave Search"}')
    assert reason in error['message']
    assert BRAVE_KEY not in response.text and BRAVE_KEY not in caplog.text


async def test_a_provider_that_is_gone_is_a_502(client: httpx.AsyncClient, alice_key: str,
                                                searxng: SearchSim) -> None:
    await searxng.stop()
    response = await search(client, alice_key, {'query': 'x'})
    assert response.status_code == 502 and 'cannot connect' in response.json()['error']['message']


async def test_searxng_without_json_and_a_wrong_brave_key_are_explained(
        app: FastAPI, client: httpx.AsyncClient, alice_key: str, searxng: SearchSim,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    searxng.config.json_format = False
    refused = await search(client, alice_key, {'query': 'x'})
    assert refused.status_code == 502 and 'json to search.formats' in refused.json()['error']['message']

    wrong = 'brv-wrong-token-never-to-be-shown-123'
    app.state.settings.brave_api_key = wrong
    unauthorised = await search(client, alice_key, {'query': 'x', 'provider': 'brave'})
    assert unauthorised.status_code == 502
    assert 'HTTP 401 (check BRAVE_API_KEY)' in unauthorised.json()['error']['message']
    assert wrong not in unauthorised.text and wrong not in caplog.text


@pytest.mark.parametrize('app_env', [{'SEARCH_PROVIDER': 'none'}], indirect=True)
async def test_search_turned_off_is_a_503(client: httpx.AsyncClient, alice_key: str) -> None:
    for body in ({'query': 'x'}, {'query': 'x', 'provider': 'brave'}):
        response = await search(client, alice_key, body)
        assert response.status_code == 503
        error = response.json()['error']
        assert (error['type'], error['code']) == ('server_error', 'search_unavailable')
        assert 'SEARCH_PROVIDER' in error['message']


@pytest.mark.parametrize('app_env', [{'BRAVE_API_KEY': ''}], indirect=True)
async def test_an_unconfigured_provider_is_a_503(client: httpx.AsyncClient, alice_key: str) -> None:
    response = await search(client, alice_key, {'query': 'x', 'provider': 'brave'})
    assert response.status_code == 503 and 'BRAVE_API_KEY' in response.json()['error']['message']


async def test_an_api_key_is_required(client: httpx.AsyncClient, searxng: SearchSim) -> None:
    missing = await client.post('/v1/search', json={'query': 'x'})
    assert missing.status_code == 401 and missing.json()['error']['type'] == 'authentication_error'
    assert missing.headers['www-authenticate'] == 'Bearer'
    wrong = await search(client, 'mr_not-a-key', {'query': 'x'})
    assert wrong.status_code == 401
    assert searxng.stats.searches == 0


async def test_every_request_leaves_one_audit_row(app: FastAPI, client: httpx.AsyncClient, alice_key: str,
                                                  admin: httpx.AsyncClient, brave: SearchSim) -> None:
    ok = await search(client, alice_key, {'query': 'where is the moon'})
    bad = await search(client, alice_key, {'query': 'x', 'max_results': 99})
    brave.config.fault = 'error_500'
    failed = await search(client, alice_key, {'query': 'broken', 'provider': 'brave'})
    assert (ok.status_code, bad.status_code, failed.status_code) == (200, 400, 502)

    rows = await audit_rows(app, admin, 3)
    assert [(r['status'], r['http_status'], r['model'], r['user']) for r in rows] == [
        ('completed', 200, 'search:searxng', 'alice'), ('failed', 400, 'search:searxng', 'alice'),
        ('failed', 502, 'search:brave', 'alice')]
    assert rows[0]['request_id'] == ok.headers['x-request-id']
    details = [(await admin.get(f'/api/admin/audit/{row["request_id"]}')).json() for row in rows]
    assert details[0]['error'] is None and 'max_results' in details[1]['error'] and 'HTTP 500' in details[2]['error']
    assert [d['prompt'] for d in details] == ['where is the moon', 'x', 'broken']
    assert 'https://en.wikipedia.org/wiki/where-is-the-moon-1' in details[0]['response']
    assert BRAVE_KEY not in str(details)


@pytest.mark.parametrize('app_env', [{'AUDIT_LOG_PROMPTS': 'false', 'AUDIT_LOG_RESPONSES': 'false'}], indirect=True)
async def test_prompts_are_kept_only_when_the_settings_say_so(app: FastAPI, client: httpx.AsyncClient,
                                                              alice_key: str, admin: httpx.AsyncClient) -> None:
    ok = await search(client, alice_key, {'query': 'private question'})
    assert ok.status_code == 200
    await audit_rows(app, admin, 1)
    detail = (await admin.get(f'/api/admin/audit/{ok.headers["x-request-id"]}')).json()
    assert detail['prompt'] is None and detail['response'] is None


async def test_searches_count_against_requests_per_minute(app: FastAPI, client: httpx.AsyncClient, alice_key: str,
                                                          admin: httpx.AsyncClient, searxng: SearchSim) -> None:
    limited = await admin.put('/api/admin/users/alice/quota', json={'rpm_limit': 2})
    assert limited.status_code == 200, limited.text

    answers = [await search(client, alice_key, {'query': f'q{i}'}) for i in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()['error']['code'] == 'rate_limit_exceeded' and 'retry-after' in answers[2].headers
    assert searxng.stats.searches == 2
    rows = await audit_rows(app, admin, 3)
    assert [(r['status'], r['http_status']) for r in rows][-1] == ('failed', 429)


async def test_a_client_gone_before_the_answer_is_recorded_as_cancelled(
        app: FastAPI, admin: httpx.AsyncClient, alice_key: str, searxng: SearchSim) -> None:
    searxng.config.delay_ms = 300
    body = b'{"query": "slow"}'
    scope: dict[str, Any] = {
        'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1', 'method': 'POST', 'scheme': 'http',
        'path': '/v1/search', 'raw_path': b'/v1/search', 'query_string': b'', 'root_path': '',
        'client': ('127.0.0.1', 1), 'server': ('test', 80),
        'headers': [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode()),
                    (b'x-api-key', alice_key.encode())]}
    messages = [{'type': 'http.request', 'body': body, 'more_body': False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.05)
        return {'type': 'http.disconnect'}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)

    rows = await audit_rows(app, admin, 1)
    assert (rows[0]['status'], rows[0]['http_status']) == ('cancelled', 499)


async def test_an_admin_changes_the_provider_and_the_key_at_run_time_and_the_key_is_never_shown(
        client: httpx.AsyncClient, alice_key: str, admin: httpx.AsyncClient, brave: SearchSim,
        database: Database) -> None:
    switched = await admin.put('/api/admin/settings/search_provider', json={'value': 'brave'})
    assert switched.status_code == 200 and switched.json()['value'] == 'brave'
    assert (await search(client, alice_key, {'query': 'x'})).json()['provider'] == 'brave'

    new_key = 'brv-rotated-subscription-token-5d1e'
    brave.config.key = new_key
    changed = await admin.put('/api/admin/settings/brave_api_key', json={'value': new_key})
    assert changed.status_code == 200, changed.text
    assert (changed.json()['value'], changed.json()['environment_value']) == ('(hidden)', '(hidden)')
    assert (await search(client, alice_key, {'query': 'x'})).status_code == 200  # the new key is in force

    listing = await admin.get('/api/admin/settings')
    assert listing.status_code == 200
    entries = {entry['name']: entry for entry in listing.json()['editable']}
    assert {'search_provider', 'searxng_url', 'brave_api_key', 'search_timeout'} <= set(entries)
    assert entries['brave_api_key']['value'] == '(hidden)' and entries['brave_api_key']['kind'] == 'secret'
    assert entries['search_provider']['choices'] == ['none', 'searxng', 'brave']
    assert listing.json()['read_only']['brave_api_url'] == brave.search_url
    for secret in (new_key, BRAVE_KEY):
        assert secret not in listing.text and secret not in changed.text

    async with database.session() as session:
        stored = await session.get(SiteSetting, 'brave_api_key')
        log_entries = list(await session.exec(select(AdminAction).where(col(AdminAction.target) == 'brave_api_key')))
    assert stored is not None and str(stored.value).startswith('v1:') and new_key not in str(stored.value)
    assert len(log_entries) == 1 and new_key not in str(log_entries[0].after) and BRAVE_KEY not in str(
        log_entries[0].before)
    log_page = await admin.get('/api/admin/log', params={'action': 'setting.'})
    assert new_key not in log_page.text and BRAVE_KEY not in log_page.text

    assert (await admin.put('/api/admin/settings/search_timeout', json={'value': 0})).status_code == 400
    bad_url = await admin.put('/api/admin/settings/searxng_url', json={'value': 'gopher://x'})
    assert bad_url.status_code == 400 and bad_url.json()['error']['param'] == 'searxng_url'
    off = await admin.put('/api/admin/settings/search_provider', json={'value': 'none'})
    assert off.status_code == 200
    assert (await search(client, alice_key, {'query': 'x'})).status_code == 503


async def test_a_stored_key_is_decrypted_at_the_next_start(database: Database, app_env: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch, alice_key: str) -> None:
    from core.admin import site_settings
    from core.config import Settings

    for name, value in {**app_env, 'BRAVE_API_KEY': 'brv-old'}.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    async with database.session() as session:
        await site_settings.change(session, Settings(), name='brave_api_key', value=BRAVE_KEY, actor_id=None,
                                   actor='root', via='api')
    application = create_api_app()
    async with LifespanManager(application), httpx.AsyncClient(transport=httpx.ASGITransport(application),
                                                               base_url='http://mindrouter.test') as http:
        assert application.state.settings.brave_api_key == BRAVE_KEY
        answer = await search(http, alice_key, {'query': 'x', 'provider': 'brave'})
        assert answer.status_code == 200, answer.text
        client = application.state.search_client
        assert isinstance(client, httpx.AsyncClient) and not client.is_closed
    assert client.is_closed  # the router's lifespan closed the shared client at shutdown
