"""The real agent in-process (httpx.ASGITransport) over a fake NVML: wire format, per-metric nulls, failures."""

from __future__ import annotations

import hmac
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from sidecar import collect, gpu_agent, ipmi
from tests.sidecar.fakes import FakeNvml, failing
from tests.sidecar.shape import GPU_FIELDS, HEALTH_ERROR_FIELDS, HEALTH_OK_FIELDS, check_gpu_info

KEY = 'test-sidecar-key-0123456789abcdef'
AUTH = {'X-Sidecar-Key': KEY}
POWER = {'instantaneous_watts': 1450.0, 'minimum_watts': 300.0, 'maximum_watts': 3200.0, 'average_watts': 1400.0}


def make_client(nvml: FakeNvml, power: Callable[[], dict[str, object]] | None = None) -> httpx.AsyncClient:
    app = gpu_agent.create_app(
        KEY, nvml_api=nvml, power_reader=power or (lambda: dict(POWER)), hostname='gpu-node-7', version='9.9.9'
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url='http://sidecar')


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(FakeNvml()) as c:
        yield c


async def get_json(client: httpx.AsyncClient, path: str, status: int = 200) -> Any:
    r = await client.get(path, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.headers['content-type'] == 'application/json'
    return r.json()


async def test_gpu_info_has_every_field_with_units_and_rounding(client: httpx.AsyncClient) -> None:
    body = await get_json(client, '/gpu-info')
    check_gpu_info(body)
    assert body['hostname'] == 'gpu-node-7' and body['sidecar_version'] == '9.9.9'
    assert body['driver_version'] == '550.90.07' and body['cuda_version'] == '12.4'
    assert body['gpu_count'] == 2 and body['server_power'] == POWER
    gpu = body['gpus'][0]
    assert gpu == {
        'index': 0,
        'name': 'NVIDIA H100 80GB HBM3',
        'uuid': 'GPU-00000000-aaaa-bbbb-cccc-dddddddddddd',
        'pci_bus_id': '00000000:18:00.0',
        'compute_capability': '9.0',
        'memory_total_gb': 79.65,  # 81559 MiB in GiB, 2 dp
        'memory_used_gb': 11.5,  # 12,345,678,901 B = 11.4978 GiB
        'memory_free_gb': 68.15,
        'utilization_gpu': 87,
        'utilization_memory': 41,
        'temperature_gpu': 65,
        'temperature_memory': 72,
        'power_draw_watts': 312.5,  # 312,456 mW, 1 dp
        'power_limit_watts': 700.0,
        'fan_speed_percent': None,  # NVML "Not Supported" on datacenter GPUs: null, not an error
        'clock_sm_mhz': 1980,
        'clock_memory_mhz': 2619,
        'processes': [{'pid': 1234, 'gpu_memory_used_mb': 4096}, {'pid': 5678, 'gpu_memory_used_mb': None}],
    }
    assert tuple(gpu) == GPU_FIELDS


async def test_failing_metrics_are_null_and_the_rest_still_reads(client: httpx.AsyncClient) -> None:
    gpu = (await get_json(client, '/gpu-info'))['gpus'][1]
    nulls = {k for k, v in gpu.items() if v is None}
    assert nulls == {'temperature_memory', 'fan_speed_percent', 'power_draw_watts', 'processes'}
    assert gpu['index'] == 1 and gpu['name'] == 'NVIDIA H100 80GB HBM3' and gpu['power_limit_watts'] == 700.0


@pytest.mark.parametrize('kind', ['dead', 'lost'])
async def test_a_gpu_that_fails_entirely_becomes_index_and_error(kind: str) -> None:
    # dead: no handle; lost: a handle, but every metric fails
    nvml = FakeNvml(3, dead=[2]) if kind == 'dead' else FakeNvml(3, lost=[2])
    async with make_client(nvml) as c:
        body = await get_json(c, '/gpu-info')
    check_gpu_info(body)
    assert body['gpu_count'] == 3
    assert body['gpus'][2] == {'index': 2, 'error': 'GPU is lost'}
    assert body['gpus'][0]['name'] == 'NVIDIA H100 80GB HBM3'


async def test_nvml_init_failure_is_503_with_reason_and_retried() -> None:
    nvml = FakeNvml(init_error='NVML Shared Library Not Found')
    async with make_client(nvml) as c:
        health = await get_json(c, '/health', 503)
        assert tuple(health) == HEALTH_ERROR_FIELDS
        assert health['status'] == 'error' and health['sidecar_version'] == '9.9.9'
        assert health['error'] == 'NVML initialisation failed: NVML Shared Library Not Found'
        info = await get_json(c, '/gpu-info', 503)
        check_gpu_info(info)
        assert info['gpus'] == [] and info['gpu_count'] == 0 and 'Shared Library Not Found' in info['error']
        assert info['server_power'] == POWER  # independent of NVML
        # The driver comes up later: the next request initialises NVML, no restart needed.
        nvml.init_error = None
        assert (await get_json(c, '/health'))['gpu_count'] == 2
        await get_json(c, '/health')
    assert nvml.init_calls == 3  # two failed tries, then one success kept


async def test_health_ok(client: httpx.AsyncClient) -> None:
    body = await get_json(client, '/health')
    assert body == {'status': 'ok', 'gpu_count': 2, 'sidecar_version': '9.9.9'}
    assert tuple(body) == HEALTH_OK_FIELDS


async def test_server_power_failure_never_fails_the_response() -> None:
    async with make_client(FakeNvml(), failing('BMC on fire')) as c:
        body = await get_json(c, '/gpu-info')
    assert body['server_power'] == {'error': 'server power unavailable: BMC on fire'}
    assert body['gpu_count'] == 2


@pytest.mark.parametrize('path', ['/health', '/gpu-info'])
@pytest.mark.parametrize(
    ('headers', 'status'),
    [
        ({}, 401),
        ({'X-Sidecar-Key': 'wrong'}, 401),
        ({'X-Sidecar-Key': KEY + 'x'}, 401),
        ({'X-Sidecar-Key': ''}, 401),
        ({'x-sidecar-key': KEY}, 200),  # header names are case-insensitive
    ],
)
async def test_auth_on_every_endpoint(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], status: int
) -> None:
    r = await client.get(path, headers=headers)
    assert r.status_code == status
    if status == 401:
        assert r.json() == {'status': 'error', 'error': 'missing or invalid X-Sidecar-Key header'}


