"""Probes and metrics for operators: /healthz (the process answers), /readyz (the database is usable),
/metrics (Prometheus)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from app.responses import JSONResponse
from core.db import Database
from core.errors import DatabaseUnavailable
from core.status.metrics import GatewayMetrics

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


@router.get('/metrics', response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus exposition: requests, latencies, tokens, queue depth, in-flight and health per backend."""
    gateway_metrics: GatewayMetrics = request.app.state.metrics
    return Response(gateway_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _unavailable(reason: str) -> JSONResponse:
    return JSONResponse({'status': 'unavailable', 'reason': reason}, status_code=503)
