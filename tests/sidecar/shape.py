"""The /gpu-info and /health wire format (upstream §5.1), checked the same way for the real agent and the fake."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

TOP_FIELDS = (
    'hostname',
    'timestamp',
    'driver_version',
    'cuda_version',
    'gpu_count',
    'gpus',
    'server_power',
    'sidecar_version',
)
GPU_FIELDS = (
    'index',
    'name',
    'uuid',
    'pci_bus_id',
    'compute_capability',
    'memory_total_gb',
    'memory_used_gb',
    'memory_free_gb',
    'utilization_gpu',
    'utilization_memory',
    'temperature_gpu',
    'temperature_memory',
    'power_draw_watts',
    'power_limit_watts',
    'fan_speed_percent',
    'clock_sm_mhz',
    'clock_memory_mhz',
    'processes',
)
SERVER_POWER_FIELDS = ('instantaneous_watts', 'minimum_watts', 'maximum_watts', 'average_watts')
HEALTH_OK_FIELDS = ('status', 'gpu_count', 'sidecar_version')
HEALTH_ERROR_FIELDS = ('status', 'error', 'sidecar_version')

# GiB to 2 decimals, W to 1 decimal.
_DECIMALS = {
    'memory_total_gb': 2,
    'memory_used_gb': 2,
    'memory_free_gb': 2,
    'power_draw_watts': 1,
    'power_limit_watts': 1,
}
_INTS = (
    'utilization_gpu',
    'utilization_memory',
    'temperature_gpu',
    'temperature_memory',
    'fan_speed_percent',
    'clock_sm_mhz',
    'clock_memory_mhz',
)


def check_gpu(gpu: dict[str, Any]) -> None:
    if 'error' in gpu:
        assert set(gpu) == {'index', 'error'} and isinstance(gpu['error'], str) and gpu['error']
        return
    assert tuple(gpu) == GPU_FIELDS
    assert isinstance(gpu['index'], int)
    for name, places in _DECIMALS.items():
        value = gpu[name]
        assert value is None or (isinstance(value, int | float) and round(value, places) == value), (name, value)
    for name in _INTS:
        assert gpu[name] is None or isinstance(gpu[name], int), (name, gpu[name])
    if gpu['compute_capability'] is not None:
        assert re.fullmatch(r'\d+\.\d+', gpu['compute_capability'])
    if gpu['processes'] is not None:
        for p in gpu['processes']:
            assert set(p) == {'pid', 'gpu_memory_used_mb'} and isinstance(p['pid'], int)
            assert p['gpu_memory_used_mb'] is None or isinstance(p['gpu_memory_used_mb'], int)


def check_gpu_info(body: dict[str, Any]) -> None:
    """Every field of §5.1 with the right types and rounding (an extra top-level `error` is allowed on 503)."""
    assert set(TOP_FIELDS) <= set(body) <= {*TOP_FIELDS, 'error'}
    stamp = datetime.fromisoformat(body['timestamp'])
    assert stamp.utcoffset() == timedelta(0)
    assert body['cuda_version'] is None or re.fullmatch(r'\d+\.\d+', body['cuda_version'])
    assert isinstance(body['gpu_count'], int) and len(body['gpus']) == body['gpu_count']
    for gpu in body['gpus']:
        check_gpu(gpu)
    power = body['server_power']
    assert set(power) == {'error'} or set(power) == set(SERVER_POWER_FIELDS), power
    assert isinstance(body['sidecar_version'], str) and body['sidecar_version']
