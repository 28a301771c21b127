"""Admin API for users and their API keys (/api/admin/users, /api/admin/keys), over core.accounts.users: the same
services, rules and admin-log records as the console's Users page (recorded with via='api')."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from app.deps import require_admin
from app.params import Offset
from app.responses import JSONResponse
from core.accounts import users
from core.accounts.api_keys import ApiKeyAuthenticator, Principal
from core.accounts.users import UserChanges, UserCreate
from core.admin import user_data
from core.admin.cluster_actions import Actor
from core.db import Database

router = APIRouter(prefix='/api/admin', tags=['Admin'], dependencies=[Depends(require_admin)])
Admin = Annotated[Principal, Depends(require_admin)]


@router.get('/users')
async def list_users(request: Request, offset: Offset = 0,
                     limit: Annotated[int, Query(ge=1, le=users.MAX_PAGE_SIZE)] = users.PAGE_SIZE,
                     q: str | None = None, role: str | None = None, active: bool | None = None) -> JSONResponse:
    """One page of users by username; `q` searches username, email and full name; `total` counts all matches."""
    async with _db(request).session() as session:
        page = await users.list_users(session, q=q, role=role, active=active, offset=offset, limit=limit)
    return JSONResponse({'total': page.total, 'offset': page.offset, 'limit': page.limit,
                         'users': [row.to_json() for row in page.rows]})


@router.post('/users', status_code=201)
async def create_user(payload: UserCreate, request: Request, admin: Admin) -> JSONResponse:
    """Create a user. Without a password the account uses API keys only (no web login)."""
    async with _db(request).session() as session:
        row = await users.create_user(session, actor=_actor(admin), data=payload)
    return JSONResponse(row.to_json(), status_code=201)


@router.get('/users/{username}')
async def get_user(username: str, request: Request) -> JSONResponse:
    async with _db(request).session() as session:
        return JSONResponse((await users.get_user_row(session, username=username)).to_json())


@router.patch('/users/{username}')
async def update_user(username: str, changes: UserChanges, request: Request, admin: Admin) -> JSONResponse:
    """Change role, is_active, full_name or email (only the fields sent). A deactivated user can neither sign
    in nor use its API keys."""
    async with _db(request).session() as session:
        row = await users.update_user(session, actor=_actor(admin), username=username, changes=changes)
    _authenticator(request).invalidate()  # cached keys carry their owner's status and role: forget them all
    return JSONResponse(row.to_json())


@router.get('/users/{username}/keys')
async def list_keys(username: str, request: Request) -> JSONResponse:
    async with _db(request).session() as session:
        return JSONResponse([key.to_json() for key in await users.list_keys(session, username=username)])


@router.post('/keys/{key_ref}/revoke')
async def revoke_key(key_ref: str, request: Request, admin: Admin) -> JSONResponse:
    """Revoke a key by its id or its prefix; it stops working at once in this process."""
    async with _db(request).session() as session:
        key, digest = await users.revoke_key(session, actor=_actor(admin), key_ref=key_ref)
    _authenticator(request).invalidate(digest)
    return JSONResponse(key.to_json())


@router.get('/users/{username}/export', response_class=FileResponse)
async def export_user_content(username: str, request: Request, admin: Admin) -> FileResponse:
    """A zip of everything stored about the user: audit rows (with content where kept), chat conversations with
    messages and files, stored responses, and a manifest (docs/audit.md#export-and-erasure). Admin-logged."""
    path = await user_data.export_content(_db(request), request.app.state.settings, username=username,
                                          actor=_actor(admin), flush=request.app.state.flush_writes)
    stamp = datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')
    return FileResponse(path, media_type='application/zip', filename=f'mindrouter-{username}-{stamp}.zip',
                        background=BackgroundTask(os.unlink, path))


@router.delete('/users/{username}/content')
async def erase_user_content(username: str, request: Request, admin: Admin) -> JSONResponse:
    """Erase the user's stored content everywhere: prompts and answers in their audit rows (the rows stay), chat
    conversations and files, stored responses. The account and its keys are untouched. Admin-logged."""
    report = await user_data.erase_content(_db(request), request.app.state.settings, username=username,
                                           actor=_actor(admin), flush=request.app.state.flush_writes)
    return JSONResponse(report.as_dict())


def _actor(admin: Principal) -> Actor:
    return Actor(id=admin.user_id, name=admin.username, via='api')


def _authenticator(request: Request) -> ApiKeyAuthenticator:
    authenticator: ApiKeyAuthenticator = request.app.state.authenticator
    return authenticator


def _db(request: Request) -> Database:
    database: Database = request.app.state.database
    return database
