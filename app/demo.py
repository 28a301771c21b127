"""`mindrouter serve --demo`: a simulated Ollama and a simulated vLLM engine on loopback, registered as
backends (clearly marked simulated) and the demo users seeded, so that a newcomer's first minute ends
with real API calls answered by streamed tokens — before any GPU server exists.

Without --demo nothing simulated is ever registered: a normal start removes what a demo start left.
"""

from __future__ import annotations

import logging

from sqlmodel import select

from core import accounts
from core.db import Database
from core.models import Backend, BackendBase, Engine
from core.registry import store
from core.registry.monitor import RegistryMonitor
from sim.config import Engine as SimEngine
from sim.config import SimConfig
from sim.server import SimServer

log = logging.getLogger('mindrouter.demo')

# Paced like a small model on a real GPU, so that streaming is visible in a terminal or the chat page.
_ENGINES: tuple[tuple[str, SimEngine], ...] = (('demo-ollama (simulated)', 'ollama'), ('demo-vllm (simulated)', 'vllm'))


class DemoCluster:
    def __init__(self) -> None:
        self._servers: list[SimServer] = []

    async def start(self, database: Database, monitor: RegistryMonitor) -> None:
        for name, engine in _ENGINES:
            server = SimServer(engine, SimConfig(ttft_ms=120.0, token_delay_ms=25.0, tokens=48))
            await server.start('127.0.0.1', 0)
            self._servers.append(server)
            backend_id = await _register(database, name=name, engine=Engine(engine), url=server.url)
            await monitor.check(backend_id)
            log.warning('demo: %s serving at %s (SIMULATED, not a real engine)', name, server.url)
        async with database.session() as session:
            created = await accounts.seed_demo_users(session)
        if created:
            log.warning('demo: created users %s (passwords in the README)', ', '.join(created))

    async def stop(self) -> None:
        for server in self._servers:
            await server.stop()
        self._servers.clear()


async def remove_simulated(database: Database) -> None:
    async with database.session() as session:
        removed = await store.delete_simulated(session)
    if removed:
        log.info('removed %d simulated backend(s) left by an earlier --demo run', removed)


async def _register(database: Database, *, name: str, engine: Engine, url: str) -> int:
    """The demo backend's id: registered on first use, pointed at this run's port afterwards."""
    async with database.session() as session:
        existing = (await session.exec(select(Backend).where(Backend.name == name))).first()
        if existing is None:
            backend = await store.create_backend(
                session, data=BackendBase(name=name, url=url, engine=engine, max_concurrent=8), simulated=True)
        else:
            existing.url, existing.simulated = url, True
            session.add(existing)
            await session.commit()
            backend = existing
    assert backend.id is not None
    return backend.id
