"""An admin's changes to limits, recorded: role defaults, a user's overrides, and decisions on quota requests.

The rules themselves are core.quotas.limits' and core.quotas.quota_requests'; this module adds what the console and the
admin API share on top of them: the admin-log record with before/after, and the review list of requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.accounts import service as accounts
from core.admin.cluster_actions import Actor
from core.audit import admin_log
from core.models import QuotaRequest, QuotaRequestStatus, Role, User
from core.quotas import limits, quota_requests
from core.quotas.limits import LIMIT_FIELDS, EffectiveLimits, RoleLimits, UserLimits
from core.quotas.quota_requests import QuotaDecision


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """A quota request as the reviewing admin sees it."""

    id: int
    username: str
    asked: dict[str, int]  # requested_tokens, requested_rpm, ... (quota_requests.ASKABLE): only what was asked for
    justification: str
    status: str
    created_at: datetime
    reviewer: str | None
    review_note: str | None
    reviewed_at: datetime | None
    current: dict[str, int]  # the user's effective limits now
    role: str


@dataclass(frozen=True, slots=True)
class ReviewPage:
    rows: list[ReviewRow]
    total: int
    pending: int


async def update_role(session: AsyncSession, *, actor: Actor, name: str, changes: RoleLimits) -> Role:
    """core.quotas.limits.update_role, recorded as role.update."""
    existing = (await session.exec(select(Role).where(Role.name == name))).first()
    before = _limits_of_role(existing) if existing is not None else {}
    role = await limits.update_role(session, name=name, changes=changes)  # refuses an unknown role
    after = _limits_of_role(role)
    changed = sorted(field for field in after if before.get(field) != after[field])
    if changed:
        await admin_log.record(session, actor_id=actor.id, actor=actor.name, action='role.update',
                               target=f'role {role.name}', before={k: before.get(k) for k in changed},
                               after={k: after[k] for k in changed}, via=actor.via)
    return role


async def set_user_quota(session: AsyncSession, *, actor: Actor, username: str, changes: UserLimits
                         ) -> EffectiveLimits:
    """core.quotas.limits.set_user_limits (replace the user's overrides), recorded as user.quota."""
    user = await accounts.get_user(session, username=username)
    before = _overrides(await limits.limits_of(session, user=user))
    effective = await limits.set_user_limits(session, user=user, limits=changes)
    after = _overrides(effective)
    if after != before:
        await admin_log.record(session, actor_id=actor.id, actor=actor.name, action='user.quota',
                               target=f'user {username}', before=before, after=after, via=actor.via)
    return effective


async def decide_request(session: AsyncSession, *, actor: Actor, request_id: int, approve: bool,
                         decision: QuotaDecision) -> QuotaRequest:
    """core.quotas.quota_requests.decide, recorded as quota_request.approve or quota_request.deny with the user's
    overrides before and after."""
    request = await session.get(QuotaRequest, request_id)
    user = await session.get(User, request.user_id) if request is not None else None
    before = _overrides(await limits.limits_of(session, user=user)) if user is not None else {}
    assert actor.id is not None  # a reviewer is a signed-in account, from either surface
    decided = await quota_requests.decide(session, request_id=request_id, reviewer_id=actor.id,
                                          approve=approve, decision=decision)
    assert user is not None  # decide refused a missing request
    after = _overrides(await limits.limits_of(session, user=user))
    await admin_log.record(session, actor_id=actor.id, actor=actor.name,
                           action='quota_request.approve' if approve else 'quota_request.deny',
                           target=f'quota request {request_id} of {user.username}',
                           before={'status': QuotaRequestStatus.pending.value, **before},
                           after={'status': decided.status, 'review_note': decided.review_note, **after},
                           via=actor.via)
    return decided


async def review_list(session: AsyncSession, *, offset: int = 0, limit: int = 25) -> ReviewPage:
    """Requests for review: pending ones first (oldest first: first come, first served), then decided ones,
    newest decision first; each with its requester's limits now."""
    requester, reviewer = aliased(User), aliased(User)
    pending_first = case((col(QuotaRequest.status) == QuotaRequestStatus.pending, 0), else_=1)
    query = (select(QuotaRequest, requester.username, reviewer.username)
             .join(requester, col(QuotaRequest.user_id) == requester.id)
             .outerjoin(reviewer, col(QuotaRequest.reviewer_id) == reviewer.id)
             .order_by(pending_first,
                       case((col(QuotaRequest.status) == QuotaRequestStatus.pending, col(QuotaRequest.id)), else_=0),
                       col(QuotaRequest.reviewed_at).desc(), col(QuotaRequest.id).desc())
             .offset(max(0, offset)).limit(max(1, limit)))
    total = int((await session.exec(select(func.count()).select_from(QuotaRequest))).one())
    pending = int((await session.exec(select(func.count()).select_from(QuotaRequest).where(
        col(QuotaRequest.status) == QuotaRequestStatus.pending))).one())
    rows = []
    for request, username, reviewer_name in list(await session.exec(query)):
        user = await session.get(User, request.user_id)
        assert user is not None and request.id is not None
        now = await limits.limits_of(session, user=user)
        rows.append(ReviewRow(
            id=request.id, username=username,
            asked={field: value for field in quota_requests.ASKABLE if (value := getattr(request, field)) is not None},
            justification=request.justification, status=request.status, created_at=request.created_at,
            reviewer=reviewer_name, review_note=request.review_note, reviewed_at=request.reviewed_at,
            current=dict(now.effective), role=now.role))
    return ReviewPage(rows=rows, total=total, pending=pending)


def _limits_of_role(role: Role) -> dict[str, Any]:
    return {field: getattr(role, field) for field in LIMIT_FIELDS}


def _overrides(effective: EffectiveLimits) -> dict[str, Any]:
    return {**effective.overrides, 'note': effective.note}
