"""Through nginx with the shipped configuration (tests/topology/stack.py): each path reaches the right process,
streams are not held back, the client's address is the one nginx saw and nobody else can claim, and what the
gateway writes for the browser is https."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from urllib.parse import urljoin

import httpx
import pytest

from tests.topology.stack import CLIENT_ADDRESS, Topology

TOKENS = 12
TOKEN_DELAY_MS = 150  # a 1.8-second answer: long enough to tell streamed from buffered on a loaded machine


def chat(model: str = 'llama3.2', **extra: object) -> dict[str, object]:
    return {'model': model, 'messages': [{'role': 'user', 'content': 'tell me a story'}], **extra}


def served_by(topology: Topology, method: str, path: str, *, after: int) -> str:
    """The process that answered `METHOD PATH`, from nginx's access log past its first `after` lines."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in topology.access_log()[after:]:
            if f'"{method} {path} ' in line:
                return topology.upstream(line.rsplit(' ', 1)[1])
        time.sleep(0.1)
    raise AssertionError(f'{method} {path} is not in the access log')


def audit_row(topology: Topology, request_id: str) -> dict[str, object]:
    """The request's audit row (written in batches, a moment after the answer)."""
    with topology.client(headers={'X-API-Key': topology.admin_key}) as admin:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            response = admin.get(f'{topology.url}/api/admin/audit/{request_id}')
            if response.status_code == 200:
                row: dict[str, object] = response.json()
                return row
            time.sleep(0.2)
    raise AssertionError(f'no audit row for {request_id}')


@pytest.mark.parametrize(
    ('method', 'path', 'process'),
    [
        ('GET', '/v1/models', 'api'),
        ('GET', '/api/tags', 'api'),
        ('GET', '/healthz', 'api'),
        ('GET', '/readyz', 'api'),
        ('GET', '/status', 'api'),
        ('GET', '/openapi.json', 'api'),
        ('GET', '/', 'console'),
        ('GET', '/login', 'console'),
        ('GET', '/models', 'console'),  # the public model page, not the API's /v1/models
        ('GET', '/_nicegui/client/vue.js', 'console'),
    ],
)
def test_each_path_reaches_its_process(topology: Topology, method: str, path: str, process: str) -> None:
    logged = len(topology.access_log())
    with topology.client(headers={'X-API-Key': topology.key}) as client:
        response = client.request(method, f'{topology.url}{path}')
    assert response.status_code < 500, response.text
    assert served_by(topology, method, path, after=logged).startswith(process)


def test_the_api_processes_share_the_requests(topology: Topology) -> None:
    logged = len(topology.access_log())
    with topology.client(headers={'X-API-Key': topology.key}) as client:
        for _ in range(12):
            assert client.get(f'{topology.url}/api/version').status_code == 200
    lines = [line for line in topology.access_log()[logged:] if '"GET /api/version ' in line]
    assert {topology.upstream(line.rsplit(' ', 1)[1]) for line in lines} == {'api-1', 'api-2'}


def _openai_content(line: str) -> str:
    if not line.startswith('data: {'):
        return ''
    chunk = json.loads(line[6:])
    return str(chunk['choices'][0]['delta'].get('content') or '') if chunk['choices'] else ''


def _ollama_content(line: str) -> str:
    return str(json.loads(line)['message']['content']) if line.startswith('{') else ''


def _anthropic_content(line: str) -> str:
    if not line.startswith('data: {'):
        return ''
    event = json.loads(line[6:])
    return str(event['delta'].get('text') or '') if event['type'] == 'content_block_delta' else ''


@pytest.mark.parametrize(
    ('path', 'body', 'content'),
    [
        ('/v1/chat/completions', chat(stream=True, max_tokens=TOKENS), _openai_content),
        ('/api/chat', chat(stream=True, options={'num_predict': TOKENS}), _ollama_content),
        ('/anthropic/v1/messages', chat(stream=True, max_tokens=TOKENS), _anthropic_content),
    ],
    ids=['openai-sse', 'ollama-ndjson', 'anthropic-sse'],
)
def test_a_stream_is_passed_on_token_by_token(
    topology: Topology, path: str, body: dict[str, object], content: Callable[[str], str]
) -> None:
    httpx.post(
        f'{topology.sims["sim-ollama"]}/_sim/config', json={'token_delay_ms': TOKEN_DELAY_MS, 'tokens': TOKENS}
    ).raise_for_status()
    try:
        arrivals = []
        with (
            topology.client(headers={'X-API-Key': topology.key}) as client,
            client.stream('POST', f'{topology.url}{path}', json=body) as response,
        ):
            assert response.status_code == 200
            for line in response.iter_lines():
                if content(line):
                    arrivals.append(time.monotonic())
            finished = time.monotonic()
    finally:
        httpx.post(f'{topology.sims["sim-ollama"]}/_sim/config', json={'token_delay_ms': 20}).raise_for_status()
    assert len(arrivals) >= TOKENS - 1
    # Buffered, every token would arrive at the end, together. Streamed, the first one arrives while the engine
    # still has (TOKENS - 1) delays to go: allow half of that, for a loaded machine.
    assert finished - arrivals[0] > (TOKENS - 1) * TOKEN_DELAY_MS / 1000 / 2, (arrivals[0], finished)
    assert arrivals[-1] - arrivals[0] > (TOKENS - 1) * TOKEN_DELAY_MS / 1000 / 2


