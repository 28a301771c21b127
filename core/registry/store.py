"""Backend rows: register, list, update after discovery, delete, and load into the in-memory view."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import delete, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import InvalidRequest, NotFound
from core.models import (
    Backend,
    BackendBase,
    BackendModel,
    BackendSample,
    BackendStatus,
    BackendUpdate,
    Engine,
    ModelAlias,
    ModelSetting,
    Node,
    NodeStatus,
    RequestLog,
    utcnow,
)
from core.registry.capacity import CapacityAdvice
from core.registry.discovery import Discovery
from core.registry.engine_load import EngineLoad
from core.registry.nodes import check_placement
from core.registry.view import BackendState, ModelInfo


class BackendNotFound(NotFound):
    code = 'backend_not_found'


def validate_backend(data: BackendBase) -> None:
    if data.engine not in {engine.value for engine in Engine}:
        known = ', '.join(repr(engine.value) for engine in Engine)
        raise InvalidRequest(f'engine must be one of {known}, not {data.engine!r}', param='engine')
    parts = urlsplit(data.url)
    if parts.scheme not in {'http', 'https'} or not parts.netloc:
        raise InvalidRequest(f'url must be an http(s) URL like http://gpu1:11434, not {data.url!r}', param='url')
    if not data.name.strip():
        raise InvalidRequest('name must not be empty', param='name')


async def create_backend(session: AsyncSession, *, data: BackendBase, simulated: bool = False) -> Backend:
    validate_backend(data)
    url = data.url.rstrip('/')
    clash = (await session.exec(select(Backend).where((Backend.name == data.name) | (Backend.url == url)))).first()
    if clash is not None:
        what = 'name' if clash.name == data.name else 'url'
        raise InvalidRequest(f'a backend with this {what} is already registered (id {clash.id})', param=what)
    await check_placement(session, node_id=data.node_id, gpu_indices=data.gpu_indices)
    backend = Backend(**data.model_dump(exclude={'url'}), url=url, simulated=simulated)
    session.add(backend)
    await session.commit()
    await session.refresh(backend)
    return backend


async def get_backend(session: AsyncSession, *, backend_id: int) -> Backend:
    backend = await session.get(Backend, backend_id)
    if backend is None:
        raise BackendNotFound(f'no backend with id {backend_id}', param='id')
    return backend


async def find_backend(session: AsyncSession, *, ref: str) -> Backend:
    """A backend by its name, or by its id (a number that names no backend)."""
    ref = ref.strip()
    backend = (await session.exec(select(Backend).where(Backend.name == ref))).first()
    if backend is None and ref.isdigit():
        backend = await session.get(Backend, int(ref))
    if backend is None:
        raise BackendNotFound(f'no backend named or numbered {ref!r}', param='backend')
    return backend


async def list_backends(session: AsyncSession) -> list[tuple[Backend, list[BackendModel]]]:
    backends = list(await session.exec(select(Backend).order_by(col(Backend.id))))
    models = list(await session.exec(select(BackendModel).order_by(col(BackendModel.name))))
    by_backend: dict[int, list[BackendModel]] = {}
    for model in models:
        by_backend.setdefault(model.backend_id, []).append(model)
    return [(backend, by_backend.get(backend.id or 0, [])) for backend in backends]


async def record_discovery(session: AsyncSession, *, backend_id: int, discovery: Discovery | None,
                           error: str | None = None, mark_unhealthy: bool = True,
                           load: EngineLoad | None = None) -> Backend:
    """Store what a check found: the model list, the engine's load and healthy, or the error (and, when
    `mark_unhealthy`, the unhealthy status; the model list is kept either way)."""
    backend = await get_backend(session, backend_id=backend_id)
    now = utcnow()
    backend.last_checked_at = now
    backend.updated_at = now
    keep = BackendStatus(backend.status).set_by_admin  # a check never overrides an admin's drain or disable
    if discovery is None:
        if not keep and mark_unhealthy:
            backend.status = BackendStatus.unhealthy
        backend.last_error = error
        backend.engine_load = None
    else:
        if not keep:
            backend.status = BackendStatus.healthy
        backend.last_error = None
        backend.version = discovery.version
        backend.engine_load = load.to_json() if load is not None else None
        await session.exec(delete(BackendModel).where(col(BackendModel.backend_id) == backend_id))
        for model in discovery.models:
            session.add(BackendModel(backend_id=backend_id, name=model.name, family=model.family,
                                     context_length=model.context_length, parameter_size=model.parameter_size,
                                     quantization=model.quantization, size_bytes=model.size_bytes,
                                     capabilities=model.capabilities, details=model.details))
    session.add(backend)
    await session.commit()
    await session.refresh(backend)
    return backend


async def update_backend(session: AsyncSession, *, backend_id: int, changes: BackendUpdate) -> Backend:
    """Apply an admin's edit; the same rules as registration, nothing written if any field is wrong."""
    backend = await get_backend(session, backend_id=backend_id)
    fields = changes.model_dump(exclude_unset=True)
    try:  # BackendUpdate lets every field be left out, and a client may send null for one that needs a value
        candidate = BackendBase(**{**backend.model_dump(include=set(BackendBase.model_fields)), **fields})
    except ValidationError as exc:
        first = exc.errors()[0]
        param = '.'.join(str(part) for part in first['loc'])
        raise InvalidRequest(f"{param}: {first['msg']}", param=param) from None
    validate_backend(candidate)
    candidate.url = candidate.url.rstrip('/')
    others = select(Backend).where(col(Backend.id) != backend_id,
                                   (Backend.name == candidate.name) | (Backend.url == candidate.url))
    clash = (await session.exec(others)).first()
    if clash is not None:
        what = 'name' if clash.name == candidate.name else 'url'
        raise InvalidRequest(f'a backend with this {what} is already registered (id {clash.id})', param=what)
    await check_placement(session, node_id=candidate.node_id, gpu_indices=candidate.gpu_indices)
    for name in fields:
        setattr(backend, name, getattr(candidate, name))
    if 'max_concurrent' in fields:
        backend.capacity_advice = None  # the advice was about the old limit: new evidence will tell
    backend.updated_at = utcnow()
    session.add(backend)
    await session.commit()
    await session.refresh(backend)
    return backend


