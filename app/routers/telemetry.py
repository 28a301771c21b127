"""Admin API for telemetry (/api/admin/telemetry): the cluster now, a node's GPU history, and an export of the
stored samples as JSON or CSV."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from app.deps import require_admin
from app.params import RowId
from app.responses import JSONResponse
from core.db import Database
from core.errors import InvalidRequest
from core.registry.view import RegistryView
from core.telemetry import queries
from core.telemetry.poller import NodePoller

router = APIRouter(prefix='/api/admin/telemetry', tags=['Admin'], dependencies=[Depends(require_admin)])

EXPORT_FORMATS = ('json', 'csv')


@router.get('/overview')
async def overview(request: Request) -> JSONResponse:
    """Every node (status, GPU count, live summary) and backend (status, load, live figures of its GPUs),
    with cluster totals. Live figures come from the latest sidecar poll, not from the database."""
    database: Database = request.app.state.database
    poller: NodePoller = request.app.state.node_poller
    registry: RegistryView = request.app.state.registry
    return JSONResponse(await queries.overview(database, poller, registry))


@router.get('/nodes/{node_id}/history')
async def node_history(node_id: RowId, request: Request, since: str | None = None, until: str | None = None,
                       step: Annotated[int | None, Query(ge=1, le=86_400)] = None) -> JSONResponse:
    """The node's GPU samples in [since, until) (default: the last hour), per GPU and for the node as a whole;
    with `step`, averaged into buckets of that many seconds."""
    database: Database = request.app.state.database
    start, end = queries.window(since, until, default_span=queries.HISTORY_SPAN)
    return JSONResponse(await queries.node_history(database, node_id=node_id, since=start, until=end, step=step))


@router.get('/export', response_model=None)
async def export(request: Request, fmt: Annotated[str, Query(alias='format')] = 'json', kind: str = 'gpu',
                 since: str | None = None, until: str | None = None) -> Response:
    """Stored samples in [since, until) (default: the last day), oldest first: a JSON list, or CSV with a
    header row as a download."""
    if fmt not in EXPORT_FORMATS:
        raise InvalidRequest(f'format must be one of {", ".join(EXPORT_FORMATS)}, not {fmt!r}', param='format')
    columns = queries.export_columns(kind)  # 400 naming `kind` before any query
    start, end = queries.window(since, until, default_span=queries.EXPORT_SPAN)
    database: Database = request.app.state.database
    rows = await queries.export_rows(database, kind=kind, since=start, until=end)
    if fmt == 'json':
        return JSONResponse(rows)
    filename = f'mindrouter-{kind}-telemetry-{start:%Y%m%dT%H%M%SZ}-{end:%Y%m%dT%H%M%SZ}.csv'
    return Response(queries.export_csv(columns, rows), media_type='text/csv; charset=utf-8',
                    headers={'Content-Disposition': f'attachment; filename="{filename}"'})
