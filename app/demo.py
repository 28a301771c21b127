"""`mindrouter serve --demo`: a simulated Ollama and a simulated vLLM engine on loopback, registered as
backends (clearly marked simulated) on a simulated two-GPU node (a fake sidecar), and the demo users seeded,
so that a newcomer's first minute ends with real API calls answered by streamed tokens and GPU charts moving
in the console — before any GPU server exists.

Without --demo nothing simulated is ever registered: a normal start removes what a demo start left.
"""

from __future__ import annotations

import logging

from sqlmodel import select

from core.accounts import service as accounts
from core.db import Database
from core.models import Backend, BackendBase, Engine, Node, NodeBase
from core.registry import nodes as node_store
from core.registry import store
from core.registry.monitor import RegistryMonitor
from core.secretbox import SecretBox
from core.telemetry.poller import NodePoller
from sim.config import Engine as SimEngine
from sim.config import SimConfig
from sim.server import SimServer
from sim.sidecar import SidecarConfig, SidecarSim

log = logging.getLogger('mindrouter.demo')

# Paced like a small model on a real GPU, so that streaming is visible in a terminal or the chat page.
_ENGINES: tuple[tuple[str, SimEngine], ...] = (('demo-ollama (simulated)', 'ollama'), ('demo-vllm (simulated)', 'vllm'))
NODE_NAME = 'demo-node (simulated)'
_SIDECAR_KEY = 'demo-sidecar-key'  # the fake sidecar's own key, on loopback only


class DemoCluster:
    def __init__(self) -> None:
        self._servers: list[SimServer] = []
        self._sidecar: SidecarSim | None = None

    async def start(self, database: Database, monitor: RegistryMonitor, poller: NodePoller, box: SecretBox) -> None:
        # GPU readings drift over two minutes, so the console's charts visibly move
        self._sidecar = SidecarSim(SidecarConfig(gpus=2, key=_SIDECAR_KEY, period_s=120.0))
        await self._sidecar.start('127.0.0.1', 0)
        node_id = await _register_node(database, box, url=self._sidecar.url)
        await poller.poll(node_id)  # online before the server starts, like the backends checked below
        log.warning('demo: %s reporting at %s (SIMULATED GPUs)', NODE_NAME, self._sidecar.url)
        for gpu, (name, engine) in enumerate(_ENGINES):
            # the real models' context (Llama 3.2: 128k): a coding agent's prompt alone is ~12k tokens
            server = SimServer(engine, SimConfig(ttft_ms=120.0, token_delay_ms=25.0, tokens=48, context_length=131072))
            await server.start('127.0.0.1', 0)
            self._servers.append(server)
            backend_id = await _register(database, name=name, engine=Engine(engine), url=server.url,
                                         node_id=node_id, gpu=gpu)
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
        if self._sidecar is not None:
            await self._sidecar.stop()
            self._sidecar = None


async def remove_simulated(database: Database) -> None:
    async with database.session() as session:
        removed = await store.delete_simulated(session)
        node = (await session.exec(select(Node).where(Node.name == NODE_NAME))).first()
        if node is not None and node.id is not None:
            await node_store.delete_node(session, node_id=node.id)
    if removed:
        log.info('removed %d simulated backend(s) left by an earlier --demo run', removed)


async def _register_node(database: Database, box: SecretBox, *, url: str) -> int:
    """The demo node's id: registered on first use, pointed at this run's sidecar port afterwards."""
    async with database.session() as session:
        node = (await session.exec(select(Node).where(Node.name == NODE_NAME))).first()
        if node is None:
            node = await node_store.register_node(
                session, data=NodeBase(name=NODE_NAME, hostname='localhost', sidecar_url=url),
                sidecar_key=_SIDECAR_KEY, box=box)
        else:
            node.sidecar_url, node.sidecar_key_sealed = url, box.seal(_SIDECAR_KEY)
            session.add(node)
            await session.commit()
    assert node.id is not None
    return node.id


async def _register(database: Database, *, name: str, engine: Engine, url: str, node_id: int, gpu: int) -> int:
    """The demo backend's id: registered on first use, pointed at this run's port afterwards."""
    async with database.session() as session:
        existing = (await session.exec(select(Backend).where(Backend.name == name))).first()
        if existing is None:
            backend = await store.create_backend(
                session, data=BackendBase(name=name, url=url, engine=engine, max_concurrent=8, node_id=node_id,
                                          gpu_indices=[gpu]), simulated=True)
        else:
            existing.url, existing.simulated = url, True
            existing.node_id, existing.gpu_indices = node_id, [gpu]
            session.add(existing)
            await session.commit()
            backend = existing
    assert backend.id is not None
    return backend.id
