"""The agent as a real process: refusal to start without a key, and serving with one.

The serving test runs the real entry point (`main`: environment, key check, uvicorn) over the fake NVML through
`python -m tests.sidecar.agent_entry`, which calls `main(nvml_api=FakeNvml())`: no GPU needed, and no test switch
in the shipped sidecar. A second test runs the unmodified `python -m sidecar.gpu_agent` on whatever this machine
has: without a GPU (or without libnvidia-ml) that is the 503 path with the reason, on a GPU node a 200.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = 'process-test-key'


def env_without_key(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('SIDECAR_', 'GPU_AGENT_'))}
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ('cmd', 'cwd', 'key'),
    [
        (['-m', 'sidecar.gpu_agent'], ROOT, None),
        (['-m', 'sidecar.gpu_agent'], ROOT, ''),
        (['-m', 'sidecar.gpu_agent'], ROOT, '   '),
        (['gpu_agent.py'], ROOT / 'sidecar', None),  # as deployed: `python gpu_agent.py` from the sidecar folder
    ],
)
def test_refuses_to_start_without_a_key(cmd: list[str], cwd: Path, key: str | None) -> None:
    env = env_without_key() if key is None else env_without_key(SIDECAR_SECRET_KEY=key)
    done = subprocess.run([sys.executable, *cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith('gpu_agent: SIDECAR_SECRET_KEY is not set; refusing to start')
    assert 'Traceback' not in done.stderr and done.stdout == ''


def test_bad_port_is_one_line_too() -> None:
    env = env_without_key(SIDECAR_SECRET_KEY=KEY, GPU_AGENT_PORT='eighty')
    cmd = [sys.executable, '-m', 'sidecar.gpu_agent']
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stderr.strip().splitlines() == [
        "gpu_agent: GPU_AGENT_PORT must be a TCP port number (1-65535), got 'eighty'"
    ]


@contextmanager
def running(args: list[str], cwd: Path = ROOT) -> Iterator[str]:
    port = free_port()
    env = env_without_key(SIDECAR_SECRET_KEY=KEY, GPU_AGENT_PORT=str(port), GPU_AGENT_HOST='127.0.0.1')
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                httpx.get(f'{url}/health', timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, 'the sidecar did not start within 30 s'
                time.sleep(0.1)
        yield url
        proc.terminate()
        _, stderr = proc.communicate(timeout=15)
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says how the process ended.
        assert proc.returncode in (0, -signal.SIGTERM) and 'Traceback' not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serves_health_over_fake_nvml_with_the_key() -> None:
    with running(['-m', 'tests.sidecar.agent_entry']) as url:
        assert httpx.get(f'{url}/health').status_code == 401
        r = httpx.get(f'{url}/health', headers={'X-Sidecar-Key': KEY})
        assert r.status_code == 200
        assert r.json() == {'status': 'ok', 'gpu_count': 2, 'sidecar_version': '1.0.0'}
        info = httpx.get(f'{url}/gpu-info', headers={'X-Sidecar-Key': KEY}).json()
        assert info['gpus'][0]['memory_total_gb'] == 79.65


def test_real_entry_point_answers_with_whatever_nvml_this_machine_has() -> None:
    with running(['gpu_agent.py'], cwd=ROOT / 'sidecar') as url:
        r = httpx.get(f'{url}/health', headers={'X-Sidecar-Key': KEY})
    body = r.json()
    if r.status_code == 503:  # no GPU here: the reason is reported, the process keeps serving
        assert body['status'] == 'error' and body['error'].startswith('NVML initialisation failed: ')
    else:
        assert r.status_code == 200 and body['status'] == 'ok' and body['gpu_count'] >= 0
    assert body['sidecar_version'] == '1.0.0'
