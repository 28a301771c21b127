"""A fake NVML behind sidecar.nvml.NvmlApi: no GPU, no libnvidia-ml, no pynvml needed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from sidecar.nvml import MemoryInfo, Process

T = TypeVar('T')
GIB = 1024**3


class FakeNvmlError(Exception):
    """Stands in for pynvml.NVMLError (its str() is NVML's message, e.g. "Not Supported")."""


class FakeNvml:
    """Two H100s by default. GPU 0 reads fully except its fan (as on real datacenter GPUs); the indices in `broken`
    fail on memory temperature, fan, power draw and processes; those in `dead` fail to give a handle; those in
    `lost` give a handle but fail every metric."""

    H100_TOTAL = 81559 * 1024**2  # 79.65 GiB

    def __init__(
        self,
        count: int = 2,
        *,
        broken: Iterable[int] = (1,),
        dead: Iterable[int] = (),
        lost: Iterable[int] = (),
        init_error: str | None = None,
    ) -> None:
        self.count = count
        self.broken = set(broken)
        self.dead = set(dead)
        self.lost = set(lost)
        self.init_error = init_error
        self.init_calls = 0

    def init(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise FakeNvmlError(self.init_error)

    def shutdown(self) -> None:
        pass

    def driver_version(self) -> str:
        return '550.90.07'

    def cuda_driver_version(self) -> int:
        return 12040

    def device_count(self) -> int:
        return self.count

    def handle(self, index: int) -> object:
        if index in self.dead:
            raise FakeNvmlError('GPU is lost')
        return index

    def _read(self, handle: object, value: T, *, breaks: bool = False) -> T:
        assert isinstance(handle, int)
        if handle in self.lost:
            raise FakeNvmlError('GPU is lost')
        if breaks and handle in self.broken:
            raise FakeNvmlError('Not Supported')
        return value

    def name(self, handle: object) -> str:
        return self._read(handle, 'NVIDIA H100 80GB HBM3')

    def uuid(self, handle: object) -> str:
        return self._read(handle, f'GPU-0000000{handle}-aaaa-bbbb-cccc-dddddddddddd')

    def pci_bus_id(self, handle: object) -> str:
        return self._read(handle, f'00000000:{0x18 + 16 * int(str(handle)):02X}:00.0')

    def compute_capability(self, handle: object) -> tuple[int, int]:
        return self._read(handle, (9, 0))

    def memory(self, handle: object) -> MemoryInfo:
        used = 12_345_678_901  # 11.4978 GiB -> 11.5
        return self._read(handle, MemoryInfo(self.H100_TOTAL, used, self.H100_TOTAL - used))

    def utilization(self, handle: object) -> tuple[int, int]:
        return self._read(handle, (87, 41))

    def temperature_gpu(self, handle: object) -> int:
        return self._read(handle, 65)

    def temperature_memory(self, handle: object) -> int:
        return self._read(handle, 72, breaks=True)

    def power_draw_mw(self, handle: object) -> int:
        return self._read(handle, 312_456, breaks=True)  # 312.456 W -> 312.5

    def power_limit_mw(self, handle: object) -> int:
        return self._read(handle, 700_000)

    def fan_speed(self, handle: object) -> int:
        self._read(handle, 0)
        raise FakeNvmlError('Not Supported')  # datacenter GPUs have no fan of their own

    def clock_sm_mhz(self, handle: object) -> int:
        return self._read(handle, 1980)

    def clock_memory_mhz(self, handle: object) -> int:
        return self._read(handle, 2619)

    def processes(self, handle: object) -> list[Process]:
        return self._read(handle, [Process(1234, 4 * GIB), Process(5678, None)], breaks=True)


def failing(message: str) -> Callable[[], dict[str, object]]:
    def read() -> dict[str, object]:
        raise RuntimeError(message)

    return read
