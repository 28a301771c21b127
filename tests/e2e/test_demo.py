"""A newcomer's first minute: `mindrouter serve --demo` answers real API calls with streamed tokens from
simulated engines, clearly marked as such, and a normal start leaves nothing simulated behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from tests.e2e.processes import free_port, running

BIN = Path(sys.executable).parent


def test_demo_serves_streamed_tokens_and_a_normal_start_removes_the_simulated_backends(
        isolated_settings: Path) -> None:
    env = {**os.environ, 'DATA_DIR': str(isolated_settings), 'LOG_LEVEL': 'warning'}
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    with running([str(BIN / 'mindrouter'), 'serve', '--demo', '--no-ui', '--port', str(port)], env,
                 log_path=isolated_settings.parent / 'demo.log', ready_url=f'{url}/healthz'):
        key = subprocess.run([str(BIN / 'mindrouter'), 'create-key', 'admin'], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()  # the demo seeded the users
        backends = httpx.get(f'{url}/api/admin/backends', headers={'X-API-Key': key}).json()
        assert {b['name'] for b in backends} == {'demo-ollama (simulated)', 'demo-vllm (simulated)'}
        assert all(b['simulated'] and b['status'] == 'healthy' for b in backends)

        with openai.OpenAI(base_url=f'{url}/v1', api_key=key, max_retries=0) as client:
            chunks = list(client.chat.completions.create(
                model='llama3.2', stream=True, max_tokens=5, messages=[{'role': 'user', 'content': 'Hello!'}]))
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 5

    port = free_port()
    url = f'http://127.0.0.1:{port}'
    with running([str(BIN / 'mindrouter'), 'serve', '--no-ui', '--port', str(port)], env,
                 log_path=isolated_settings.parent / 'normal.log', ready_url=f'{url}/healthz'):
        assert httpx.get(f'{url}/api/admin/backends', headers={'X-API-Key': key}).json() == []


def test_demo_is_refused_in_production(isolated_settings: Path) -> None:
    env = {**os.environ, 'DATA_DIR': str(isolated_settings), 'MINDROUTER_ENV': 'production',
           'SECRET_KEY': 'Zq8-vL2m_R7tXw4yB9nK3pH6sD1fG5jC0aE'}
    result = subprocess.run([str(BIN / 'mindrouter'), 'serve', '--demo'], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert 'mindrouter: --demo is refused when MINDROUTER_ENV=production' in result.stderr


def test_demo_needs_a_single_worker(isolated_settings: Path) -> None:
    env = {**os.environ, 'DATA_DIR': str(isolated_settings)}
    result = subprocess.run([str(BIN / 'mindrouter'), 'serve', '--demo', '--no-ui', '--workers', '2'], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and '--workers 1' in result.stderr
