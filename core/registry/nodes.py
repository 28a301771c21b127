"""Node rows: register (the sidecar key sealed), list, delete (refused while backends use the node), and
record what each sidecar poll found."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import InvalidRequest, NotFound
from core.models import Backend, Node, NodeBase, NodeStatus, utcnow
from core.secretbox import SecretBox
from core.telemetry.sidecar import NodeSnapshot


class NodeNotFound(NotFound):
    code = 'node_not_found'


class NodeInUse(InvalidRequest):
    status_code = 409
    code = 'node_in_use'


async def register_node(session: AsyncSession, *, data: NodeBase, sidecar_key: str, box: SecretBox) -> Node:
    parts = urlsplit(data.sidecar_url)
    if parts.scheme not in {'http', 'https'} or not parts.netloc:
        raise InvalidRequest(f'sidecar_url must be an http(s) URL like http://gpu1:8007, not {data.sidecar_url!r}',
                             param='sidecar_url')
    if not data.name.strip() or not data.hostname.strip():
        raise InvalidRequest('name and hostname must not be empty', param='name')
    if not sidecar_key:
        raise InvalidRequest('sidecar_key is required: the SIDECAR_SECRET_KEY the node\'s sidecar runs with',
                             param='sidecar_key')
    if not (sidecar_key.isascii() and sidecar_key.isprintable()):  # it travels as an HTTP header value
        raise InvalidRequest('sidecar_key must be printable ASCII: it is sent to the sidecar as the X-Sidecar-Key '
                             'header', param='sidecar_key')
    url = data.sidecar_url.rstrip('/')
    clash = (await session.exec(select(Node).where((Node.name == data.name) | (Node.sidecar_url == url)))).first()
    if clash is not None:
        what = 'name' if clash.name == data.name else 'sidecar_url'
        raise InvalidRequest(f'a node with this {what} is already registered (id {clash.id})', param=what)
    node = Node(name=data.name, hostname=data.hostname, sidecar_url=url, sidecar_key_sealed=box.seal(sidecar_key))
    session.add(node)
    await session.commit()
    await session.refresh(node)
    return node


async def get_node(session: AsyncSession, *, node_id: int) -> Node:
    node = await session.get(Node, node_id)
    if node is None:
        raise NodeNotFound(f'no node with id {node_id}', param='id')
    return node


async def list_nodes(session: AsyncSession) -> list[Node]:
    return list(await session.exec(select(Node).order_by(col(Node.id))))


async def delete_node(session: AsyncSession, *, node_id: int) -> None:
    node = await get_node(session, node_id=node_id)
    users = list(await session.exec(select(Backend.name).where(Backend.node_id == node_id)))
    if users:
        raise NodeInUse(f'node {node.name} still has backends: {", ".join(users)}; move or delete them first',
                        param='id')
    await session.delete(node)
    await session.commit()


async def record_poll(session: AsyncSession, *, node_id: int, snapshot: NodeSnapshot | None,
                      error: str | None = None) -> Node:
    node = await get_node(session, node_id=node_id)
    now = utcnow()
    node.updated_at = now
    if snapshot is None:
        node.status, node.last_error, node.last_reading = NodeStatus.offline, error, None
    else:
        node.status, node.last_error, node.last_seen_at = NodeStatus.online, None, now
        node.gpu_count = snapshot.gpu_count
        node.driver_version, node.cuda_version = snapshot.driver_version, snapshot.cuda_version
        node.sidecar_version = snapshot.sidecar_version
        node.last_reading = snapshot.to_json()
    session.add(node)
    await session.commit()
    await session.refresh(node)
    return node


async def check_placement(session: AsyncSession, *, node_id: int | None, gpu_indices: list[int] | None) -> None:
    """A backend's node must exist, and its GPUs must be the node's (when the node's GPU count is known)."""
    if gpu_indices is not None and (not gpu_indices or any(i < 0 for i in gpu_indices)):
        raise InvalidRequest('gpu_indices must list GPU numbers (0, 1, ...), or be left out for all',
                             param='gpu_indices')
    if node_id is None:
        if gpu_indices is not None:
            raise InvalidRequest('gpu_indices needs a node_id: GPUs belong to a node', param='gpu_indices')
        return
    node = await session.get(Node, node_id)
    if node is None:
        raise InvalidRequest(f'no node with id {node_id}', param='node_id')
    if gpu_indices is not None and node.gpu_count is not None:
        outside = sorted(i for i in gpu_indices if i >= node.gpu_count)
        if outside:
            raise InvalidRequest(f'node {node.name} has GPUs 0-{node.gpu_count - 1}; {outside} are not among them',
                                 param='gpu_indices')
