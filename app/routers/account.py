"""A user's own account, with its own API key (/api/account): its limits and usage this period, and its
quota requests (file one, see the decisions)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import Caller
from app.responses import JSONResponse
from core.accounts import service as accounts
from core.db import Database
from core.quotas import limits, quota_requests
from core.quotas.guard import QuotaGuard, period_bounds
from core.quotas.quota_requests import QuotaRequestCreate
from core.quotas.speech import SpeechQuota, SpeechUnit

router = APIRouter(prefix='/api/account', tags=['Account'])


@router.get('/usage')
async def usage(request: Request, caller: Caller) -> JSONResponse:
    """What applies to me, and how much of my token budget (and speech budgets) this period I have used."""
    quota: QuotaGuard = request.app.state.quota
    speech: SpeechQuota = request.app.state.speech_quota
    database: Database = request.app.state.database
    async with database.session() as session:
        user = await accounts.get_user(session, username=caller.username)
        effective = await limits.limits_of(session, user=user)
    start, end = period_bounds(quota.period, quota.now())
    return JSONResponse({'username': caller.username, 'role': effective.role, 'limits': effective.effective,
                         'period': quota.period, 'period_start': start, 'period_end': end,
                         'used_tokens': await quota.used_tokens(caller.user_id),
                         'used_speech_chars': await speech.used(caller.user_id, SpeechUnit.chars),
                         'used_audio_seconds': await speech.used(caller.user_id, SpeechUnit.seconds),
                         'running': request.app.state.ledger.user_in_flight(caller.user_id)})


@router.post('/quota-requests', status_code=201)
async def file_quota_request(data: QuotaRequestCreate, request: Request, caller: Caller) -> JSONResponse:
    database: Database = request.app.state.database
    async with database.session() as session:
        filed = await quota_requests.file_request(session, user_id=caller.user_id, data=data)
    return JSONResponse(filed.model_dump(), status_code=201)


@router.get('/quota-requests')
async def my_quota_requests(request: Request, caller: Caller) -> JSONResponse:
    database: Database = request.app.state.database
    async with database.session() as session:
        return JSONResponse([r.model_dump() for r in
                             await quota_requests.list_requests(session, user_id=caller.user_id)])
