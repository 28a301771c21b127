"""Admin API (/api/admin), JSON with an admin API key. The admin pages call the same core services."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import httpx
import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response, StreamingResponse

from app.deps import require_admin
from app.params import RowId
from app.responses import STREAM_HEADERS, JSONResponse
from core.accounts.api_keys import Principal
from core.admin import cluster_actions
from core.admin.cluster_actions import (
    Actor,
    backend_fields,
    backend_target,
    fleet_in_flight,
    log_action,
    ollama_backend,
)
from core.db import Database
from core.errors import MindRouterError
from core.models import Backend, BackendBase, BackendModel, BackendUpdate
from core.registry import ollama_models, store
from core.registry.capacity import CapacityAdvice
from core.registry.lifecycle import BackendLifecycle
from core.registry.monitor import RegistryMonitor
from core.registry.view import RegistryView
from core.telemetry.poller import NodePoller

router = APIRouter(prefix='/api/admin', tags=['Admin'], dependencies=[Depends(require_admin)])

# The admin whose key calls (FastAPI solves require_admin once per request: this reuses the router's answer).
Admin = Annotated[Principal, Depends(require_admin)]


class BackendCreate(BackendBase):
    model_config = ConfigDict(extra='forbid')  # type: ignore[assignment]


class BackendPatch(BackendUpdate):
    model_config = ConfigDict(extra='forbid')  # type: ignore[assignment]


class BackendModelPublic(BaseModel):
    name: str
    family: str | None
    context_length: int | None
    parameter_size: str | None
    quantization: str | None
    capabilities: list[str]


class BackendPublic(BaseModel):
    id: int
    name: str
    url: str
    engine: str
    max_concurrent: int
    node_id: int | None
    gpu_indices: list[int] | None
    priority: int
    status: str
    simulated: bool
    version: str | None
    last_error: str | None
    last_checked_at: datetime | None
    in_flight: int
    circuit_open_s: float  # seconds its circuit breaker stays open (no new requests) after a failed one; 0: closed
    gpu: dict[str, Any] | None  # live figures of its node's GPUs in gpu_indices (all when none), if polled
    engine_load: dict[str, Any] | None  # what the engine said at the last check: running, waiting, KV cache, loaded
    # Evidence that the engine queues requests of its own below max_concurrent: suggested, registered, signal,
    # evidence, observed_at (core.registry.capacity); None when there is none, or it no longer applies
    capacity_advice: dict[str, Any] | None
    models: list[BackendModelPublic]


@router.post('/backends/register', status_code=201, response_model=BackendPublic)
async def register_backend(payload: BackendCreate, request: Request, admin: Admin) -> Any:
    """Register an Ollama or vLLM endpoint and discover its models at once (it stays registered, marked
    unhealthy with the reason, if the engine cannot be reached yet)."""
    database: Database = request.app.state.database
    monitor: RegistryMonitor = request.app.state.monitor
    async with database.session() as session:
        backend = await store.create_backend(session, data=payload)
    assert backend.id is not None
    await log_action(database, _actor(admin), action='backend.register', target=backend_target(backend),
                     after=backend_fields(backend))
    await monitor.check(backend.id)
    return await _public(request, backend.id)


@router.get('/backends', response_model=list[BackendPublic])
async def list_backends(request: Request) -> Any:
    database: Database = request.app.state.database
    async with database.session() as session:
        rows = await store.list_backends(session)
    in_flight = await _fleet_in_flight(request)
    return [_to_public(request, backend, models, in_flight) for backend, models in rows]


@router.patch('/backends/{backend_id}', response_model=BackendPublic)
async def update_backend(backend_id: RowId, payload: BackendPatch, request: Request, admin: Admin) -> Any:
    """Change name, url, max_concurrent, node_id or gpu_indices; the models are re-discovered."""
    database: Database = request.app.state.database
    monitor: RegistryMonitor = request.app.state.monitor
    changed = payload.model_dump(exclude_unset=True)
    async with database.session() as session:
        before = backend_fields(await store.get_backend(session, backend_id=backend_id), changed)
        backend = await store.update_backend(session, backend_id=backend_id, changes=payload)
    await log_action(database, _actor(admin), action='backend.update', target=backend_target(backend),
                     before=before, after=backend_fields(backend, changed))
    await monitor.check(backend_id)
    return await _public(request, backend_id)


@router.delete('/backends/{backend_id}', status_code=204)
async def delete_backend(backend_id: RowId, request: Request, admin: Admin) -> Response:
    """Remove a backend with its models and telemetry history; its audit rows keep its name. Refused (409)
    while requests run on it anywhere in the fleet: drain it first."""
    lifecycle: BackendLifecycle = request.app.state.lifecycle
    backend = await lifecycle.delete(backend_id)
    await log_action(request.app.state.database, _actor(admin), action='backend.delete',
                     target=backend_target(backend), before=backend_fields(backend))
    return Response(status_code=204)


@router.post('/backends/{backend_id}/enable', response_model=BackendPublic)
async def enable_backend(backend_id: RowId, request: Request, admin: Admin) -> Any:
    """Back into rotation, after a fresh check."""
    lifecycle: BackendLifecycle = request.app.state.lifecycle
    before = await _status(request, backend_id)
    backend = await lifecycle.enable(backend_id)
    await _record_status(request, admin, 'enable', backend, before)
    return await _public(request, backend_id)


@router.post('/backends/{backend_id}/disable', response_model=BackendPublic)
async def disable_backend(backend_id: RowId, request: Request, admin: Admin) -> Any:
    """Out of rotation now; requests already on it finish."""
    lifecycle: BackendLifecycle = request.app.state.lifecycle
    before = await _status(request, backend_id)
    backend = await lifecycle.disable(backend_id)
    await _record_status(request, admin, 'disable', backend, before)
    return await _public(request, backend_id)


@router.post('/backends/{backend_id}/drain', response_model=BackendPublic)
async def drain_backend(backend_id: RowId, request: Request, admin: Admin) -> Any:
    """No new requests; the ones in flight finish; then the backend disables itself."""
    lifecycle: BackendLifecycle = request.app.state.lifecycle
    before = await _status(request, backend_id)
    backend = await lifecycle.drain(backend_id)
    await _record_status(request, admin, 'drain', backend, before)
    return await _public(request, backend_id)


@router.post('/backends/{backend_id}/refresh', response_model=BackendPublic)
async def refresh_backend(backend_id: RowId, request: Request, admin: Admin) -> Any:
    """Re-discover the backend's models and health now."""
    monitor: RegistryMonitor = request.app.state.monitor
    before = await _status(request, backend_id)
    backend = await monitor.check(backend_id)
    await _record_status(request, admin, 'refresh', backend, before)
    return await _public(request, backend_id)


