"""Public cluster information (no key): what the public status page shows."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from app.responses import JSONResponse
from core.status.cluster import ClusterStats

router = APIRouter(tags=['Public'])


@router.get('/status')
async def status(request: Request) -> JSONResponse:
    """Cluster summary: overall status, backends and nodes by state, models served, alerts."""
    stats: ClusterStats = request.app.state.cluster_stats
    return JSONResponse(await stats.status())


@router.get('/api/cluster/total-tokens')
async def total_tokens(request: Request) -> JSONResponse:
    stats: ClusterStats = request.app.state.cluster_stats
    return JSONResponse(await stats.total_tokens())


@router.get('/api/cluster/trends')
async def trends(request: Request, days: int = Query(default=30, ge=1, le=366)) -> JSONResponse:
    stats: ClusterStats = request.app.state.cluster_stats
    return JSONResponse({'days': days, 'series': await stats.trends(days)})


@router.get('/api/cluster/throughput')
async def throughput(request: Request) -> JSONResponse:
    stats: ClusterStats = request.app.state.cluster_stats
    return JSONResponse(await stats.throughput())
