"""Nothing secret in any log line: a realistic session against `mindrouter serve` at its most talkative (debug
level, JSON lines, the access log on), then every line it wrote searched for every secret the session used.

The secrets: SECRET_KEY, the Brave Search API key, API keys (valid and guessed, in headers and in query strings),
passwords (accounts created by an admin, sign-ins with wrong and right passwords in a real browser, HTTP basic
auth), and a node's sidecar key. Each is looked for as it is, in the encodings a log could carry it (URL-quoted,
JSON-escaped, base64 of a basic-auth pair), and by a fragment of its middle, so a truncated leak is caught too.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson
import pytest
from selenium import webdriver

from tests.browser.conftest import browser, sign_in, wait_for_text  # noqa: F401  (browser: a fixture)
from tests.e2e.cluster import cli
from tests.e2e.processes import free_port, running
from tests.e2e.test_logs import BIN, BUSY_JOBS, admin_key

pytestmark = pytest.mark.browser


def forms_of(secret: str) -> set[str]:
    """The secret as a log line could carry it: itself, URL-quoted, JSON-escaped, and a 16-character piece of its
    middle (past the `mr_` + 8 characters an API key's display prefix shows by design)."""
    forms = {secret, quote(secret, safe=''), orjson.dumps(secret).decode()[1:-1]}
    if len(secret) >= 28:
        forms.add(secret[11:27])
    return forms


def test_no_secret_reaches_any_log_line(isolated_settings: Path, browser: webdriver.Chrome) -> None:  # noqa: F811
    secret_key = secrets.token_urlsafe(32)
    brave_key = f'BSA{secrets.token_urlsafe(24)}'
    sidecar_key = f'sidecar-{secrets.token_urlsafe(24)}'
    password = f'pw-{secrets.token_urlsafe(18)}'
    wrong_password = f'wrong-{secrets.token_urlsafe(18)}'
    guessed_key = f'mr_{secrets.token_urlsafe(32)}'
    closed = f'http://127.0.0.1:{free_port()}'  # nothing listens: the error paths, which log the most
    settings = {
        'LOG_LEVEL': 'debug',
        'LOG_FORMAT': 'json',
        'ACCESS_LOG': 'true',
        'SECRET_KEY': secret_key,
        'SEARCH_PROVIDER': 'brave',
        'BRAVE_API_KEY': brave_key,
        'BRAVE_API_URL': f'{closed}/search',
    }
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    log_path = isolated_settings.parent / 'gateway.log'  # stdout and stderr
    env = {**os.environ, 'DATA_DIR': str(isolated_settings), **BUSY_JOBS, **settings}
    command = [str(BIN / 'mindrouter'), 'serve', '--demo', '--port', str(port)]
    with running(command, env, log_path=log_path, ready_url=f'{url}/healthz', ready_within=120), \
            contextlib.ExitStack() as clients:
        admin = admin_key(env)
        as_admin = clients.enter_context(httpx.Client(base_url=url, headers={'X-API-Key': admin}, timeout=60))
        assert (
            as_admin.post(
                '/api/admin/users', json={'username': 'carol', 'role': 'student', 'password': password}
            ).status_code
            == 201
        )
        key = cli(env, 'create-key', 'carol').strip()
        assert (
            as_admin.post(
                '/api/admin/nodes/register',
                json={'name': 'gpu9', 'hostname': 'gpu9', 'sidecar_url': closed, 'sidecar_key': sidecar_key},
            ).status_code
            == 201
        )
        chat = {'model': 'qwen3:0.6b', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 5}
        client = clients.enter_context(httpx.Client(base_url=url, timeout=60))
        assert client.post('/v1/chat/completions', json=chat, headers={'Authorization': f'Bearer {key}'}).is_success
        assert (
            client.post(
                '/anthropic/v1/messages',
                json={**chat, 'max_tokens': 5},
                headers={'x-api-key': key, 'anthropic-version': '2023-06-01'},
            ).status_code
            < 500
        )
        client.post('/api/chat', json={**chat, 'stream': False}, headers={'Authorization': f'Bearer {key}'})
        client.get('/v1/models', params={'api_key': key, 'key': key, 'token': secret_key})
        client.get('/api/tags', params={'password': password})
        for _ in range(3):
            assert client.get('/v1/models', headers={'Authorization': f'Bearer {guessed_key}'}).status_code == 401
        client.get('/v1/models', headers={'Authorization': f'Basic {_basic("carol", password)}'})
        client.get('/api/admin/users', auth=('carol', password))
        client.post('/v1/search', json={'query': 'mindrouter'}, headers={'Authorization': f'Bearer {key}'})
        as_admin.post('/api/admin/nodes/1/refresh')
        sign_in(browser, url, 'carol', wrong_password)
        wait_for_text(browser, 'Wrong username or password')
        sign_in(browser, url, 'nobody-here', wrong_password)
        sign_in(browser, url, 'carol', password)
        wait_for_text(browser, 'Dashboard')
        browser.get(f'{url}/logout')
    lines = log_path.read_text().splitlines()
    for extra in isolated_settings.rglob('*.log'):
        lines += extra.read_text(errors='replace').splitlines()

    # the session did reach the talkative paths: debug lines, the access log, the node polls, the search
    log = '\n'.join(lines)
    assert '"level":"debug"' in log and '"status":401' in log
    assert 'node gpu9 is offline' in log and 'Web search with Brave Search failed' in log
    used = {
        'SECRET_KEY': secret_key,
        'BRAVE_API_KEY': brave_key,
        'sidecar key': sidecar_key,
        'password': password,
        'wrong password': wrong_password,
        'API key': key,
        'admin API key': admin,
        'guessed API key': guessed_key,
        'basic auth': _basic('carol', password),
        'basic auth (wrong)': _basic('carol', wrong_password),
    }
    leaks = [
        f'{name} in: {line[:300]}'
        for name, secret in used.items()
        for line in lines
        if any(form in line for form in forms_of(secret))
    ]
    assert not leaks, '\n'.join(leaks)


def _basic(username: str, password: str) -> str:
    return base64.b64encode(f'{username}:{password}'.encode()).decode()
