"""What an operator reads from a running `mindrouter serve`: how it started, then only warnings, errors and
changes of state, each once — however often the background jobs run. LOG_FORMAT=json: every line an object."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from core import __version__
from tests.e2e.processes import free_port, running

BIN = Path(sys.executable).parent
# Every background job many times a second, so that a few seconds of idling are hundreds of job runs.
BUSY_JOBS = {'NODE_POLL_INTERVAL': '0.2', 'BACKEND_CHECK_INTERVAL': '0.2', 'REGISTRY_RELOAD_INTERVAL': '0.2',
             'TELEMETRY_SAMPLE_INTERVAL': '0.2', 'LEADER_LEASE_TTL': '3', 'API_KEY_USAGE_FLUSH_INTERVAL': '0.2',
             'AUDIT_FLUSH_INTERVAL': '0.2'}
STARTED = 'Uvicorn running on'  # uvicorn's last start-up line


@contextmanager
def demo(data_dir: Path, *, ui: bool = True, **settings: str) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """`mindrouter serve --demo` at the default log level: its URL, its log file (stdout and stderr), its env."""
    env = {**os.environ, 'DATA_DIR': str(data_dir), 'LOG_LEVEL': 'info', **BUSY_JOBS, **settings}
    for name in ('LOG_FORMAT', 'ACCESS_LOG'):
        if name not in settings:
            env.pop(name, None)
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    log_path = data_dir.parent / f'gateway-{port}.log'
    command = [str(BIN / 'mindrouter'), 'serve', '--demo', '--port', str(port), *(() if ui else ('--no-ui',))]
    with running(command, env, log_path=log_path, ready_url=f'{url}/healthz'):
        wait_for(lambda: STARTED in log_path.read_text(), what=STARTED)
        yield url, log_path, env


def wait_for(condition: Callable[[], bool], *, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'not seen in {timeout} s: {what}'
        time.sleep(0.05)


def admin_key(env: dict[str, str]) -> str:
    """A key of the demo's admin (created from the shell: the server's log sees nothing of it)."""
    return subprocess.run([str(BIN / 'mindrouter'), 'create-key', 'admin'], env=env, check=True, capture_output=True,
                          text=True, timeout=60).stdout.strip()


def test_an_idle_gateway_logs_nothing_after_its_start_up_lines(isolated_settings: Path) -> None:
    with demo(isolated_settings) as (url, log_path, env):
        start_up = log_path.read_text()
        key = admin_key(env)
        seen_before = httpx.get(f'{url}/api/admin/nodes', headers={'X-API-Key': key}).json()[0]['last_seen_at']
        time.sleep(4)  # ~20 runs of each job at these intervals
        seen_after = httpx.get(f'{url}/api/admin/nodes', headers={'X-API-Key': key}).json()[0]['last_seen_at']
        idle = log_path.read_text()[len(start_up):]

    assert seen_after > seen_before  # the jobs ran: the node was polled all along
    assert idle == ''
    assert f'MindRouter {__version__} serving {url}/ (API and web UI; 1 worker; database: sqlite file ' in start_up
    assert 'apscheduler' not in start_up and 'HTTP Request' not in start_up and 'Context impl' not in start_up


def test_a_backend_that_stops_answering_is_logged_once_and_once_when_it_is_back(isolated_settings: Path) -> None:
    sim_url = f'http://127.0.0.1:{free_port()}'
    sim = [sys.executable, '-m', 'sim', 'ollama', '--port', sim_url.rsplit(':', 1)[1]]
    with running(sim, dict(os.environ), log_path=isolated_settings.parent / 'sim.log',
                 ready_url=f'{sim_url}/_sim/config'), \
            demo(isolated_settings, ui=False, BACKEND_UNHEALTHY_AFTER='2') as (url, log_path, env):
        registered = httpx.post(f'{url}/api/admin/backends/register', headers={'X-API-Key': admin_key(env)},
                                json={'name': 'gpu7', 'url': sim_url, 'engine': 'ollama'})
        assert registered.json()['status'] == 'healthy'

        httpx.post(f'{sim_url}/_sim/config', json={'fault': 'refuse', 'fault_scope': 'all'}).raise_for_status()
        wait_for(lambda: 'backend gpu7 is unhealthy' in log_path.read_text(), what='gpu7 unhealthy')
        time.sleep(2)  # ten more failed checks: none of them says anything
        httpx.post(f'{sim_url}/_sim/config', json={'fault': None}).raise_for_status()
        wait_for(lambda: 'backend gpu7 is healthy again' in log_path.read_text(), what='gpu7 healthy again')
        time.sleep(1)

    about_it = [line.split(': ', 1)[1] for line in log_path.read_text().splitlines() if 'gpu7' in line]
    assert len(about_it) == 3, about_it
    assert about_it[0] == 'backend gpu7 is healthy'
    assert about_it[1].startswith('backend gpu7 is unhealthy after 2 failed checks in a row: ')
    assert about_it[2] == 'backend gpu7 is healthy again'


def test_json_logs_are_one_object_per_line_and_access_lines_hold_no_secret(isolated_settings: Path) -> None:
    secret, prompt = 'secret-in-the-query-5d1e', 'a-prompt-nobody-logs-8c4b'
    with demo(isolated_settings, ui=False, LOG_FORMAT='json', ACCESS_LOG='true') as (url, log_path, env):
        key = admin_key(env)
        chat = {'model': 'llama3.2', 'max_tokens': 3, 'messages': [{'role': 'user', 'content': prompt}]}
        answered = httpx.post(f'{url}/v1/chat/completions?api_key={secret}', json=chat, timeout=30,
                              headers={'Authorization': f'Bearer {key}'})
        assert answered.status_code == 200
        wait_for(lambda: 'POST /v1/chat/completions 200' in log_path.read_text(), what='the access line')
    text = log_path.read_text()  # the server has stopped: its shutdown lines are in too

    lines: list[dict[str, Any]] = [orjson.loads(line) for line in text.splitlines()]
    assert all({'time', 'level', 'logger', 'message'} <= set(line) for line in lines)
    assert all(line['time'].endswith('Z') and line['level'] in ('info', 'warning') for line in lines)
    loggers = {line['logger'] for line in lines}
    assert {'mindrouter', 'uvicorn.error', 'mindrouter.demo', 'mindrouter.access'} <= loggers
    access = [line for line in lines if line['logger'] == 'mindrouter.access' and line['http']['method'] == 'POST']
    assert len(access) == 1 and access[0]['request_id'] == answered.headers['x-request-id']
    assert access[0]['http']['path'] == '/v1/chat/completions' and access[0]['http']['user'] == 'admin'
    for never in (key, secret, prompt):
        assert never not in text
