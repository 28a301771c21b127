"""Admin API for limits: role defaults (/api/admin/roles), a user's overrides (/api/admin/users/{name}/quota)
and the users' quota requests (/api/admin/quota-requests)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from app.deps import require_admin
from app.params import RowId
from app.responses import JSONResponse
from core.accounts import service as accounts
from core.accounts.api_keys import ApiKeyAuthenticator, Principal
from core.admin.cluster_actions import Actor
from core.db import Database
from core.models import QuotaRequestStatus
from core.quotas import limits, quota_admin, quota_requests
from core.quotas.guard import QuotaGuard
from core.quotas.limits import RoleLimits, UserLimits
from core.quotas.quota_requests import QuotaDecision

router = APIRouter(prefix='/api/admin', tags=['Admin'], dependencies=[Depends(require_admin)])
Admin = Annotated[Principal, Depends(require_admin)]


@router.get('/roles')
async def list_roles(request: Request) -> JSONResponse:
    async with _db(request).session() as session:
        return JSONResponse([role.model_dump(exclude={'id'}) for role in await limits.list_roles(session)])


@router.patch('/roles/{name}')
async def update_role(name: str, changes: RoleLimits, request: Request, admin: Admin) -> JSONResponse:
    """Change a role's weight (at least 1), token budget, requests per minute or running requests (0: none)."""
    async with _db(request).session() as session:
        role = await quota_admin.update_role(session, actor=_actor(admin), name=name, changes=changes)
    _forget_cached_keys(request)  # cached keys carry their owner's limits: the new ones hold from the next request
    return JSONResponse(role.model_dump(exclude={'id'}))


@router.get('/users/{username}/quota')
async def user_quota(username: str, request: Request) -> JSONResponse:
    """The role's limits, the user's overrides, what applies, and the tokens used this period."""
    async with _db(request).session() as session:
        user = await accounts.get_user(session, username=username)
        effective = await limits.limits_of(session, user=user)
    return JSONResponse(await _with_usage(request, user.id, effective))


@router.put('/users/{username}/quota')
async def set_user_quota(username: str, changes: UserLimits, request: Request, admin: Admin) -> JSONResponse:
    """Replace the user's overrides; a null field means the role's value (all null: no override)."""
    async with _db(request).session() as session:
        user = await accounts.get_user(session, username=username)
        effective = await quota_admin.set_user_quota(session, actor=_actor(admin), username=username,
                                                     changes=changes)
    _forget_cached_keys(request)
    return JSONResponse(await _with_usage(request, user.id, effective))


@router.get('/quota-requests')
async def list_quota_requests(request: Request, status: QuotaRequestStatus | None = None) -> JSONResponse:
    async with _db(request).session() as session:
        return JSONResponse([r.model_dump() for r in await quota_requests.list_requests(session, status=status)])


@router.post('/quota-requests/{request_id}/approve')
async def approve(request_id: RowId, decision: QuotaDecision, request: Request, admin: Admin) -> JSONResponse:
    """Raise the user's limits to what was asked (or to the values given here), and say so."""
    async with _db(request).session() as session:
        decided = await quota_admin.decide_request(session, actor=_actor(admin), request_id=request_id,
                                                   approve=True, decision=decision)
    _forget_cached_keys(request)
    return JSONResponse(decided.model_dump())


@router.post('/quota-requests/{request_id}/deny')
async def deny(request_id: RowId, decision: QuotaDecision, request: Request, admin: Admin) -> JSONResponse:
    async with _db(request).session() as session:
        decided = await quota_admin.decide_request(session, actor=_actor(admin), request_id=request_id,
                                                   approve=False, decision=decision)
    return JSONResponse(decided.model_dump())


async def _with_usage(request: Request, user_id: int | None, effective: limits.EffectiveLimits) -> dict[str, Any]:
    quota: QuotaGuard = request.app.state.quota
    assert user_id is not None
    return {'username': effective.username, 'role': effective.role, 'role_limits': effective.role_limits,
            'overrides': effective.overrides, 'effective': effective.effective, 'note': effective.note,
            'period': quota.period, 'used_tokens': await quota.used_tokens(user_id)}


def _actor(admin: Principal) -> Actor:
    return Actor(id=admin.user_id, name=admin.username, via='api')


def _forget_cached_keys(request: Request) -> None:
    authenticator: ApiKeyAuthenticator = request.app.state.authenticator
    authenticator.invalidate()


def _db(request: Request) -> Database:
    database: Database = request.app.state.database
    return database
