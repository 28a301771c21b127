"""Probes for orchestrators: /healthz (the process answers) and /readyz (the database is usable)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from app.responses import JSONResponse
from core.db import Database
from core.errors import DatabaseUnavailable

router = APIRouter(tags=['Health'])

_READY_TIMEOUT = 3.0  # seconds; a probe that hangs is worse than one that fails


@router.get('/healthz', response_class=JSONResponse)
async def healthz() -> JSONResponse:
    return JSONResponse({'status': 'ok'})


@router.get('/readyz', response_class=JSONResponse)
async def readyz(request: Request) -> JSONResponse:
    database: Database = request.app.state.database
    expected: str = request.app.state.schema_head
    try:
        current = await asyncio.wait_for(database.schema_revision(), _READY_TIMEOUT)
    except DatabaseUnavailable as exc:
        return _unavailable(exc.message)
    except TimeoutError:
        return _unavailable(f'the database at {database.location} did not answer within {_READY_TIMEOUT:g} s')
    if current != expected:
        state = 'empty (no migrations applied)' if current is None else f'at revision {current}'
        return _unavailable(f'database schema is {state}, expected {expected}: run `mindrouter migrate`')
    return JSONResponse({'status': 'ready', 'database': database.location, 'schema': current})


def _unavailable(reason: str) -> JSONResponse:
    return JSONResponse({'status': 'unavailable', 'reason': reason}, status_code=503)