async def record_capacity_advice(session: AsyncSession, *, backend_id: int, advice: CapacityAdvice) -> None:
    """Store new evidence of a hidden engine queue (one column: an admin's concurrent edit is not undone)."""
    table = Backend.__table__  # type: ignore[attr-defined]
    await session.exec(update(table).where(col(Backend.id) == backend_id).values(capacity_advice=advice.to_json()))
    await session.commit()


class NoCapacityAdvice(InvalidRequest):
    code = 'no_capacity_advice'


async def apply_capacity_advice(session: AsyncSession, *, backend_id: int) -> Backend:
    """Set max_concurrent to what the engine's own signals support, and clear the advice."""
    backend = await get_backend(session, backend_id=backend_id)
    advice = CapacityAdvice.from_json(backend.capacity_advice)
    if advice is None or advice.suggested >= backend.max_concurrent:
        raise NoCapacityAdvice(f'backend {backend.name} has no capacity advice to apply', param='id')
    backend.max_concurrent = advice.suggested
    backend.capacity_advice = None
    backend.updated_at = utcnow()
    return await _save(session, backend)


async def dismiss_capacity_advice(session: AsyncSession, *, backend_id: int) -> Backend:
    """An admin knows better (another client shares the engine, say): forget the advice until new evidence."""
    backend = await get_backend(session, backend_id=backend_id)
    backend.capacity_advice = None
    return await _save(session, backend)


async def set_status(session: AsyncSession, *, backend_id: int, status: BackendStatus) -> Backend:
    backend = await get_backend(session, backend_id=backend_id)
    backend.status = status
    backend.updated_at = utcnow()
    return await _save(session, backend)


async def _save(session: AsyncSession, backend: Backend) -> Backend:
    session.add(backend)
    await session.commit()
    await session.refresh(backend)
    return backend


async def finish_drain(session: AsyncSession, *, backend_id: int) -> bool:
    """Draining → disabled, only if it is still draining (an admin may have enabled it meanwhile)."""
    table = Backend.__table__  # type: ignore[attr-defined]
    result = await session.exec(update(table)
                                .where(col(Backend.id) == backend_id, col(Backend.status) == BackendStatus.draining)
                                .values(status=BackendStatus.disabled, updated_at=utcnow()))
    await session.commit()
    return bool(result.rowcount)


async def draining_ids(session: AsyncSession) -> list[int]:
    return [i for i in await session.exec(select(Backend.id).where(Backend.status == BackendStatus.draining))
            if i is not None]


async def delete_backend(session: AsyncSession, *, backend_id: int) -> Backend:
    """Remove a backend and the rows that are its own (discovered models, telemetry samples), all in one
    transaction. Its audit rows stay: they lose the id, which no longer names anything, and keep the backend's
    name. The caller has made sure nothing runs on it (core.registry.lifecycle)."""
    backend = await get_backend(session, backend_id=backend_id)
    # Explicit rather than left to ON DELETE: the audit rows must keep the name (filled in where a row lacks it),
    # and this works the same whether or not the connection enforces foreign keys.
    await session.exec(update(RequestLog).where(col(RequestLog.backend_id) == backend_id)
                       .values(backend_id=None, backend_name=func.coalesce(col(RequestLog.backend_name), backend.name)))
    await session.exec(delete(BackendSample).where(col(BackendSample.backend_id) == backend_id))
    await session.exec(delete(BackendModel).where(col(BackendModel.backend_id) == backend_id))
    await session.delete(backend)
    await session.commit()
    return backend