@router.post('/backends/{backend_id}/capacity-advice/apply', response_model=BackendPublic)
async def apply_capacity_advice(backend_id: int, request: Request, admin: Admin) -> Any:
    """Set max_concurrent to what the engine's own signals support (its hidden queue); 400 when there is none."""
    await cluster_actions.apply_capacity_advice(cluster_actions.live_runtime(), _actor(admin), backend_id)
    return await _public(request, backend_id)


@router.delete('/backends/{backend_id}/capacity-advice', response_model=BackendPublic)
async def dismiss_capacity_advice(backend_id: int, request: Request, admin: Admin) -> Any:
    """Forget the advice (the engine is shared with other clients, say) until new evidence comes."""
    await cluster_actions.dismiss_capacity_advice(cluster_actions.live_runtime(), _actor(admin), backend_id)
    return await _public(request, backend_id)


class ModelName(BaseModel):
    model_config = ConfigDict(extra='forbid')
    model: str
    stream: bool = True


_PULL_ANSWERS: dict[int | str, dict[str, Any]] = {200: {'description': "Ollama's progress, one JSON object a line "
                                                      '(`stream: false`: the last one, as JSON)', 'content': {
    'application/x-ndjson': {'schema': {'type': 'object'}}, 'application/json': {'schema': {'type': 'object'}}}}}


@router.post('/backends/{backend_id}/ollama/pull', response_model=None, responses=_PULL_ANSWERS)
async def pull_model(backend_id: RowId, payload: ModelName, request: Request, admin: Admin) -> Response:
    """Pull a model onto an Ollama backend. Streams Ollama's progress as NDJSON (`stream: false`: one JSON
    answer at the end); the backend's model list is refreshed when the pull succeeds. A refusal before the first
    progress line (a malformed name, an unreachable backend) is an error status, not a 200 with an error line."""
    url = await _ollama_url(request, backend_id)
    client: httpx.AsyncClient = request.app.state.control_client
    monitor: RegistryMonitor = request.app.state.monitor
    if not payload.stream:
        last: dict[str, Any] = {}
        async for progress in ollama_models.pull(client, url, payload.model):
            last = progress
        await monitor.check(backend_id)
        await _record_model(request, admin, 'backend.model_pull', backend_id, after={'model': payload.model})
        return JSONResponse(last)

    pulling = ollama_models.pull(client, url, payload.model)
    first = await anext(pulling, None)  # raises what refuses the pull before anything is sent

    async def progress_lines() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield orjson.dumps(first) + b'\n'
            async for progress in pulling:
                yield orjson.dumps(progress) + b'\n'
        except MindRouterError as exc:
            yield orjson.dumps({'error': exc.message}) + b'\n'
            return
        finally:
            await pulling.aclose()  # a client gone mid-pull closes the connection to the backend now, not at GC
        await monitor.check(backend_id)
        await _record_model(request, admin, 'backend.model_pull', backend_id, after={'model': payload.model})
        yield orjson.dumps({'status': 'models refreshed'}) + b'\n'

    return StreamingResponse(progress_lines(), media_type='application/x-ndjson', headers=STREAM_HEADERS)


