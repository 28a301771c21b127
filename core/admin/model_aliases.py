"""Model aliases as an admin sets them: a name agents ask for (claude-sonnet-4-5, gpt-5-codex) answered by a
model the cluster serves. Both doors — the admin API and the console — call these, and each change is written
to the admin log with its before and after.

The rules: an alias names no served model (a served model always wins, so such an alias could never answer:
409), its target is a served model (not another alias: one hop, so resolving stays one lookup). The caller
reloads the registry view afterwards (RegistryMonitor.reload): requests resolve aliases from memory only.
"""

from __future__ import annotations

import re

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.admin.cluster_actions import Actor
from core.audit import admin_log
from core.errors import Conflict, InvalidRequest, NotFound
from core.models import BackendModel, ModelAlias, utcnow

# What a client may send as a model name: no spaces or control characters, at most the column's length.
_ALIAS_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,254}$')


class AliasNotFound(NotFound):
    code = 'model_alias_not_found'


class AliasShadowsModel(Conflict):
    code = 'model_alias_shadows_model'


async def list_aliases(session: AsyncSession) -> list[ModelAlias]:
    return list(await session.exec(select(ModelAlias).order_by(col(ModelAlias.alias))))


async def set_alias(session: AsyncSession, *, actor: Actor, alias: str, target: str) -> ModelAlias:
    """Create the alias, or point it at another target; recorded as model_alias.set."""
    alias, target = alias.strip(), target.strip()
    if not _ALIAS_NAME.match(alias):
        raise InvalidRequest(f'{alias!r} is not a usable model name: letters, digits and . _ : / @ + - only, '
                             'at most 255 characters', param='alias')
    if await _served(session, alias):
        raise AliasShadowsModel(f"a backend serves a model named '{alias}'; an alias may not shadow it",
                                param='alias')
    if not target:
        raise InvalidRequest('target must name the served model that answers the alias', param='target')
    if await session.get(ModelAlias, target) is not None:
        raise InvalidRequest(f"'{target}' is itself an alias; point the alias at a served model", param='target')
    if not await _served(session, target):
        raise InvalidRequest(f"no backend serves a model named '{target}'", param='target')
    existing = await session.get(ModelAlias, alias)
    before = {'target': existing.target} if existing is not None else None
    row = existing or ModelAlias(alias=alias, target=target)
    row.target, row.created_by, row.updated_at = target, actor.name, utcnow()
    session.add(row)
    if before != {'target': target}:
        await admin_log.record(session, actor_id=actor.id, actor=actor.name, action='model_alias.set',
                               target=f'alias {alias}', before=before, after={'target': target}, via=actor.via,
                               commit=False)
    await session.commit()
    await session.refresh(row)
    return row


async def delete_alias(session: AsyncSession, *, actor: Actor, alias: str) -> ModelAlias:
    """Remove the alias; recorded as model_alias.delete."""
    row = await session.get(ModelAlias, alias)
    if row is None:
        raise AliasNotFound(f"no model alias named '{alias}'", param='alias')
    await session.delete(row)
    await admin_log.record(session, actor_id=actor.id, actor=actor.name, action='model_alias.delete',
                           target=f'alias {alias}', before={'target': row.target}, after=None, via=actor.via,
                           commit=False)
    await session.commit()
    return row


async def _served(session: AsyncSession, name: str) -> bool:
    """Whether any backend lists `name` (or, untagged, `name:latest`: the gateway resolves that too)."""
    names = [name] if ':' in name else [name, f'{name}:latest']
    count = await session.exec(select(func.count()).select_from(BackendModel)
                               .where(col(BackendModel.name).in_(names)))
    return count.one() > 0
