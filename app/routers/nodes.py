"""Admin API for GPU nodes (/api/admin/nodes): register, list, delete, poll now. Sidecar keys go in, never out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.deps import require_admin
from app.params import RowId
from core.accounts.api_keys import Principal
from core.admin.cluster_actions import Actor, log_action, node_fields, node_target
from core.db import Database
from core.models import Node, NodeBase
from core.registry import nodes
from core.secretbox import SecretBox
from core.telemetry.poller import NodePoller
from core.telemetry.sidecar import summarize

router = APIRouter(prefix='/api/admin/nodes', tags=['Admin'], dependencies=[Depends(require_admin)])

# The admin whose key calls (FastAPI solves require_admin once per request: this reuses the router's answer).
Admin = Annotated[Principal, Depends(require_admin)]


class NodeCreate(NodeBase):
    model_config = ConfigDict(extra='forbid')  # type: ignore[assignment]
    sidecar_key: str = Field(min_length=1, max_length=512)


class NodePublic(BaseModel):
    id: int
    name: str
    hostname: str
    sidecar_url: str
    status: str
    last_error: str | None
    last_seen_at: datetime | None
    gpu_count: int | None
    driver_version: str | None
    cuda_version: str | None
    sidecar_version: str | None
    summary: dict[str, Any] | None  # all GPUs together, from the latest poll
    gpus: list[dict[str, Any]]  # the sidecar's per-GPU fields, from the latest poll


@router.post('/register', status_code=201, response_model=NodePublic)
async def register_node(payload: NodeCreate, request: Request, admin: Admin) -> Any:
    """Register a node and poll its sidecar at once (it stays registered, offline with the reason, if the
    sidecar cannot be read yet)."""
    database: Database = request.app.state.database
    box: SecretBox = request.app.state.secret_box
    poller: NodePoller = request.app.state.node_poller
    async with database.session() as session:
        node = await nodes.register_node(session, data=payload, sidecar_key=payload.sidecar_key, box=box)
    assert node.id is not None
    await log_action(database, _actor(admin), action='node.register', target=node_target(node),
                     after=node_fields(node))
    return _public(request, await poller.poll(node.id))


@router.get('', response_model=list[NodePublic])
async def list_nodes(request: Request) -> Any:
    database: Database = request.app.state.database
    async with database.session() as session:
        return [_public(request, node) for node in await nodes.list_nodes(session)]


@router.post('/{node_id}/refresh', response_model=NodePublic)
async def refresh_node(node_id: RowId, request: Request, admin: Admin) -> Any:
    poller: NodePoller = request.app.state.node_poller
    database: Database = request.app.state.database
    async with database.session() as session:
        before = (await nodes.get_node(session, node_id=node_id)).status
    node = await poller.poll(node_id)
    await log_action(database, _actor(admin), action='node.refresh', target=node_target(node),
                     before={'status': before}, after={'status': node.status})
    return _public(request, node)


@router.delete('/{node_id}', status_code=204)
async def delete_node(node_id: RowId, request: Request, admin: Admin) -> Response:
    """Refused (409) while backends run on the node."""
    database: Database = request.app.state.database
    async with database.session() as session:
        node = await nodes.get_node(session, node_id=node_id)
        before, target = node_fields(node), node_target(node)
        await nodes.delete_node(session, node_id=node_id)
    poller: NodePoller = request.app.state.node_poller
    poller.snapshots.pop(node_id, None)
    await log_action(database, _actor(admin), action='node.delete', target=target, before=before)
    return Response(status_code=204)


def _actor(admin: Principal) -> Actor:
    return Actor(id=admin.user_id, name=admin.username, via='api')


def _public(request: Request, node: Node) -> NodePublic:
    poller: NodePoller = request.app.state.node_poller
    assert node.id is not None
    snapshot = poller.snapshots.get(node.id)
    gpus = list(snapshot.gpus) if snapshot else []
    return NodePublic(id=node.id, name=node.name, hostname=node.hostname, sidecar_url=node.sidecar_url,
                      status=node.status, last_error=node.last_error, last_seen_at=node.last_seen_at,
                      gpu_count=node.gpu_count, driver_version=node.driver_version, cuda_version=node.cuda_version,
                      sidecar_version=node.sidecar_version, summary=summarize(gpus) if snapshot else None, gpus=gpus)
