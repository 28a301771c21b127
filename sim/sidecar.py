"""A fake GPU sidecar: `GET /health` and `GET /gpu-info` in the wire format of sidecar/gpu_agent.py, same auth rule.

For gateway tests and demos without GPUs. Readings are deterministic functions of (time, GPU index): they drift
slowly over `period_s`, GPUs are out of phase with each other, and `time_s` freezes the clock for exact
assertions. Faults cover what a gateway must survive from a node: refuse, hang, HTTP 500, a garbage body, and a
sidecar whose NVML is broken (503).

    async with SidecarSim(SidecarConfig(gpus=4, key='k')) as node:
        r = await client.get(f'{node.url}/gpu-info', headers={'X-Sidecar-Key': 'k'})
        node.config.fault = 'hang'   # read on every request

CLI: `python -m sim sidecar --port 8007 --gpus 4 --key K`. Control routes (no key, never faulted):
GET/POST /_sim/config, GET /_sim/stats.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hmac
import math
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sim.fake_server import FakeServer, KnobSet, json_response
from sim.http import AbortConnection, Handler, Request, Response

KEY_HEADER = 'x-sidecar-key'  # sim.http lower-cases header names
DEFAULT_PORT = 8007
DEFAULT_KEY = 'sim-sidecar-key'

# refuse: close without answering; hang: never answer; error_500: plain-text 500 (what uvicorn sends on a crash);
# garbage: 200 with a body that is not JSON; nvml_unavailable: the real agent's 503 when NVML cannot initialise.
SIDECAR_FAULTS: tuple[str, ...] = ('refuse', 'hang', 'error_500', 'garbage', 'nvml_unavailable')
NVML_ERROR = 'NVML initialisation failed: NVML Shared Library Not Found'

# Fields of a GPU entry that `null_metrics` may blank out (what a real GPU may fail to report).
NULLABLE_METRICS: tuple[str, ...] = (
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

Json = dict[str, Any]


@dataclasses.dataclass
class SidecarConfig(KnobSet):
    """Knobs, read on every request. Defaults describe a node of H100 80GB GPUs."""

    key: str = DEFAULT_KEY
    gpus: int = 2
    gpu_name: str = 'NVIDIA H100 80GB HBM3'
    memory_total_gb: float = 79.65  # 81559 MiB, what NVML reports for an H100 80GB
    power_limit_watts: float = 700.0
    compute_capability: str = '9.0'
    hostname: str = 'sim-gpu-node'
    driver_version: str = '550.90.07'
    cuda_version: str = '12.4'
    version: str = '1.0.0'  # sidecar_version
    period_s: float = 300.0  # one full swing of the readings
    time_s: float | None = None  # freeze the readings (and timestamp) at this Unix time; None = the real clock
    failing_gpus: list[int] = dataclasses.field(default_factory=list)  # these answer {index, error}
    null_metrics: list[str] = dataclasses.field(default_factory=list)  # these GPU fields are null on every GPU
    server_power: bool = True  # False: {"error": "ipmitool not available"}
    fault: str | None = None

    def validate(self) -> None:
        if not self.key:
            raise ValueError('key must not be empty (a real sidecar refuses to start without one)')
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0:
            raise ValueError('gpus must be an integer >= 0')
        if not all(isinstance(i, int) for i in self.failing_gpus):
            raise ValueError('failing_gpus must be a list of GPU indices')
        if self.memory_total_gb <= 0 or self.power_limit_watts <= 0 or self.period_s <= 0:
            raise ValueError('memory_total_gb, power_limit_watts and period_s must be > 0')
        if self.fault is not None and self.fault not in SIDECAR_FAULTS:
            raise ValueError(f'fault must be one of {", ".join(SIDECAR_FAULTS)} or null')
        unknown = set(self.null_metrics) - set(NULLABLE_METRICS)
        if unknown:
            raise ValueError(f'null_metrics: unknown fields {sorted(unknown)}')



@dataclasses.dataclass
class SidecarStats:
    health: int = 0  # authorised /health requests
    gpu_info: int = 0  # authorised /gpu-info requests
    unauthorized: int = 0
    faults: int = 0

    def to_dict(self) -> Json:
        return dataclasses.asdict(self)


def gpu_reading(config: SidecarConfig, index: int, t: float) -> Json:
    """GPU `index` at time `t`: a load that swings between ~5 % and ~95 % over `period_s`, GPUs spread in phase,
    and the other readings following the load as they do on real hardware."""
    phase = 2 * math.pi * (t / config.period_s + index / max(config.gpus, 1))
    load = 0.5 + 0.45 * math.sin(phase)
    total = config.memory_total_gb
    used = round(total * (0.1 + 0.8 * load), 2)
    limit = config.power_limit_watts
    temp = round(30 + 50 * load)
    entry: Json = {
        'index': index,
        'name': config.gpu_name,
        'uuid': f'GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f"{config.hostname}/{index}")}',
        'pci_bus_id': f'00000000:{0x18 + 0x10 * index:02X}:00.0',
        'compute_capability': config.compute_capability,
        'memory_total_gb': round(total, 2),
        'memory_used_gb': used,
        'memory_free_gb': round(total - used, 2),
        'utilization_gpu': round(100 * load),
        'utilization_memory': round(60 * load),
        'temperature_gpu': temp,
        'temperature_memory': temp + 8,
        'power_draw_watts': round(limit * (0.1 + 0.85 * load), 1),
        'power_limit_watts': round(limit, 1),
        'fan_speed_percent': round(30 + 50 * load),
        'clock_sm_mhz': round(1095 + 885 * load),
        'clock_memory_mhz': 2619,
        'processes': [{'pid': 4000 + index, 'gpu_memory_used_mb': int(used * 1024 * 0.95)}] if load > 0.1 else [],
    }
    for name in config.null_metrics:
        entry[name] = None
    return entry


def gpu_info(config: SidecarConfig, t: float) -> Json:
    gpus: list[Json] = [
        {'index': i, 'error': 'Unknown Error'} if i in config.failing_gpus else gpu_reading(config, i, t)
        for i in range(config.gpus)
    ]
    gpu_watts = sum(g.get('power_draw_watts') or 0.0 for g in gpus)
    base = 350.0  # CPUs, fans, disks: what the BMC sees beyond the GPUs
    server_power: Json = (
        {
            'instantaneous_watts': round(base + gpu_watts),
            'minimum_watts': round(base * 0.8),
            'maximum_watts': round(base + config.gpus * config.power_limit_watts),
            'average_watts': round(base + gpu_watts * 0.9),
        }
        if config.server_power
        else {'error': 'ipmitool not available'}
    )
    return {
        'hostname': config.hostname,
        'timestamp': datetime.fromtimestamp(t, UTC).isoformat(),
        'driver_version': config.driver_version,
        'cuda_version': config.cuda_version,
        'gpu_count': config.gpus,
        'gpus': gpus,
        'server_power': server_power,
        'sidecar_version': config.version,
    }


_json = json_response


class SidecarSim(FakeServer):
    """A fake sidecar on a TCP port. `config` is live (change attributes at any time); `stats` counts requests.

    `clock` supplies the time the readings are computed from (default time.time; `config.time_s` overrides it).
    """

    def __init__(self, config: SidecarConfig | None = None, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.config: SidecarConfig = dataclasses.replace(config) if config is not None else SidecarConfig()
        self.config.validate()
        self.stats: SidecarStats = SidecarStats()
        self.clock = clock
        self.router.add('GET', '/health', self._guarded(self._health))
        self.router.add('GET', '/gpu-info', self._guarded(self._gpu_info))
        self.listen(server_header='uvicorn')

    @property
    def headers(self) -> dict[str, str]:
        """The header a client needs, e.g. `httpx.get(f'{sim.url}/health', headers=sim.headers)`."""
        return {'X-Sidecar-Key': self.config.key}

    # -- routes ---------------------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.config.time_s if self.config.time_s is not None else self.clock()

    def _guarded(self, handler: Callable[[Request], Response]) -> Handler:
        """Transport faults first (a broken server fails whatever the key), then the key, then the handler."""

        async def guarded(request: Request) -> Response:
            fault = self.config.fault
            if fault in ('refuse', 'hang', 'error_500', 'garbage'):
                self.stats.faults += 1
                if fault == 'refuse':
                    raise AbortConnection
                if fault == 'hang':
                    await asyncio.get_running_loop().create_future()  # cancelled when the client or server goes
                if fault == 'error_500':
                    return Response(500, b'Internal Server Error', 'text/plain; charset=utf-8')
                return Response(200, b'{"gpus": [{"index": 0, "name": <garbage', 'application/json')
            presented = request.headers.get(KEY_HEADER)
            expected = self.config.key.encode()
            if presented is None or not hmac.compare_digest(presented.encode('utf-8', 'surrogateescape'), expected):
                self.stats.unauthorized += 1
                return _json(401, {'status': 'error', 'error': 'missing or invalid X-Sidecar-Key header'})
            return handler(request)

        return guarded

    def _health(self, request: Request) -> Response:
        self.stats.health += 1
        if self.config.fault == 'nvml_unavailable':
            self.stats.faults += 1
            return _json(503, {'status': 'error', 'error': NVML_ERROR, 'sidecar_version': self.config.version})
        return _json(200, {'status': 'ok', 'gpu_count': self.config.gpus, 'sidecar_version': self.config.version})

    def _gpu_info(self, request: Request) -> Response:
        self.stats.gpu_info += 1
        body = gpu_info(self.config, self._now())
        if self.config.fault == 'nvml_unavailable':
            self.stats.faults += 1
            body.update(driver_version=None, cuda_version=None, gpu_count=0, gpus=[], error=NVML_ERROR)
            return _json(503, body)
        return _json(200, body)


# -- CLI: python -m sim sidecar ... -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m sim sidecar', description='Run a fake MindRouter GPU sidecar.')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=DEFAULT_PORT, help='TCP port (default 8007; 0 = any free port)')
    p.add_argument('--key', default=DEFAULT_KEY, help='the X-Sidecar-Key clients must send')
    p.add_argument('--gpus', type=int, default=2)
    p.add_argument('--gpu-name', default=SidecarConfig.gpu_name)
    p.add_argument('--memory-gb', type=float, default=SidecarConfig.memory_total_gb, help='memory per GPU (GiB)')
    p.add_argument('--power-limit-w', type=float, default=SidecarConfig.power_limit_watts)
    p.add_argument('--hostname', default=SidecarConfig.hostname)
    p.add_argument('--period-s', type=float, default=SidecarConfig.period_s, help='one swing of the readings')
    p.add_argument('--fault', choices=SIDECAR_FAULTS)
    p.add_argument('--no-server-power', action='store_true', help='answer server_power as ipmitool-less nodes do')
    return p


def config_from_args(args: argparse.Namespace) -> SidecarConfig:
    return SidecarConfig(
        key=args.key,
        gpus=args.gpus,
        gpu_name=args.gpu_name,
        memory_total_gb=args.memory_gb,
        power_limit_watts=args.power_limit_w,
        hostname=args.hostname,
        period_s=args.period_s,
        fault=args.fault,
        server_power=not args.no_server_power,
    )


async def serve(config: SidecarConfig, host: str, port: int) -> None:
    await SidecarSim(config).serve_until_signalled('sidecar', host, port)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        config.validate()
    except ValueError as e:
        print(f'python -m sim sidecar: {e}', file=sys.stderr)
        return 2
    asyncio.run(serve(config, args.host, args.port))
    return 0