async def delete_simulated(session: AsyncSession) -> int:
    """Remove backends a previous `serve --demo` registered (a normal start never keeps them)."""
    rows = list(await session.exec(select(Backend).where(col(Backend.simulated).is_(True))))
    for row in rows:
        await session.delete(row)
    await session.commit()
    return len(rows)


async def load_states(session: AsyncSession) -> list[BackendState]:
    offline = set(await session.exec(select(Node.id).where(Node.status == NodeStatus.offline)))
    settings = {m.name: m for m in await session.exec(select(ModelSetting))}
    states = []
    for backend, models in await list_backends(session):
        assert backend.id is not None
        states.append(BackendState(
            id=backend.id, name=backend.name, url=backend.url, engine=backend.engine,
            max_concurrent=backend.max_concurrent, status=backend.status, simulated=backend.simulated,
            node_id=backend.node_id, gpu_indices=backend.gpu_indices, node_online=backend.node_id not in offline,
            load=EngineLoad.from_json(backend.engine_load), priority=backend.priority,
            models={m.name: _model_info(m, settings.get(m.name)) for m in models},
        ))
    return states


async def load_aliases(session: AsyncSession) -> dict[str, str]:
    """Every model alias (alias -> target), for the in-memory view (core.admin.model_aliases edits them)."""
    return {row.alias: row.target for row in await session.exec(select(ModelAlias))}


def _model_info(model: BackendModel, setting: ModelSetting | None) -> ModelInfo:
    """What the request path knows of a served model: discovered, with an admin's overrides applied."""
    capabilities = model.capabilities
    if setting is not None and setting.capabilities_override is not None:
        capabilities = setting.capabilities_override  # the admin knows better than discovery (e.g. vLLM flags)
    return ModelInfo(name=model.name, family=model.family, context_length=model.context_length,
                     capabilities=frozenset(capabilities), parameter_size=model.parameter_size,
                     quantization=model.quantization, size_bytes=model.size_bytes, details=model.details,
                     context_override=setting.context_length_override if setting is not None else None)


async def set_context_override(session: AsyncSession, *, model: str, context_length: int | None) -> ModelSetting:
    """Set (or clear, with None) the context length every request to `model` gets."""
    served = list(await session.exec(select(BackendModel).where(BackendModel.name == model)))
    if not served:
        raise NotFound(f"no backend serves a model named '{model}'", param='model')
    if context_length is not None:
        largest = max((m.context_length for m in served if m.context_length), default=None)
        if context_length < 512 or (largest is not None and context_length > largest):
            limit = f'between 512 and {largest}' if largest else 'at least 512'
            raise InvalidRequest(f'context_length_override for {model} must be {limit}, not {context_length}',
                                 param='context_length_override')
    return await _save_model_setting(session, model, context_length_override=context_length)


# The capability names requests are routed by (core.registry.families; `rerank` only on vLLM; `speech` and
# `transcription` behind /v1/audio/*).
CAPABILITIES = ('completion', 'tools', 'thinking', 'vision', 'embedding', 'rerank', 'speech', 'transcription')


async def set_capabilities_override(session: AsyncSession, *, model: str, capabilities: list[str] | None
                                    ) -> ModelSetting:
    """Replace the discovered capabilities of `model` with these (None: use what discovery finds again)."""
    served = (await session.exec(select(BackendModel.id).where(BackendModel.name == model))).first()
    if served is None:
        raise NotFound(f"no backend serves a model named '{model}'", param='model')
    if capabilities is not None:
        unknown = sorted(set(capabilities) - set(CAPABILITIES))
        if unknown:
            raise InvalidRequest(f'unknown capabilities {", ".join(unknown)}; choose from {", ".join(CAPABILITIES)}',
                                 param='capabilities_override')
        if not capabilities:
            raise InvalidRequest('choose at least one capability, or null to use the discovered ones',
                                 param='capabilities_override')
        capabilities = [name for name in CAPABILITIES if name in capabilities]  # one order, no repeats
    return await _save_model_setting(session, model, capabilities_override=capabilities)


async def _save_model_setting(session: AsyncSession, model: str, **changes: Any) -> ModelSetting:
    """The model's settings row (made on first use) with `changes` applied, committed."""
    setting = await session.get(ModelSetting, model) or ModelSetting(name=model)
    for name, value in changes.items():
        setattr(setting, name, value)
    setting.updated_at = utcnow()
    session.add(setting)
    await session.commit()
    await session.refresh(setting)
    return setting