async def test_unknown_paths_are_behind_the_key_too(client: httpx.AsyncClient) -> None:
    assert (await client.get('/docs')).status_code == 401
    assert (await client.get('/docs', headers=AUTH)).status_code == 404  # no OpenAPI UI on a sidecar


async def test_key_is_compared_with_hmac_compare_digest(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, 'compare_digest', spy)  # gpu_agent calls it through the hmac module
    assert (await client.get('/health', headers={'X-Sidecar-Key': 'nope'})).status_code == 401
    assert (await client.get('/gpu-info', headers=AUTH)).status_code == 200
    assert calls == [(b'nope', KEY.encode()), (KEY.encode(), KEY.encode())]


async def test_non_ascii_key_header_is_401_not_500(client: httpx.AsyncClient) -> None:
    r = await client.get('/health', headers=[(b'X-Sidecar-Key', 'clé'.encode('latin-1'))])
    assert r.status_code == 401


def test_create_app_rejects_an_empty_key() -> None:
    with pytest.raises(ValueError, match='must not be empty'):
        gpu_agent.create_app('', nvml_api=FakeNvml())


def test_cuda_version_text() -> None:
    assert collect.cuda_version_text(12040) == '12.4'
    assert collect.cuda_version_text(11080) == '11.8'
    assert collect.cuda_version_text(13000) == '13.0'


def test_ipmitool_output_parsing() -> None:
    out = """
    Instantaneous power reading:                   452 Watts
    Minimum during sampling period:                 88 Watts
    Maximum during sampling period:                910 Watts
    Average power reading over sample period:      431 Watts
    IPMI timestamp:                           Thu Nov 26 19:51:11 2026
    Sampling period:                          00000001 Seconds.
    Power reading state is:                   activated
"""
    assert ipmi.parse_power_reading(out) == {
        'instantaneous_watts': 452.0,
        'minimum_watts': 88.0,
        'maximum_watts': 910.0,
        'average_watts': 431.0,
    }
    assert ipmi.parse_power_reading('Power reading state is: deactivated') == {
        'error': 'no power reading in ipmitool output'
    }


def test_no_ipmitool_is_an_error_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    assert ipmi.read_server_power() == {'error': 'ipmitool not available'}


def test_ipmitool_timeout_is_an_error_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*args: object, **kwargs: object) -> None:
        assert kwargs['timeout'] == 5.0
        raise subprocess.TimeoutExpired('ipmitool', 5.0)

    monkeypatch.setattr(shutil, 'which', lambda name: '/usr/bin/ipmitool')
    monkeypatch.setattr(subprocess, 'run', slow)
    assert ipmi.read_server_power() == {'error': 'ipmitool timed out after 5 s'}
