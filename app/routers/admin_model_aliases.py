"""Admin API for model aliases (/api/admin/model-aliases): a name agents ask for, answered by a served model."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from app.deps import require_admin
from app.responses import JSONResponse
from core.accounts.api_keys import Principal
from core.admin import model_aliases
from core.admin.cluster_actions import Actor
from core.db import Database
from core.registry.monitor import RegistryMonitor
from core.registry.view import AliasState, RegistryView

router = APIRouter(prefix='/api/admin/model-aliases', tags=['Admin'], dependencies=[Depends(require_admin)])
Admin = Annotated[Principal, Depends(require_admin)]


class AliasTarget(BaseModel):
    model_config = ConfigDict(extra='forbid')
    target: str = Field(description='the served model that answers the alias, e.g. qwen3:8b')


@router.get('')
async def list_aliases(request: Request) -> JSONResponse:
    """Every alias, with the model it points at and how the gateway applies it now."""
    return JSONResponse([_alias(state) for state in _view(request).aliases()])


@router.put('/{alias:path}')
async def set_alias(alias: str, payload: AliasTarget, request: Request, admin: Admin) -> JSONResponse:
    """Create the alias or point it elsewhere: 409 if a backend serves a model of that name, 400 if the target
    is not served (or is itself an alias)."""
    database: Database = request.app.state.database
    async with database.session() as session:
        row = await model_aliases.set_alias(session, actor=_actor(admin), alias=alias, target=payload.target)
    await _monitor(request).reload()
    state = next(s for s in _view(request).aliases() if s.alias == row.alias)
    return JSONResponse(_alias(state))


@router.delete('/{alias:path}')
async def delete_alias(alias: str, request: Request, admin: Admin) -> JSONResponse:
    database: Database = request.app.state.database
    async with database.session() as session:
        row = await model_aliases.delete_alias(session, actor=_actor(admin), alias=alias)
    await _monitor(request).reload()
    return JSONResponse({'alias': row.alias, 'target': row.target, 'deleted': True})


def _alias(state: AliasState) -> dict[str, Any]:
    return {'alias': state.alias, 'target': state.target, 'served_as': state.served,
            'active': state.served is not None and not state.shadowed, 'shadowed': state.shadowed}


def _actor(admin: Principal) -> Actor:
    return Actor(id=admin.user_id, name=admin.username, via='api')


def _view(request: Request) -> RegistryView:
    view: RegistryView = request.app.state.registry
    return view


def _monitor(request: Request) -> RegistryMonitor:
    monitor: RegistryMonitor = request.app.state.monitor
    return monitor
