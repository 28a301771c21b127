"""Reading a node's sidecar (`GET /gpu-info`, header X-Sidecar-Key), in the field format of sidecars already
deployed (sidecar/README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


class SidecarError(Exception):
    """The sidecar did not answer usefully; the message says why (shown to admins)."""


@dataclass(slots=True, frozen=True)
class NodeSnapshot:
    hostname: str | None
    driver_version: str | None
    cuda_version: str | None
    sidecar_version: str | None
    gpus: tuple[dict[str, Any], ...]  # one dict per GPU, the sidecar's fields as sent
    server_power: dict[str, Any] = field(default_factory=dict)

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    def to_json(self) -> dict[str, Any]:
        return {'hostname': self.hostname, 'driver_version': self.driver_version, 'cuda_version': self.cuda_version,
                'sidecar_version': self.sidecar_version, 'gpus': list(self.gpus), 'server_power': self.server_power}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeSnapshot:
        return cls(hostname=data.get('hostname'), driver_version=data.get('driver_version'),
                   cuda_version=data.get('cuda_version'), sidecar_version=data.get('sidecar_version'),
                   gpus=tuple(gpu for gpu in data.get('gpus') or () if isinstance(gpu, dict)),
                   server_power=data.get('server_power') or {})


async def read_sidecar(client: httpx.AsyncClient, url: str, key: str, *, timeout: float = 5.0) -> NodeSnapshot:
    try:
        response = await client.get(f'{url.rstrip("/")}/gpu-info', headers={'X-Sidecar-Key': key}, timeout=timeout)
    except httpx.TimeoutException:
        raise SidecarError(f'the sidecar at {url} did not answer within {timeout:g} s') from None
    except httpx.HTTPError as exc:
        raise SidecarError(f'cannot reach the sidecar at {url}: {exc.__class__.__name__}') from exc
    if response.status_code == 401:
        raise SidecarError('the sidecar refused the key (401): the registered sidecar_key does not match')
    if response.status_code == 503:
        raise SidecarError(f'the sidecar cannot read its GPUs (503): {_reason(response)}')
    if response.status_code != 200:
        raise SidecarError(f'the sidecar answered HTTP {response.status_code}')
    try:
        body = response.json()
        gpus = tuple(gpu for gpu in body['gpus'] if isinstance(gpu, dict))
    except (ValueError, KeyError, TypeError) as exc:
        raise SidecarError('the sidecar answered something that is not GPU information') from exc
    power = body.get('server_power')
    return NodeSnapshot(hostname=body.get('hostname'), driver_version=body.get('driver_version'),
                        cuda_version=body.get('cuda_version'), sidecar_version=body.get('sidecar_version'),
                        gpus=gpus, server_power=power if isinstance(power, dict) else {})


def backend_gpus(snapshot: NodeSnapshot, gpu_indices: list[int] | None) -> list[dict[str, Any]]:
    """The GPUs a backend uses: those in its gpu_indices, or all of the node's when it names none."""
    if gpu_indices is None:
        return list(snapshot.gpus)
    wanted = set(gpu_indices)
    return [gpu for gpu in snapshot.gpus if gpu.get('index') in wanted]


def summarize(gpus: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """Figures for a set of GPUs: mean utilisation, summed memory and power, hottest temperature."""
    def values(key: str) -> list[float]:
        return [float(gpu[key]) for gpu in gpus if isinstance(gpu.get(key), int | float)]

    utilization = values('utilization_gpu')
    temperature = values('temperature_gpu')
    return {
        'gpu_count': len(gpus),
        'utilization_gpu': round(sum(utilization) / len(utilization), 1) if utilization else None,
        'memory_used_gb': round(sum(values('memory_used_gb')), 2) if gpus else None,
        'memory_total_gb': round(sum(values('memory_total_gb')), 2) if gpus else None,
        'power_draw_watts': round(sum(values('power_draw_watts')), 1) if gpus else None,
        'temperature_gpu_max': max(temperature) if temperature else None,
    }


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return 'no reason given'
    return str(body.get('error') or 'no reason given') if isinstance(body, dict) else 'no reason given'
