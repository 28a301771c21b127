"""The operator's story, as real processes: create a user and a key from the shell, use the key against
a running `mindrouter serve`, revoke it, watch it stop working. And the ways start-up refuses to run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.processes import REPO, free_port, running

BIN = Path(sys.executable).parent


def mindrouter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / 'mindrouter'), *args], env=env, capture_output=True, text=True, timeout=60)


@contextmanager
def serving(command: list[str], env: dict[str, str], *, port: int) -> Iterator[str]:
    base_url = f'http://127.0.0.1:{port}'
    log_path = Path(env['DATA_DIR']).parent / f'server-{port}.log'
    with running(command, env, log_path=log_path, ready_url=f'{base_url}/healthz'):
        yield base_url


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> None:
    assert result.returncode == status, result.stderr
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('mindrouter:')]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.fixture
def env(isolated_settings: Path) -> dict[str, str]:
    """A shell environment on the embedded default: SQLite in a fresh data folder, nothing else configured."""
    return {**os.environ, 'DATA_DIR': str(isolated_settings), 'LOG_LEVEL': 'warning'}


def test_operator_creates_a_user_and_key_that_work_until_revoked(env: dict[str, str]) -> None:
    assert mindrouter('migrate', env=env).returncode == 0
    assert mindrouter('create-user', 'alice', '--role', 'faculty', '--password', 'pw-alice-123',
                      '--email', 'alice@example.edu', env=env).returncode == 0
    created = mindrouter('create-key', 'alice', '--name', 'laptop', env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + '\n' and key.startswith('mr_')  # the key, and only it, on stdout

    port = free_port()
    with serving([str(BIN / 'mindrouter'), 'serve', '--port', str(port)], env, port=port) as base_url:
        assert httpx.get(f'{base_url}/v1/models', headers={'Authorization': f'Bearer {key}'}).status_code == 200
        assert httpx.get(f'{base_url}/v1/models', headers={'X-API-Key': key}).status_code == 200
        client = openai.OpenAI(base_url=f'{base_url}/v1', api_key=key, max_retries=0)
        assert list(client.models.list()) == []
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f'{base_url}/v1', api_key='mr_wrong', max_retries=0).models.list()

        listed = mindrouter('list-keys', 'alice', env=env)
        prefix = key[:11]
        assert prefix in listed.stdout and key not in listed.stdout
        assert mindrouter('revoke-key', prefix, env=env).returncode == 0
        revoked_at = time.monotonic()
        while httpx.get(f'{base_url}/v1/models', headers={'X-API-Key': key}).status_code == 200:
            assert time.monotonic() - revoked_at < 5, 'revoked key still works after 5 s'
            time.sleep(0.05)
        with pytest.raises(openai.AuthenticationError, match='revoked'):
            client.models.list()


def test_bad_input_is_one_line_on_stderr_with_status_2_and_writes_nothing(env: dict[str, str]) -> None:
    assert mindrouter('migrate', env=env).returncode == 0
    assert mindrouter('create-user', 'alice', '--role', 'student', env=env).returncode == 0

    assert_one_line_error(mindrouter('create-user', 'bob', '--role', 'wizard', env=env), 2, "unknown role 'wizard'")
    assert_one_line_error(mindrouter('create-user', 'alice', '--role', 'staff', env=env), 2, "'alice' already exists")
    assert_one_line_error(mindrouter('create-key', 'ghost', env=env), 2, "no user named 'ghost'")

    listed = mindrouter('list-keys', env=env)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1  # header only: no key was created
    assert_one_line_error(mindrouter('list-keys', 'bob', env=env), 2, "no user named 'bob'")


def test_account_commands_ask_for_migrations_on_a_fresh_database(env: dict[str, str]) -> None:
    assert_one_line_error(mindrouter('create-user', 'alice', '--role', 'student', env=env), 1, 'mindrouter migrate')


def test_an_unreachable_database_stops_start_up_with_one_line_naming_the_host(env: dict[str, str]) -> None:
    env = {**env, 'DATABASE_URL': 'mysql+aiomysql://mr:hunter2@127.0.0.1:9/mindrouter'}
    result = mindrouter('serve', '--port', str(free_port()), env=env)

    assert_one_line_error(result, 1, 'cannot reach the database at 127.0.0.1:9')
    assert 'hunter2' not in result.stderr


def test_production_without_a_strong_secret_refuses_to_start(env: dict[str, str]) -> None:
    env = {**env, 'MINDROUTER_ENV': 'production'}
    assert_one_line_error(mindrouter('serve', env=env), 1, 'SECRET_KEY is required')
    env['SECRET_KEY'] = 'changeme'
    assert_one_line_error(mindrouter('serve', env=env), 1, 'too short')


@pytest.mark.parametrize(('setting', 'accepted'), [
    ('PORT=80000', 'a whole number from 1 to 65535'),
    ('LOG_LEVEL=verbose', 'one of debug, info, warning, error'),
    ('QUOTA_PERIOD=year', 'one of day, week, month'),
    ('API_KEY_CACHE_TTL=10', 'at most 5'),
])
@pytest.mark.parametrize('command', [('serve',), ('migrate',), ('list-keys',)])
def test_a_bad_setting_is_one_line_naming_it_and_what_it_accepts(env: dict[str, str], setting: str, accepted: str,
                                                                  command: tuple[str, ...]) -> None:
    name, value = setting.split('=')
    result = mindrouter(*command, env={**env, name: value})

    assert_one_line_error(result, 1, f'setting {setting} is invalid: ', accepted)
    assert result.stderr.count('\n') == 1  # nothing else: no traceback, no pydantic dump


def test_every_bad_setting_gets_its_line_and_python_main_py_says_the_same(env: dict[str, str]) -> None:
    env = {**env, 'PORT': '80000', 'LOG_FORMAT': 'xml', 'ACCESS_LOG': 'maybe'}
    result = subprocess.run([sys.executable, str(REPO / 'main.py')], env=env, capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.splitlines() == [
        'mindrouter: setting PORT=80000 is invalid: a whole number from 1 to 65535',
        'mindrouter: setting LOG_FORMAT=xml is invalid: one of text, json',
        'mindrouter: setting ACCESS_LOG=maybe is invalid: true or false',
    ]


def test_several_workers_need_redis_to_share_their_slots(env: dict[str, str]) -> None:
    result = mindrouter('serve', '--no-ui', '--workers', '2', env=env)
    assert_one_line_error(result, 1, '--workers > 1 needs REDIS_URL')


def test_python_main_py_is_mindrouter_serve(env: dict[str, str]) -> None:
    port = free_port()
    with serving([sys.executable, str(REPO / 'main.py'), '--port', str(port)], env, port=port) as base_url:
        assert httpx.get(f'{base_url}/readyz').json()['status'] == 'ready'  # migrated on start
        assert 'MindRouter' in httpx.get(f'{base_url}/').text  # and the UI is mounted
