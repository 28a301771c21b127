"""Asking for more: a user files a quota request with a reason; an admin approves it (the user's overrides
are raised to what was asked, or to what the admin grants instead) or denies it, with a note either way.
The user sees the decision on its own requests."""

from __future__ import annotations

from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import InvalidRequest, NotFound
from core.models import QuotaRequest, QuotaRequestStatus, User, utcnow
from core.quotas.limits import raise_user_limits


class QuotaRequestNotFound(NotFound):
    code = 'quota_request_not_found'


class QuotaRequestCreate(SQLModel):
    requested_tokens: int | None = Field(default=None, ge=1)
    requested_rpm: int | None = Field(default=None, ge=1)
    requested_max_concurrent: int | None = Field(default=None, ge=1)
    requested_tts_chars: int | None = Field(default=None, ge=1)  # characters read aloud per quota period
    requested_stt_seconds: int | None = Field(default=None, ge=1)  # seconds of audio transcribed per quota period
    justification: str = Field(min_length=10, max_length=4000)


# what a request may ask for -> the user limit an approval raises
ASKABLE = {'requested_tokens': 'token_budget', 'requested_rpm': 'rpm_limit',
           'requested_max_concurrent': 'max_concurrent', 'requested_tts_chars': 'tts_char_budget',
           'requested_stt_seconds': 'stt_seconds_budget'}


class QuotaDecision(SQLModel):
    """Approve or deny; on approval the granted values default to those requested."""

    note: str = Field(default='', max_length=2000)
    token_budget: int | None = Field(default=None, ge=1)
    rpm_limit: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)
    tts_char_budget: int | None = Field(default=None, ge=1)
    stt_seconds_budget: int | None = Field(default=None, ge=1)


async def file_request(session: AsyncSession, *, user_id: int, data: QuotaRequestCreate) -> QuotaRequest:
    asked = {field: value for field in ASKABLE if (value := getattr(data, field)) is not None}
    if not asked:
        raise InvalidRequest(f'ask for something: {", ".join(ASKABLE)}', param='requested_tokens')
    pending = (await session.exec(select(QuotaRequest).where(
        QuotaRequest.user_id == user_id, QuotaRequest.status == QuotaRequestStatus.pending))).first()
    if pending is not None:
        raise InvalidRequest(f'you already have a pending request (id {pending.id}); wait for its decision',
                             param='requested_tokens')
    request = QuotaRequest(user_id=user_id, justification=data.justification.strip(), **asked)
    session.add(request)
    await session.commit()
    await session.refresh(request)
    return request


async def list_requests(session: AsyncSession, *, user_id: int | None = None,
                        status: QuotaRequestStatus | None = None) -> list[QuotaRequest]:
    query = select(QuotaRequest).order_by(col(QuotaRequest.created_at).desc(), col(QuotaRequest.id).desc())
    if user_id is not None:
        query = query.where(QuotaRequest.user_id == user_id)
    if status is not None:
        query = query.where(QuotaRequest.status == status)
    return list(await session.exec(query))


async def decide(session: AsyncSession, *, request_id: int, reviewer_id: int, approve: bool,
                 decision: QuotaDecision) -> QuotaRequest:
    """Approve (raising the user's limits in the same transaction) or deny a pending request."""
    request = await session.get(QuotaRequest, request_id)
    if request is None:
        raise QuotaRequestNotFound(f'no quota request with id {request_id}', param='id')
    if request.status != QuotaRequestStatus.pending:
        raise InvalidRequest(f'quota request {request_id} was already {request.status}', param='id')
    if approve:
        user = await session.get(User, request.user_id)
        assert user is not None  # the foreign key cascades
        granted = {limit: getattr(decision, limit) or getattr(request, asked) for asked, limit in ASKABLE.items()}
        await raise_user_limits(session, user=user, note=f'quota request {request_id}: {decision.note}'.rstrip(': '),
                                **granted)
    request.status = QuotaRequestStatus.approved if approve else QuotaRequestStatus.denied
    request.reviewer_id, request.review_note, request.reviewed_at = reviewer_id, decision.note or None, utcnow()
    session.add(request)
    await session.commit()
    await session.refresh(request)
    return request
