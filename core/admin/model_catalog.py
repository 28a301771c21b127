"""The model catalog as an admin sees it, and an admin's per-model settings, recorded.

A model's settings (context-length override, capability override) live in core.registry.store; this module
adds the admin-log record both surfaces share, and the catalog rows the console shows: where each model runs,
its maximum and effective context, and its capabilities as discovered and as requests see them. The caller
reloads the registry view afterwards (RegistryMonitor.reload), so that routing sees a change at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.admin.cluster_actions import Actor
from core.audit import admin_log
from core.models import BackendModel, ModelSetting
from core.registry import store
from core.registry.view import BackendState


class ModelChanges(BaseModel):
    """PATCH /api/admin/models/{model}: only the fields sent change."""

    model_config = ConfigDict(extra='forbid')
    context_length_override: int | None = Field(default=None, description='null clears the override')
    capabilities_override: list[str] | None = Field(
        default=None, description=f'replaces the discovered capabilities ({", ".join(store.CAPABILITIES)}); '
                                  'null: the discovered ones again')


@dataclass(frozen=True, slots=True)
class ServedBy:
    id: int
    name: str
    engine: str
    status: str
    healthy: bool


@dataclass(frozen=True, slots=True)
class CatalogRow:
    name: str
    backends: list[ServedBy]
    context_length_max: int | None  # the largest any backend reports
    context_length_override: int | None
    context_length: int | None  # what requests get
    capabilities: list[str]  # what requests are routed by (the override when one is set)
    discovered: list[str]  # what the backends said
    capabilities_override: list[str] | None


async def catalog(session: AsyncSession, *, backends: list[BackendState] | None, context_cap: int
                  ) -> list[CatalogRow]:
    """Every model any backend lists, by name; `backends`: the running gateway's view (None: the database's)."""
    if backends is None:
        backends = await store.load_states(session)
    discovered: dict[str, set[str]] = {}
    for name, capabilities in await session.exec(select(BackendModel.name, BackendModel.capabilities)):
        discovered.setdefault(name, set()).update(capabilities or [])
    settings = {s.name: s for s in await session.exec(select(ModelSetting))}
    served: dict[str, list[BackendState]] = {}
    for backend in backends:
        for name in backend.models:
            served.setdefault(name, []).append(backend)
    rows = []
    for name in sorted(served):
        states = served[name]
        info = next((b.models[name] for b in states if b.healthy), states[0].models[name])
        setting = settings.get(name)
        rows.append(CatalogRow(
            name=name,
            backends=[ServedBy(id=b.id, name=b.name, engine=b.engine, status=b.status, healthy=b.healthy)
                      for b in states],
            context_length_max=max((b.models[name].context_length or 0 for b in states), default=0) or None,
            context_length_override=info.context_override, context_length=info.effective_context(context_cap),
            capabilities=_ordered(info.capabilities), discovered=_ordered(discovered.get(name, set())),
            capabilities_override=setting.capabilities_override if setting is not None else None))
    return rows


async def change_settings(session: AsyncSession, *, actor: Actor, model: str, changes: ModelChanges) -> None:
    """Apply the fields sent (core.registry.store's rules) and record model.settings with before/after."""
    sent = changes.model_fields_set & {'context_length_override', 'capabilities_override'}
    if not sent:
        return
    existing = await session.get(ModelSetting, model)
    before = _settings(existing, sent)
    if 'capabilities_override' in sent:
        await store.set_capabilities_override(session, model=model, capabilities=changes.capabilities_override)
    if 'context_length_override' in sent:
        await store.set_context_override(session, model=model, context_length=changes.context_length_override)
    after = _settings(await session.get(ModelSetting, model), sent)
    if after != before:
        await admin_log.record(session, actor_id=actor.id, actor=actor.name, action='model.settings',
                               target=f'model {model}', before=before, after=after, via=actor.via)


def _settings(setting: ModelSetting | None, fields: set[str]) -> dict[str, Any]:
    return {field: getattr(setting, field) if setting is not None else None for field in sorted(fields)}


def _ordered(capabilities: frozenset[str] | set[str]) -> list[str]:
    known = [name for name in store.CAPABILITIES if name in capabilities]
    return known + sorted(set(capabilities) - set(known))