def test_a_stream_asks_any_proxy_not_to_buffer_it(topology: Topology) -> None:
    """nginx's own locations stream anyway; the header is for proxies configured otherwise (it stops at nginx)."""
    with topology.client(headers={'X-API-Key': topology.key}) as client:
        direct = client.post(f'{topology.api[0]}/v1/chat/completions', json=chat(stream=True, max_tokens=2))
        proxied = client.post(f'{topology.url}/v1/chat/completions', json=chat(stream=True, max_tokens=2))
    assert direct.headers['x-accel-buffering'] == 'no'
    assert 'x-accel-buffering' not in proxied.headers
    assert proxied.headers['x-request-id'] and proxied.headers['x-mindrouter-backend'] == 'sim-ollama'


def test_the_audit_trail_has_the_address_nginx_saw_not_one_the_client_claims(topology: Topology) -> None:
    spoofed = {
        'X-API-Key': topology.key,
        'X-Forwarded-For': '203.0.113.7',
        'X-Real-IP': '203.0.113.7',
        'Forwarded': 'for=203.0.113.7',
    }
    with topology.client(headers=spoofed) as client:
        through_nginx = client.post(f'{topology.url}/v1/chat/completions', json=chat(max_tokens=2))
        direct = client.post(f'{topology.api[0]}/v1/chat/completions', json=chat(max_tokens=2))
    assert through_nginx.status_code == direct.status_code == 200
    # nginx connects from PROXY_ADDRESS, which the processes trust: they take the client from its header, the
    # address the client connected from. The client's own header names nobody, through nginx or around it.
    assert audit_row(topology, through_nginx.headers['x-request-id'])['client_ip'] == CLIENT_ADDRESS
    assert audit_row(topology, direct.headers['x-request-id'])['client_ip'] == CLIENT_ADDRESS


def test_plain_http_is_sent_to_https(topology: Topology) -> None:
    with topology.client() as client:
        response = client.get(f'{topology.http_url}/v1/models?limit=5')
    assert response.status_code == 301
    assert response.headers['location'] == 'https://127.0.0.1/v1/models?limit=5'  # (443 in production)


def test_the_console_sends_and_writes_https_addresses(topology: Topology) -> None:
    with topology.client() as client:
        redirect = client.get(f'{topology.url}/dashboard')
        home = client.get(f'{topology.url}/')
    assert redirect.status_code in (302, 303, 307)
    assert urljoin(str(redirect.url), redirect.headers['location']) == f'{topology.url}/login?redirect_to=/dashboard'
    assert not redirect.headers['location'].startswith('http:')
    # The home page tells users where the API is: the address they came to, https, port included.
    assert f'{topology.url}/v1' in home.text
    assert 'http://127.0.0.1' not in home.text


def test_the_session_cookie_is_for_https_only(topology: Topology) -> None:
    with topology.client() as client:
        page = client.get(f'{topology.url}/login')
    cookies = page.headers.get_list('set-cookie')
    assert cookies and all(re.search(r';\s*secure', cookie, re.IGNORECASE) for cookie in cookies), cookies


def test_metrics_are_for_this_machine_only(topology: Topology) -> None:
    with topology.client() as client:
        assert client.get(f'{topology.url}/metrics').status_code == 403
    local = httpx.get(f'{topology.url}/metrics', verify=False)  # from 127.0.0.1, nginx's own machine
    assert local.status_code == 200 and 'mindrouter' in local.text


def test_a_body_over_the_gateway_limit_is_refused_by_the_gateway_in_the_dialect(topology: Topology) -> None:
    """nginx's limit sits above MAX_REQUEST_BYTES, so the caller gets its API's error, not nginx's HTML page."""
    body = chat(max_tokens=2)
    body['messages'] = [{'role': 'user', 'content': 'x' * (16 * 1024 * 1024 + 1024)}]
    with topology.client(headers={'X-API-Key': topology.key}) as client:
        response = client.post(f'{topology.url}/v1/chat/completions', json=body)
    assert response.status_code == 413
    assert response.json()['error']['type'], response.text
