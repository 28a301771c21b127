"""The one place that talks to NVML (nvidia-ml-py's `pynvml`).

Everything above this module sees `NvmlApi`: plain ints and strings, one method per metric, each of which may
raise. Tests (and machines without a GPU) substitute another implementation of the protocol; nothing else in the
sidecar imports pynvml. Units are NVML's own (bytes, milliwatts, MHz, %, °C); conversion happens in collect.py,
so a fake only has to mimic NVML, not the wire format.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol


class MemoryInfo(NamedTuple):
    total: int  # bytes
    used: int
    free: int


class Process(NamedTuple):
    pid: int
    used_memory: int | None  # bytes; NVML reports "not available" for some processes (e.g. under WDDM or MIG)


class NvmlApi(Protocol):
    """What the sidecar needs from NVML. `handle` returns an opaque per-GPU token passed back to the metrics."""

    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def driver_version(self) -> str: ...
    def cuda_driver_version(self) -> int: ...  # e.g. 12040 for CUDA 12.4
    def device_count(self) -> int: ...
    def handle(self, index: int) -> object: ...
    def name(self, handle: object) -> str: ...
    def uuid(self, handle: object) -> str: ...
    def pci_bus_id(self, handle: object) -> str: ...
    def compute_capability(self, handle: object) -> tuple[int, int]: ...
    def memory(self, handle: object) -> MemoryInfo: ...
    def utilization(self, handle: object) -> tuple[int, int]: ...  # (gpu %, memory %)
    def temperature_gpu(self, handle: object) -> int: ...
    def temperature_memory(self, handle: object) -> int: ...
    def power_draw_mw(self, handle: object) -> int: ...
    def power_limit_mw(self, handle: object) -> int: ...
    def fan_speed(self, handle: object) -> int: ...
    def clock_sm_mhz(self, handle: object) -> int: ...
    def clock_memory_mhz(self, handle: object) -> int: ...
    def processes(self, handle: object) -> list[Process]: ...


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used at all (package missing); the message is shown to the gateway as the reason."""


def _text(value: object) -> str:
    # Older nvidia-ml-py releases return bytes for names, UUIDs and bus ids; newer ones return str.
    return value.decode(errors='replace') if isinstance(value, bytes) else str(value)


# c_nvmlValue_t member to read for each NVML_VALUE_TYPE_* of a field value.
_VALUE_MEMBERS = ('dVal', 'uiVal', 'ulVal', 'ullVal', 'sllVal', 'siVal', 'usVal')


class Nvml:
    """The real NVML through pynvml. pynvml is imported on `init`, so a missing package is a 503 reason, not a
    crash at import time. pynvml is untyped: every value is converted to a concrete type here."""

    def __init__(self) -> None:
        self._lib: Any = None

    @property
    def _nv(self) -> Any:
        if self._lib is None:
            raise NvmlUnavailable('NVML is not initialised')
        return self._lib

    def init(self) -> None:
        try:
            import pynvml  # type: ignore[import-untyped,unused-ignore]
        except ImportError as e:
            raise NvmlUnavailable(f'nvidia-ml-py is not installed ({e})') from e
        pynvml.nvmlInit()
        self._lib = pynvml

    def shutdown(self) -> None:
        if self._lib is not None:
            lib, self._lib = self._lib, None
            lib.nvmlShutdown()

    def driver_version(self) -> str:
        return _text(self._nv.nvmlSystemGetDriverVersion())

    def cuda_driver_version(self) -> int:
        return int(self._nv.nvmlSystemGetCudaDriverVersion())

    def device_count(self) -> int:
        return int(self._nv.nvmlDeviceGetCount())

    def handle(self, index: int) -> object:
        return self._nv.nvmlDeviceGetHandleByIndex(index)

    def name(self, handle: object) -> str:
        return _text(self._nv.nvmlDeviceGetName(handle))

    def uuid(self, handle: object) -> str:
        return _text(self._nv.nvmlDeviceGetUUID(handle))

    def pci_bus_id(self, handle: object) -> str:
        return _text(self._nv.nvmlDeviceGetPciInfo(handle).busId)

    def compute_capability(self, handle: object) -> tuple[int, int]:
        major, minor = self._nv.nvmlDeviceGetCudaComputeCapability(handle)
        return int(major), int(minor)

    def memory(self, handle: object) -> MemoryInfo:
        m = self._nv.nvmlDeviceGetMemoryInfo(handle)
        return MemoryInfo(int(m.total), int(m.used), int(m.free))

    def utilization(self, handle: object) -> tuple[int, int]:
        u = self._nv.nvmlDeviceGetUtilizationRates(handle)
        return int(u.gpu), int(u.memory)

    def temperature_gpu(self, handle: object) -> int:
        return int(self._nv.nvmlDeviceGetTemperature(handle, self._nv.NVML_TEMPERATURE_GPU))

    def temperature_memory(self, handle: object) -> int:
        # HBM temperature exists only as a field value; most consumer GPUs answer NOT_SUPPORTED.
        nv = self._nv
        value = nv.nvmlDeviceGetFieldValues(handle, [nv.NVML_FI_DEV_MEMORY_TEMP])[0]
        if value.nvmlReturn != nv.NVML_SUCCESS:
            raise nv.NVMLError(value.nvmlReturn)
        return int(getattr(value.value, _VALUE_MEMBERS[int(value.valueType)]))

    def power_draw_mw(self, handle: object) -> int:
        return int(self._nv.nvmlDeviceGetPowerUsage(handle))

    def power_limit_mw(self, handle: object) -> int:
        return int(self._nv.nvmlDeviceGetEnforcedPowerLimit(handle))

    def fan_speed(self, handle: object) -> int:
        return int(self._nv.nvmlDeviceGetFanSpeed(handle))

    def clock_sm_mhz(self, handle: object) -> int:
        return int(self._nv.nvmlDeviceGetClockInfo(handle, self._nv.NVML_CLOCK_SM))

    def clock_memory_mhz(self, handle: object) -> int:
        return int(self._nv.nvmlDeviceGetClockInfo(handle, self._nv.NVML_CLOCK_MEM))

    def processes(self, handle: object) -> list[Process]:
        procs = self._nv.nvmlDeviceGetComputeRunningProcesses(handle)
        return [Process(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory)) for p in procs]
