"""Polls every node's sidecar — once per node, however many backends share it — keeps the latest readings in
memory and in the node's row, and marks a node offline (taking its backends out of rotation) when its sidecar
stops answering, answers with the wrong key, or answers garbage. A bad node never stops the others' polls.

Only the process that runs the cluster-wide jobs polls (core.jobs.background); the others `load_readings()` from the
rows it wrote, so every worker shows the same GPU figures without a second poll of any sidecar."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from core.db import Database
from core.models import Node, NodeStatus
from core.registry import nodes
from core.secretbox import SecretBox, SecretBoxError
from core.telemetry.sidecar import NodeSnapshot, SidecarError, backend_gpus, read_sidecar, summarize

log = logging.getLogger('mindrouter.telemetry')


class NodePoller:
    def __init__(self, database: Database, client: httpx.AsyncClient, box: SecretBox, *,
                 on_status_change: Callable[[], Awaitable[None]]) -> None:
        self._database = database
        self._client = client
        self._box = box
        self._on_status_change = on_status_change
        self.snapshots: dict[int, NodeSnapshot] = {}  # node id -> its latest good reading
        self.polls = 0  # sidecar requests made (tests check one per node per interval)

    async def poll(self, node_id: int) -> Node:
        """Read one node's sidecar now and record the outcome."""
        async with self._database.session() as session:
            node = await nodes.get_node(session, node_id=node_id)
            before = node.status
            try:
                key = self._box.open(node.sidecar_key_sealed)
                self.polls += 1
                snapshot = await read_sidecar(self._client, node.sidecar_url, key)
            except (SidecarError, SecretBoxError) as exc:
                if before != NodeStatus.offline:
                    log.warning('node %s is offline: %s', node.name, exc)
                self.snapshots.pop(node_id, None)
                node = await nodes.record_poll(session, node_id=node_id, snapshot=None, error=str(exc))
            else:
                self.snapshots[node_id] = snapshot
                node = await nodes.record_poll(session, node_id=node_id, snapshot=snapshot)
        if node.status != before:
            if node.status == NodeStatus.online:
                log.info('node %s is online%s', node.name, ' again' if before == NodeStatus.offline else '')
            await self._on_status_change()  # backends follow their node in and out of rotation
        return node

    async def poll_all(self) -> None:
        async with self._database.session() as session:
            ids = [node.id for node in await nodes.list_nodes(session) if node.id is not None]
        results = await asyncio.gather(*(self.poll(node_id) for node_id in ids), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error('node poll failed', exc_info=result)

    def backend_figures(self, node_id: int | None, gpu_indices: list[int] | None) -> dict[str, Any] | None:
        """Live GPU figures of a backend: its node's GPUs in its gpu_indices only."""
        snapshot = self.snapshots.get(node_id) if node_id is not None else None
        return summarize(backend_gpus(snapshot, gpu_indices)) if snapshot is not None else None

    async def load_readings(self) -> None:
        """Take the latest readings that the polling process stored (online nodes only)."""
        async with self._database.session() as session:
            rows = await nodes.list_nodes(session)
        self.snapshots = {node.id: NodeSnapshot.from_json(node.last_reading) for node in rows
                          if node.id is not None and node.status == NodeStatus.online and node.last_reading}