@router.post('/backends/{backend_id}/ollama/delete', response_model=BackendPublic)
async def delete_model(backend_id: RowId, payload: ModelName, request: Request, admin: Admin) -> Any:
    """Delete a model from an Ollama backend; the backend's model list is refreshed."""
    url = await _ollama_url(request, backend_id)
    client: httpx.AsyncClient = request.app.state.control_client
    monitor: RegistryMonitor = request.app.state.monitor
    await ollama_models.delete(client, url, payload.model)
    await monitor.check(backend_id)
    await _record_model(request, admin, 'backend.model_delete', backend_id, before={'model': payload.model})
    return await _public(request, backend_id)


def _actor(admin: Principal) -> Actor:
    return Actor(id=admin.user_id, name=admin.username, via='api')


async def _status(request: Request, backend_id: int) -> str:
    database: Database = request.app.state.database
    async with database.session() as session:
        return (await store.get_backend(session, backend_id=backend_id)).status


async def _record_status(request: Request, admin: Principal, verb: str, backend: Backend, before: str) -> None:
    await log_action(request.app.state.database, _actor(admin), action=f'backend.{verb}',
                     target=backend_target(backend), before={'status': before}, after={'status': backend.status})


async def _record_model(request: Request, admin: Principal, action: str, backend_id: int, *,
                        before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    database: Database = request.app.state.database
    async with database.session() as session:
        backend = await store.get_backend(session, backend_id=backend_id)
    await log_action(database, _actor(admin), action=action, target=backend_target(backend), before=before,
                     after=after)


async def _ollama_url(request: Request, backend_id: int) -> str:
    database: Database = request.app.state.database
    return (await ollama_backend(database, backend_id)).url


async def _public(request: Request, backend_id: int) -> BackendPublic:
    database: Database = request.app.state.database
    async with database.session() as session:
        backend = await store.get_backend(session, backend_id=backend_id)
        rows = {b.id: m for b, m in await store.list_backends(session)}
    return _to_public(request, backend, rows.get(backend_id, []), await _fleet_in_flight(request))


async def _fleet_in_flight(request: Request) -> dict[int, int]:
    return await fleet_in_flight(request.app.state.ledger, request.app.state.registry)


def _to_public(request: Request, backend: Backend, models: list[BackendModel],
               in_flight: dict[int, int]) -> BackendPublic:
    poller: NodePoller = request.app.state.node_poller
    view: RegistryView = request.app.state.registry
    assert backend.id is not None
    live = view.backend(backend.id)
    return BackendPublic(
        id=backend.id, name=backend.name, url=backend.url, engine=backend.engine,
        max_concurrent=backend.max_concurrent, node_id=backend.node_id, gpu_indices=backend.gpu_indices,
        priority=backend.priority, status=backend.status, simulated=backend.simulated, version=backend.version,
        last_error=backend.last_error,
        last_checked_at=backend.last_checked_at, in_flight=in_flight.get(backend.id, 0),
        circuit_open_s=round(max(0.0, live.cooldown_until - time.monotonic()), 1) if live else 0.0,
        gpu=poller.backend_figures(backend.node_id, backend.gpu_indices),
        engine_load=backend.engine_load,
        capacity_advice=_advice(backend),
        models=[BackendModelPublic(name=m.name, family=m.family, context_length=m.context_length,
                                   parameter_size=m.parameter_size, quantization=m.quantization,
                                   capabilities=m.capabilities) for m in models],
    )


def _advice(backend: Backend) -> dict[str, Any] | None:
    advice = CapacityAdvice.from_json(backend.capacity_advice)
    return advice.to_json() if advice is not None and advice.applies_to(backend.max_concurrent) else None
