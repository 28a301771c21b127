"""Admin actions on backends and nodes as the console takes them, each written to the admin log.

Every action calls the services the admin API routes call (core.registry.store, lifecycle, monitor, nodes,
ollama_models and the node poller) on the running gateway's own objects (core.runtime), then records who did
what, with the before and after. How a backend or a node is described in the log (`backend_fields`,
`node_fields`, `backend_target`, `node_target`) is shared with the admin API's records, so the log reads the
same whichever door a change came through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from core.audit import admin_log
from core.db import Database
from core.errors import InvalidRequest, MindRouterError
from core.models import Backend, BackendBase, BackendStatus, BackendUpdate, Engine, Node, NodeBase
from core.registry import nodes, ollama_models, store
from core.registry.lifecycle import BackendInUse
from core.registry.view import RegistryView
from core.runtime import Runtime, current
from core.scheduler.ledger import AdmissionLedger
from core.telemetry import queries

BACKEND_LOGGED = ('name', 'url', 'engine', 'max_concurrent', 'node_id', 'gpu_indices', 'priority', 'status')
NODE_LOGGED = ('name', 'hostname', 'sidecar_url', 'status')  # never the sidecar key

StateAction = Literal['enable', 'disable', 'drain']


class GatewayNotRunning(MindRouterError):
    status_code = 503
    code = 'gateway_not_running'


@dataclass(slots=True, frozen=True)
class Actor:
    """Who changes something, and through which door ('console', 'api' or 'cli')."""

    id: int | None
    name: str
    via: str = 'console'


def live_runtime() -> Runtime:
    """The running gateway's services, or a refusal an admin can read (a shell or a test without the API)."""
    runtime = current()
    if runtime is None:
        raise GatewayNotRunning('The gateway is not running in this process, so this cannot be done from here.')
    return runtime


def backend_fields(backend: Backend, only: Iterable[str] = BACKEND_LOGGED) -> dict[str, Any]:
    values = {name: getattr(backend, name) for name in only}
    if isinstance(values.get('gpu_indices'), list):
        values['gpu_indices'] = list(values['gpu_indices'])  # a copy: the row may change after this snapshot
    return values


def backend_target(backend: Backend) -> str:
    return f'backend {backend.id} ({backend.name})'


def node_fields(node: Node) -> dict[str, Any]:
    return {name: getattr(node, name) for name in NODE_LOGGED}


def node_target(node: Node) -> str:
    return f'node {node.id} ({node.name})'


