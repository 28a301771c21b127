"""Admin API for the scheduler's queue (/api/admin/queue): who waits, who runs, where, and how fairly."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Query, Request
from sqlmodel import col, select

from app.deps import require_admin
from app.responses import JSONResponse
from core.db import Database
from core.models import User
from core.scheduler.scheduler import FairScheduler

router = APIRouter(prefix='/api/admin/queue', tags=['Admin'], dependencies=[Depends(require_admin)])


@router.get('')
async def queue(request: Request, limit: int = Query(default=200, ge=0, le=5000)) -> JSONResponse:
    """Queued and running requests per user and per backend, each user's deficit (tokens ahead of, or
    behind, its fair share), current waits, and the queued requests in the order they will be served."""
    scheduler: FairScheduler = request.app.state.scheduler
    snapshot = asdict(await scheduler.snapshot(limit=limit))
    ids = {user['user_id'] for user in snapshot['users']} | {r['user_id'] for r in snapshot['requests']}
    database: Database = request.app.state.database
    async with database.session() as session:
        names = dict((await session.exec(select(User.id, User.username).where(col(User.id).in_(ids)))).all()) \
            if ids else {}
    for row in (*snapshot['users'], *snapshot['requests']):
        row['username'] = names.get(row['user_id'])
    return JSONResponse(snapshot)
