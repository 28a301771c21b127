"""Admin API for run-time settings (/api/admin/settings): the ones an admin may change without a restart, with
where each value comes from, and the rest read-only with secrets hidden (core.admin.site_settings)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from app.deps import require_admin
from app.responses import JSONResponse
from core.accounts.api_keys import Principal
from core.admin import site_settings
from core.config import Settings
from core.db import Database

router = APIRouter(prefix='/api/admin/settings', tags=['Admin'], dependencies=[Depends(require_admin)])
Admin = Annotated[Principal, Depends(require_admin)]


class SettingValue(BaseModel):
    value: Any  # checked by core.admin.site_settings, whose refusal names the setting


@router.get('')
async def list_settings(request: Request) -> JSONResponse:
    """The editable settings (value in force, the environment's value, source: default | environment |
    console, and who changed it when), and every other setting read-only, secrets hidden."""
    settings = _settings(request)
    async with _db(request).session() as session:
        editable = await site_settings.describe(session, settings)
    return JSONResponse({'editable': [state.as_dict() for state in editable],
                         'read_only': dict(site_settings.read_only(settings))})


@router.put('/{name}')
async def change_setting(name: str, body: SettingValue, request: Request, admin: Admin) -> JSONResponse:
    """Change a setting now, for this process and every later start (400 naming the setting on a bad value)."""
    async with _db(request).session() as session:
        state = await site_settings.change(session, _settings(request), name=name, value=body.value,
                                           actor_id=admin.user_id, actor=admin.username, via='api')
    return JSONResponse(state.as_dict())


@router.delete('/{name}')
async def reset_setting(name: str, request: Request, admin: Admin) -> JSONResponse:
    """Back to the environment's value (or the default when the environment sets none)."""
    async with _db(request).session() as session:
        state = await site_settings.reset(session, _settings(request), name=name, actor_id=admin.user_id,
                                          actor=admin.username, via='api')
    return JSONResponse(state.as_dict())


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _db(request: Request) -> Database:
    database: Database = request.app.state.database
    return database
