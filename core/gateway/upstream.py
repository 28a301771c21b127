"""One keep-alive connection pool per backend, shared by every request (never a connection or a client
per request: upstream MindRouter loses most of its 52 ms per request building an httpx client each time)."""

from __future__ import annotations

from core.gateway.http import ConnectionPool
from core.registry.view import BackendState


class UpstreamPool:
    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        # No read timeout shorter than a cold model load: a 70B model can take minutes to load.
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pools: dict[int, tuple[str, ConnectionPool]] = {}
        self._retired: list[ConnectionPool] = []  # pools of backends whose URL changed

    def pool(self, backend: BackendState) -> ConnectionPool:
        entry = self._pools.get(backend.id)
        if entry is not None and entry[0] == backend.url:
            return entry[1]
        if entry is not None:  # the backend moved: its old connections close as their requests finish
            self._retired.append(entry[1])
        pool = ConnectionPool(backend.url, connect_timeout=self._connect_timeout, read_timeout=self._read_timeout,
                              max_idle=backend.max_concurrent)
        self._pools[backend.id] = (backend.url, pool)
        return pool

    async def aclose(self) -> None:
        for _, pool in self._pools.values():
            await pool.aclose()
        for pool in self._retired:
            await pool.aclose()
        self._pools.clear()
        self._retired.clear()
