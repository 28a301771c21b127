"""Admin API for the scheduler's queue (/api/admin/queue): who waits, who runs, where, and how fairly."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from app.deps import require_admin
from app.responses import JSONResponse
from core.db import Database
from core.scheduler.scheduler import FairScheduler
from core.status import overview

router = APIRouter(prefix='/api/admin/queue', tags=['Admin'], dependencies=[Depends(require_admin)])


@router.get('')
async def queue(request: Request, limit: int = Query(default=200, ge=0, le=5000)) -> JSONResponse:
    """Queued and running requests per user and per backend, each user's deficit (tokens ahead of, or
    behind, its fair share), current waits, and the queued requests in the order they will be served:
    the same view /admin/queue shows (core.status.overview.queue_view)."""
    scheduler: FairScheduler = request.app.state.scheduler
    database: Database = request.app.state.database
    return JSONResponse(await overview.queue_view(scheduler, database, limit=limit))
