"""The operator's story, as real processes: create a user and a key from the shell, use the key against
a running `mindrouter serve`, revoke it, watch it stop working. And the ways start-up refuses to run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def mindrouter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / 'mindrouter'), *args], env=env, capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(command: list[str], env: dict[str, str], *, port: int) -> Iterator[str]:
    """Run a server process until the block ends; its output goes to a file (a full pipe would block it)."""
    log_path = Path(env['DATA_DIR']).parent / f'server-{port}.log'
    with log_path.open('w') as log, subprocess.Popen(command, env=env, cwd=REPO, stdout=log,
                                                     stderr=subprocess.STDOUT) as process:
        base_url = f'http://127.0.0.1:{port}'
        try:
            _wait_until_healthy(base_url, process, log_path)
            yield base_url
        finally:
            process.terminate()
            process.wait(timeout=15)


def _wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f'server exited with {process.returncode}:\n{log_path.read_text()}')
        try:
            if httpx.get(f'{base_url}/healthz', timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f'server did not become healthy:\n{log_path.read_text()}')


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


def test_python_main_py_is_mindrouter_serve(env: dict[str, str]) -> None:
    port = free_port()
    with serving([sys.executable, str(REPO / 'main.py'), '--port', str(port)], env, port=port) as base_url:
        assert httpx.get(f'{base_url}/readyz').json()['status'] == 'ready'  # migrated on start
        assert 'MindRouter' in httpx.get(f'{base_url}/').text  # and the UI is mounted
