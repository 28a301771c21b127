"""Turn NVML readings into the wire format of /health and /gpu-info (field names fixed by deployed gateways).

Blocking: NVML calls are synchronous C calls, so the agent runs these functions in worker threads.
Imports only the standard library at run time (the NVML protocol is needed for type checking only), so the
module works both as `sidecar.collect` and as a top-level module when gpu_agent.py is run as a script.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sidecar.nvml import NvmlApi, Process

log = logging.getLogger('gpu_agent')

T = TypeVar('T')
Json = dict[str, object]

GIB = 1024**3
MIB = 1024**2


def reason(e: BaseException) -> str:
    """A short, human-readable reason for the gateway (pynvml's messages are good; fall back to the type)."""
    text = str(e).strip()
    return text or type(e).__name__


def cuda_version_text(version: int) -> str:
    """NVML's integer CUDA driver version to the usual text: 12040 -> "12.4", 11080 -> "11.8"."""
    return f'{version // 1000}.{(version % 1000) // 10}'


class NvmlNotReady(Exception):
    """NVML failed to initialise (no driver, no GPU, package missing); the message is the reason."""


class GpuReader:
    """Owns the NVML session. Initialisation is retried on the next request after a failure, so a node whose
    driver comes up after the sidecar (or is reloaded) recovers without a restart."""

    def __init__(self, nvml: NvmlApi) -> None:
        self.nvml = nvml
        self._ready = False
        self._lock = threading.Lock()  # requests run in several worker threads; init/shutdown once at a time

    def _ensure(self) -> None:
        with self._lock:
            if self._ready:
                return
            try:
                self.nvml.init()
            except Exception as e:
                raise NvmlNotReady(f'NVML initialisation failed: {reason(e)}') from e
            self._ready = True

    def _reset(self) -> None:
        with self._lock:
            if self._ready:
                self._ready = False
                try:
                    self.nvml.shutdown()
                except Exception:
                    log.debug('nvmlShutdown failed', exc_info=True)

    def gpu_count(self) -> int:
        """Raises NvmlNotReady with the reason when NVML cannot be used."""
        self._ensure()
        try:
            return self.nvml.device_count()
        except Exception as e:
            self._reset()  # a lost driver: initialise again next time
            raise NvmlNotReady(f'NVML device count failed: {reason(e)}') from e

    def shutdown(self) -> None:
        self._reset()

    def gpu_info(self) -> Json:
        """driver_version, cuda_version, gpu_count and gpus; raises NvmlNotReady."""
        count = self.gpu_count()
        return {
            'driver_version': _metric(self.nvml.driver_version),
            'cuda_version': _metric(lambda: cuda_version_text(self.nvml.cuda_driver_version())),
            'gpu_count': count,
            'gpus': [gpu_entry(self.nvml, i) for i in range(count)],
        }


def _metric(read: Callable[[], T], errors: list[str] | None = None) -> T | None:
    """One metric, read on its own: a failure (fans on a datacenter GPU, memory temperature on a consumer one)
    becomes null instead of failing the GPU or the response."""
    try:
        return read()
    except Exception as e:
        if errors is not None:
            errors.append(reason(e))
        return None


def gpu_entry(nvml: NvmlApi, index: int) -> Json:
    """One element of `gpus`: every field of the wire format, or `{index, error}` when the GPU cannot be read."""
    try:
        h = nvml.handle(index)
    except Exception as e:
        return {'index': index, 'error': reason(e)}
    errors: list[str] = []
    reads = 0

    def m(read: Callable[[], T]) -> T | None:
        nonlocal reads
        reads += 1
        return _metric(read, errors)

    memory = m(lambda: nvml.memory(h))
    util = m(lambda: nvml.utilization(h))
    cc = m(lambda: nvml.compute_capability(h))
    power = m(lambda: nvml.power_draw_mw(h))
    limit = m(lambda: nvml.power_limit_mw(h))
    procs = m(lambda: nvml.processes(h))
    entry: Json = {
        'index': index,
        'name': m(lambda: nvml.name(h)),
        'uuid': m(lambda: nvml.uuid(h)),
        'pci_bus_id': m(lambda: nvml.pci_bus_id(h)),
        'compute_capability': None if cc is None else f'{cc[0]}.{cc[1]}',
        'memory_total_gb': None if memory is None else round(memory.total / GIB, 2),
        'memory_used_gb': None if memory is None else round(memory.used / GIB, 2),
        'memory_free_gb': None if memory is None else round(memory.free / GIB, 2),
        'utilization_gpu': None if util is None else util[0],
        'utilization_memory': None if util is None else util[1],
        'temperature_gpu': m(lambda: nvml.temperature_gpu(h)),
        'temperature_memory': m(lambda: nvml.temperature_memory(h)),
        'power_draw_watts': None if power is None else round(power / 1000, 1),
        'power_limit_watts': None if limit is None else round(limit / 1000, 1),
        'fan_speed_percent': m(lambda: nvml.fan_speed(h)),
        'clock_sm_mhz': m(lambda: nvml.clock_sm_mhz(h)),
        'clock_memory_mhz': m(lambda: nvml.clock_memory_mhz(h)),
        # Process list failing is not "no processes": null says "unknown", [] says "idle".
        'processes': None if procs is None else [_process(p) for p in procs],
    }
    if len(errors) == reads:
        # Nothing could be read: the GPU is gone (fell off the bus, Xid error); say so instead of a row of nulls.
        return {'index': index, 'error': errors[0]}
    return entry


def _process(p: Process) -> Json:
    return {'pid': p.pid, 'gpu_memory_used_mb': None if p.used_memory is None else p.used_memory // MIB}
