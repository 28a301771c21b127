"""sim/sidecar.py: the fake sidecar speaks the same wire format and auth rule as the real one."""

from __future__ import annotations

import re
import select
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sim.sidecar import SidecarConfig, SidecarSim
from tests.sidecar.shape import GPU_FIELDS, HEALTH_OK_FIELDS, check_gpu_info

ROOT = Path(__file__).resolve().parents[2]
KEY = 'fake-key'
T0 = 1_750_000_000.0


@pytest.fixture
async def node() -> AsyncIterator[SidecarSim]:
    async with SidecarSim(SidecarConfig(gpus=4, key=KEY, time_s=T0)) as sim:
        yield sim


async def get(sim: SidecarSim, path: str, key: str | None = KEY, timeout: float = 5) -> httpx.Response:
    headers = {} if key is None else {'X-Sidecar-Key': key}
    async with httpx.AsyncClient(base_url=sim.url, timeout=timeout) as c:
        return await c.get(path, headers=headers)


async def test_gpu_info_has_the_same_shape(node: SidecarSim) -> None:
    r = await get(node, '/gpu-info')
    assert r.status_code == 200
    body = r.json()
    check_gpu_info(body)
    assert body['gpu_count'] == 4 and [g['index'] for g in body['gpus']] == [0, 1, 2, 3]
    assert all(tuple(g) == GPU_FIELDS for g in body['gpus'])
    assert body['cuda_version'] == '12.4' and body['gpus'][0]['compute_capability'] == '9.0'
    # GPUs are out of phase: not all equally busy.
    assert len({g['utilization_gpu'] for g in body['gpus']}) > 1
    assert all(0 <= g['utilization_gpu'] <= 100 for g in body['gpus'])
    assert all(g['memory_used_gb'] + g['memory_free_gb'] == pytest.approx(79.65, abs=0.011) for g in body['gpus'])


async def test_readings_are_deterministic_and_drift_slowly(node: SidecarSim) -> None:
    first = (await get(node, '/gpu-info')).json()
    assert (await get(node, '/gpu-info')).json() == first
    node.config.time_s = T0 + 5
    later = (await get(node, '/gpu-info')).json()
    for a, b in zip(first['gpus'], later['gpus'], strict=True):
        assert abs(a['utilization_gpu'] - b['utilization_gpu']) <= 5
    node.config.time_s = T0 + node.config.period_s / 2
    half = (await get(node, '/gpu-info')).json()
    assert half['gpus'][0]['utilization_gpu'] != first['gpus'][0]['utilization_gpu']


async def test_health_and_auth(node: SidecarSim) -> None:
    for path in ('/health', '/gpu-info'):
        assert (await get(node, path, key=None)).status_code == 401
        r = await get(node, path, key='wrong')
        assert r.status_code == 401 and r.json()['status'] == 'error'
        assert (await get(node, path)).status_code == 200
    health = (await get(node, '/health')).json()
    assert health == {'status': 'ok', 'gpu_count': 4, 'sidecar_version': '1.0.0'}
    assert tuple(health) == HEALTH_OK_FIELDS
    assert node.stats.unauthorized == 4
    assert node.headers == {'X-Sidecar-Key': KEY}


async def test_failing_gpus_null_metrics_and_no_ipmi(node: SidecarSim) -> None:
    node.config.failing_gpus = [1]
    node.config.null_metrics = ['fan_speed_percent', 'temperature_memory']
    node.config.server_power = False
    body = (await get(node, '/gpu-info')).json()
    check_gpu_info(body)
    assert body['gpus'][1] == {'index': 1, 'error': 'Unknown Error'}
    assert body['gpus'][0]['fan_speed_percent'] is None and body['gpus'][0]['temperature_memory'] is None
    assert body['server_power'] == {'error': 'ipmitool not available'}


async def test_nvml_unavailable_fault_is_the_real_503(node: SidecarSim) -> None:
    node.config.fault = 'nvml_unavailable'
    r = await get(node, '/health')
    assert r.status_code == 503 and set(r.json()) == {'status', 'error', 'sidecar_version'}
    r = await get(node, '/gpu-info')
    assert r.status_code == 503
    check_gpu_info(r.json())
    assert r.json()['gpus'] == []


async def test_transport_faults(node: SidecarSim) -> None:
    node.config.fault = 'error_500'
    assert (await get(node, '/health')).status_code == 500
    node.config.fault = 'garbage'
    r = await get(node, '/gpu-info')
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    node.config.fault = 'refuse'
    with pytest.raises(httpx.RemoteProtocolError):
        await get(node, '/gpu-info')
    node.config.fault = 'hang'
    with pytest.raises(httpx.ReadTimeout):
        await get(node, '/health', timeout=0.3)
    node.config.fault = None
    assert (await get(node, '/health')).status_code == 200


async def test_control_routes(node: SidecarSim) -> None:
    async with httpx.AsyncClient(base_url=node.url) as c:
        r = await c.post('/_sim/config', json={'gpus': 8, 'fault': 'none'})
        assert r.status_code == 200 and r.json()['gpus'] == 8
        assert (await c.post('/_sim/config', json={'gpus': -1})).status_code == 400
        assert (await c.post('/_sim/config', json={'nope': 1})).status_code == 400
        assert (await c.get('/_sim/config')).json()['gpus'] == 8
    assert (await get(node, '/health')).json()['gpu_count'] == 8


def test_config_rejects_an_empty_key() -> None:
    with pytest.raises(ValueError, match='key'):
        SidecarSim(SidecarConfig(key=''))


def test_cli_process() -> None:
    cmd = [sys.executable, '-m', 'sim', 'sidecar', '--port', '0', '--gpus', '3', '--key', 'K']
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, 'the fake sidecar did not start within 20 s'
        match = re.search(r'sim sidecar listening on (http://127\.0\.0\.1:\d+)', proc.stdout.readline())
        assert match
        url = match.group(1)
        assert httpx.get(f'{url}/health').status_code == 401
        r = httpx.get(f'{url}/gpu-info', headers={'X-Sidecar-Key': 'K'})
        check_gpu_info(r.json())
        assert r.json()['gpu_count'] == 3
        proc.terminate()
        assert proc.wait(10) == 0
        assert 'Traceback' not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_cli_rejects_a_bad_knob() -> None:
    cmd = [sys.executable, '-m', 'sim', 'sidecar', '--port', '0', '--key', '']
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and 'key must not be empty' in done.stderr
