"""Cluster throughput over the last minutes, in fixed buckets: what the public status chart draws.

ClusterStats.throughput() answers one figure (the last minute); a chart needs a series that is there the
moment a visitor opens the page, so it is read from the request log rather than sampled while someone watches.

The buckets are summed in SQL with one CASE column per bucket, comparing DATETIME only with bound times:
that reads one row whatever the traffic, and needs no epoch arithmetic, which differs between SQLite and
MariaDB (see core/telemetry/queries.py). Bucket edges are aligned to the Unix epoch and only finished
buckets are shown, so the answer changes once per step: it is kept until then, and any number of open
status pages cost one query per step.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlmodel import col

from core.db import Database
from core.errors import InvalidRequest
from core.models import RequestLog, utcnow

# Bounding created_at as well lets the query use ix_request_log_created (completed_at has no index); a request
# that ran longer than this is left out of the chart, which no LLM request does in practice.
LONGEST_REQUEST = timedelta(hours=1)
MAX_BUCKETS = 360

_cache: dict[tuple[str, int, int, int], list[dict[str, Any]]] = {}


async def throughput_history(database: Database, *, minutes: int = 10, step: int = 10,
                             now: datetime | None = None) -> list[dict[str, Any]]:
    """Finished `step`-second buckets over the last `minutes`, oldest first: each bucket's end time (`end`,
    aware UTC), `tokens_per_second` (completion tokens) and `requests_per_second`, by completion time."""
    if step < 1 or minutes < 1 or minutes * 60 // step > MAX_BUCKETS:
        raise InvalidRequest(f'between 1 and {MAX_BUCKETS} buckets of at least 1 second, '
                             f'not {minutes} minutes in steps of {step} s', param='step')
    moment = now or utcnow()
    last_edge = math.floor(moment.timestamp() / step) * step
    count = minutes * 60 // step
    key = (str(database.url), minutes, step, last_edge)
    cached = _cache.get(key)
    if cached is not None:
        return cached

    edges = [datetime.fromtimestamp(last_edge - (count - i) * step, UTC) for i in range(count + 1)]
    finished = col(RequestLog.completed_at)
    columns = []
    for start, end in pairwise(edges):
        inside = and_(finished >= start, finished < end)
        columns.append(func.coalesce(func.sum(case((inside, col(RequestLog.completion_tokens)), else_=0)), 0))
        columns.append(func.coalesce(func.sum(case((inside, 1), else_=0)), 0))
    query = select(*columns).where(finished >= edges[0], finished < edges[-1],
                                   col(RequestLog.created_at) >= edges[0] - LONGEST_REQUEST)
    async with database.connect() as conn:
        row = (await conn.execute(query)).one()

    series = [{'end': end, 'tokens_per_second': round(int(row[2 * i]) / step, 2),
               'requests_per_second': round(int(row[2 * i + 1]) / step, 3)}
              for i, end in enumerate(edges[1:])]
    if len(_cache) > 32:  # older steps are never asked for again
        _cache.clear()
    _cache[key] = series
    return series