async def log_action(database: Database, actor: Actor, *, action: str, target: str,
                     before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    async with database.session() as session:
        await admin_log.record(session, actor_id=actor.id, actor=actor.name, action=action, target=target,
                               before=before, after=after, via=actor.via)


# --- backends -----------------------------------------------------------------------------------------------------

async def register_backend(runtime: Runtime, actor: Actor, data: BackendBase) -> Backend:
    """Register and check at once (POST /api/admin/backends/register)."""
    async with runtime.database.session() as session:
        backend = await store.create_backend(session, data=data)
    assert backend.id is not None
    await log_action(runtime.database, actor, action='backend.register', target=backend_target(backend),
                     after=backend_fields(backend))
    return await runtime.monitor.check(backend.id)


async def update_backend(runtime: Runtime, actor: Actor, backend_id: int, changes: BackendUpdate) -> Backend:
    """An admin's edit, then a fresh check (PATCH /api/admin/backends/{id})."""
    changed = changes.model_dump(exclude_unset=True)
    async with runtime.database.session() as session:
        before = backend_fields(await store.get_backend(session, backend_id=backend_id), changed)
        backend = await store.update_backend(session, backend_id=backend_id, changes=changes)
    await log_action(runtime.database, actor, action='backend.update', target=backend_target(backend),
                     before=before, after=backend_fields(backend, changed))
    return await runtime.monitor.check(backend_id)


async def apply_capacity_advice(runtime: Runtime, actor: Actor, backend_id: int) -> Backend:
    """Lower max_concurrent to what the engine runs at once (POST /api/admin/backends/{id}/capacity-advice/apply)."""
    async with runtime.database.session() as session:
        before = await store.get_backend(session, backend_id=backend_id)
        logged = {'max_concurrent': before.max_concurrent, 'capacity_advice': before.capacity_advice}
        backend = await store.apply_capacity_advice(session, backend_id=backend_id)
    await log_action(runtime.database, actor, action='backend.apply_capacity_advice', target=backend_target(backend),
                     before=logged, after={'max_concurrent': backend.max_concurrent})
    await runtime.monitor.reload()
    return backend


async def dismiss_capacity_advice(runtime: Runtime, actor: Actor, backend_id: int) -> Backend:
    """DELETE /api/admin/backends/{id}/capacity-advice."""
    async with runtime.database.session() as session:
        before = (await store.get_backend(session, backend_id=backend_id)).capacity_advice
        backend = await store.dismiss_capacity_advice(session, backend_id=backend_id)
    await log_action(runtime.database, actor, action='backend.dismiss_capacity_advice',
                     target=backend_target(backend), before={'capacity_advice': before})
    return backend


async def set_backend_state(runtime: Runtime, actor: Actor, backend_id: int, action: StateAction) -> Backend:
    """Enable, disable or drain (POST /api/admin/backends/{id}/enable|disable|drain)."""
    before = await _backend(runtime.database, backend_id)
    lifecycle = runtime.lifecycle
    change = {'enable': lifecycle.enable, 'disable': lifecycle.disable, 'drain': lifecycle.drain}[action]
    backend = await change(backend_id)
    await log_action(runtime.database, actor, action=f'backend.{action}', target=backend_target(backend),
                     before={'status': before.status}, after={'status': backend.status})
    return backend


async def refresh_backend(runtime: Runtime, actor: Actor, backend_id: int) -> Backend:
    """Re-discover models and health now (POST /api/admin/backends/{id}/refresh)."""
    before = await _backend(runtime.database, backend_id)
    backend = await runtime.monitor.check(backend_id)
    await log_action(runtime.database, actor, action='backend.refresh', target=backend_target(backend),
                     before={'status': before.status}, after={'status': backend.status})
    return backend


async def delete_backend(runtime: Runtime, actor: Actor, backend_id: int) -> Backend:
    """Refused while requests run on it anywhere in the fleet (DELETE /api/admin/backends/{id})."""
    backend = await runtime.lifecycle.delete(backend_id)
    await log_action(runtime.database, actor, action='backend.delete', target=backend_target(backend),
                     before=backend_fields(backend))
    return backend


# A process outside the gateway (the CLI) cannot see its requests in flight; only these states take none.
OUT_OF_ROTATION = (BackendStatus.unknown, BackendStatus.unhealthy, BackendStatus.disabled)


async def delete_idle_backend(database: Database, actor: Actor, ref: str) -> Backend:
    """Delete a backend by name or id from outside the gateway (`mindrouter delete-backend`). Without the
    gateway's ledger at hand, only a backend out of rotation is deleted: a healthy or draining one may be
    answering requests, and is refused with the way out (drain it, or delete it through the API)."""
    async with database.session() as session:
        backend = await store.find_backend(session, ref=ref)
        if backend.status not in OUT_OF_ROTATION:
            raise BackendInUse(
                f'backend {backend.name} is {backend.status} and may be answering requests, which this command '
                f'cannot see: drain it first (POST /api/admin/backends/{backend.id}/drain, or Drain in the console) '
                'and delete it once it is disabled, or delete it through DELETE /api/admin/backends/'
                f'{backend.id}, which checks what is in flight', param='backend')
        assert backend.id is not None
        deleted = await store.delete_backend(session, backend_id=backend.id)
    await log_action(database, actor, action='backend.delete', target=backend_target(deleted),
                     before=backend_fields(deleted))
    return deleted


async def ollama_backend(database: Database, backend_id: int) -> Backend:
    """The backend, if it runs Ollama: only Ollama pulls and deletes models."""
    backend = await _backend(database, backend_id)
    if backend.engine != Engine.ollama:
        raise InvalidRequest(f'backend {backend.name} runs {backend.engine}: only Ollama backends pull and delete '
                             'models (vLLM serves the model it was started with)', param='id')
    return backend


async def pull_model(runtime: Runtime, actor: Actor, backend_id: int, model: str) -> AsyncIterator[dict[str, Any]]:
    """Ollama's pull progress as it comes; when it succeeds the model list is refreshed and the pull recorded
    (POST /api/admin/backends/{id}/ollama/pull)."""
    backend = await ollama_backend(runtime.database, backend_id)
    async for progress in ollama_models.pull(runtime.control_client, backend.url, model):
        yield progress
    await runtime.monitor.check(backend_id)
    await log_action(runtime.database, actor, action='backend.model_pull', target=backend_target(backend),
                     after={'model': model})


async def delete_model(runtime: Runtime, actor: Actor, backend_id: int, model: str) -> Backend:
    """POST /api/admin/backends/{id}/ollama/delete."""
    backend = await ollama_backend(runtime.database, backend_id)
    await ollama_models.delete(runtime.control_client, backend.url, model)
    refreshed = await runtime.monitor.check(backend_id)
    await log_action(runtime.database, actor, action='backend.model_delete', target=backend_target(backend),
                     before={'model': model})
    return refreshed


async def fleet_in_flight(ledger: AdmissionLedger, registry: RegistryView) -> dict[int, int]:
    """Requests on each backend now, all workers together: what an admin watches while a backend drains (the
    console's backend table and the admin API's backend list)."""
    try:
        return await ledger.in_flight()
    except Exception:  # the ledger's Redis is down: what this process last knew
        return {b.id: b.total_in_flight for b in registry.backends}


# --- nodes --------------------------------------------------------------------------------------------------------

async def register_node(runtime: Runtime, actor: Actor, data: NodeBase, sidecar_key: str) -> Node:
    """Register (the key sealed) and poll at once (POST /api/admin/nodes/register)."""
    async with runtime.database.session() as session:
        node = await nodes.register_node(session, data=data, sidecar_key=sidecar_key, box=runtime.secret_box)
    assert node.id is not None
    await log_action(runtime.database, actor, action='node.register', target=node_target(node),
                     after=node_fields(node))
    return await runtime.poller.poll(node.id)


async def delete_node(runtime: Runtime, actor: Actor, node_id: int) -> None:
    """Refused while backends run on the node (DELETE /api/admin/nodes/{id})."""
    async with runtime.database.session() as session:
        node = await nodes.get_node(session, node_id=node_id)
        before, target = node_fields(node), node_target(node)
        await nodes.delete_node(session, node_id=node_id)
    runtime.poller.snapshots.pop(node_id, None)
    await log_action(runtime.database, actor, action='node.delete', target=target, before=before)


async def refresh_node(runtime: Runtime, actor: Actor, node_id: int) -> Node:
    """Poll the node's sidecar now (POST /api/admin/nodes/{id}/refresh)."""
    async with runtime.database.session() as session:
        before = (await nodes.get_node(session, node_id=node_id)).status
    node = await runtime.poller.poll(node_id)
    await log_action(runtime.database, actor, action='node.refresh', target=node_target(node),
                     before={'status': before}, after={'status': node.status})
    return node


# --- telemetry export ---------------------------------------------------------------------------------------------

def telemetry_csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    """Rows of core.telemetry.queries.export_rows as CSV bytes, exactly as the admin API's export writes them."""
    return queries.export_csv(columns, rows).encode()


async def _backend(database: Database, backend_id: int) -> Backend:
    async with database.session() as session:
        return await store.get_backend(session, backend_id=backend_id)
