"""One pooled httpx client per backend, shared by every request (never a client per request: building
one costs ~20 ms of TLS setup, which is most of what upstream MindRouter spends per request)."""

from __future__ import annotations

import httpx

from core.registry.view import BackendState


class UpstreamPool:
    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        # No read timeout shorter than a cold model load: a 70B model can take minutes to load.
        self._timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=read_timeout)
        self._clients: dict[int, tuple[str, httpx.AsyncClient]] = {}
        self._retired: list[httpx.AsyncClient] = []  # clients of backends whose URL changed

    def client(self, backend: BackendState) -> httpx.AsyncClient:
        entry = self._clients.get(backend.id)
        if entry is not None and entry[0] == backend.url:
            return entry[1]
        if entry is not None:  # the backend moved: the old client closes when its requests finish
            self._retired.append(entry[1])
        client = httpx.AsyncClient(
            base_url=backend.url, timeout=self._timeout,
            # Room for every request the backend may hold plus discovery and health calls.
            limits=httpx.Limits(max_connections=backend.max_concurrent + 8,
                                max_keepalive_connections=backend.max_concurrent + 8),
            trust_env=False,  # a proxy from the environment must not sit between us and the GPU nodes
        )
        self._clients[backend.id] = (backend.url, client)
        return client

    async def aclose(self) -> None:
        for _, client in self._clients.values():
            await client.aclose()
        for client in self._retired:
            await client.aclose()
        self._clients.clear()
        self._retired.clear()
