"""Probes and metrics for operators: /healthz (the process answers), /readyz (the database is usable),
/metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.responses import Response

from app.client_address import is_local_caller
from app.deps import presented_api_key, require_api_key
from app.responses import JSONResponse
from core import migrations
from core.db import Database
from core.errors import DatabaseUnavailable, MindRouterError
from core.status.metrics import GatewayMetrics

router = APIRouter(tags=['Health'])

_READY_TIMEOUT = 3.0  # seconds; a probe that hangs is worse than one that fails


class Health(BaseModel):
    status: Literal['ok']


class Readiness(BaseModel):
    """`database`, `schema` and `reason` only for an admin key or a caller on this machine."""

    status: Literal['ready', 'unavailable']
    database: str | None = None
    schema_revision: str | None = Field(default=None, alias='schema')
    reason: str | None = None


@router.get('/healthz', response_model=None, responses={200: {'model': Health}})
async def healthz() -> JSONResponse:
    return JSONResponse({'status': 'ok'})


@router.get('/readyz', response_model=None, responses={200: {'model': Readiness}, 503: {'model': Readiness}})
async def readyz(request: Request) -> JSONResponse:
    """`ready` or `unavailable` (503) for anyone; where the database is and why it is unavailable only for an
    admin key or a caller on this machine, since it maps the deployment for an attacker."""
    database: Database = request.app.state.database
    expected: str = request.app.state.schema_head
    try:
        current = await asyncio.wait_for(database.schema_revision(), _READY_TIMEOUT)
    except DatabaseUnavailable as exc:
        return await _unavailable(request, exc.message)
    except TimeoutError:
        return await _unavailable(request, f'the database at {database.location} did not answer within '
                                           f'{_READY_TIMEOUT:g} s')
    if current != expected and (current is None or current in migrations.known_revisions()):
        state = 'empty (no migrations applied)' if current is None else f'at revision {current}'
        return await _unavailable(request, f'database schema is {state}, expected {expected}: run `mindrouter migrate`')
    if not await _may_see_details(request):
        return JSONResponse({'status': 'ready'})
    details = {'status': 'ready', 'database': database.location, 'schema': current}
    if current != expected:
        # A newer release has expanded the schema during a rolling upgrade: its migrations keep this release
        # working (docs/deployment.md#upgrades), so this replica stays in rotation until it is replaced.
        details['expected'] = expected
    return JSONResponse(details)


@router.get('/metrics', response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus exposition: requests, latencies, tokens, queue depth, in-flight and health per backend."""
    gateway_metrics: GatewayMetrics = request.app.state.metrics
    return Response(gateway_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _unavailable(request: Request, reason: str) -> JSONResponse:
    body = {'status': 'unavailable', 'reason': reason} if await _may_see_details(request) else {'status': 'unavailable'}
    return JSONResponse(body, status_code=503)


async def _may_see_details(request: Request) -> bool:
    if is_local_caller(request):
        return True
    if presented_api_key(request) is None:
        return False
    try:  # a probe never fails for its key: a bad or non-admin one gets the status only
        principal = await asyncio.wait_for(require_api_key(request), _READY_TIMEOUT)
    except (MindRouterError, TimeoutError):
        return False
    return principal.is_admin
