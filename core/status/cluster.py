"""Cluster figures for the public pages: status summary, tokens served, daily trends, live throughput.

Sums over the request log are not free on a large table, so each answer is kept for a few seconds."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlmodel import col

from core.db import Database
from core.models import BackendStatus, NodeStatus, RequestLog, utcnow
from core.registry import nodes as node_store
from core.registry.view import RegistryView
from core.status.alerts import cluster_alerts

T = TypeVar('T')


class ClusterStats:
    def __init__(self, database: Database, view: RegistryView, *, ttl: float = 10.0) -> None:
        self._database = database
        self._view = view
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Any]] = {}

    async def status(self) -> dict[str, Any]:
        async with self._database.session() as session:
            nodes = await node_store.list_nodes(session)
        backends = self._view.backends
        counts = {state.value: sum(1 for b in backends if b.status == state) for state in BackendStatus}
        alerts = cluster_alerts(self._view, nodes)
        healthy = sum(1 for b in backends if b.healthy)
        overall = 'down' if backends and not healthy else 'degraded' if alerts else 'ok'
        return {
            'status': overall,
            'backends': {'total': len(backends), 'taking_requests': healthy, **counts},
            'nodes': {'total': len(nodes), 'online': sum(1 for n in nodes if n.status == NodeStatus.online),
                      'offline': sum(1 for n in nodes if n.status == NodeStatus.offline)},
            'models': [entry.info.name for entry in self._view.catalog(include_aliases=False)],
            'in_flight': sum(b.total_in_flight for b in backends),
            'alerts': [alert.as_dict() for alert in alerts],
        }

    async def total_tokens(self) -> dict[str, int]:
        async def query() -> dict[str, int]:
            async with self._database.connect() as conn:
                prompt, completion, requests = (await conn.execute(select(
                    func.coalesce(func.sum(col(RequestLog.prompt_tokens)), 0),
                    func.coalesce(func.sum(col(RequestLog.completion_tokens)), 0),
                    func.count()))).one()
            return {'total_tokens': int(prompt) + int(completion), 'prompt_tokens': int(prompt),
                    'completion_tokens': int(completion), 'requests': int(requests)}
        return await self._cached('total', query)

    async def trends(self, days: int) -> list[dict[str, Any]]:
        """Per day (UTC): requests, tokens and distinct users, oldest first."""
        async def query() -> list[dict[str, Any]]:
            since = utcnow() - timedelta(days=days)
            day = func.date(col(RequestLog.created_at))
            async with self._database.connect() as conn:
                rows = (await conn.execute(
                    select(day, func.count(), func.coalesce(func.sum(col(RequestLog.prompt_tokens)
                                                                     + col(RequestLog.completion_tokens)), 0),
                           func.count(func.distinct(col(RequestLog.user_id))))
                    .where(col(RequestLog.created_at) >= since).group_by(day).order_by(day))).all()
            return [{'date': str(date), 'requests': int(count), 'tokens': int(tokens), 'active_users': int(users)}
                    for date, count, tokens, users in rows]
        return await self._cached(f'trends-{days}', query)

    async def throughput(self, window_s: int = 60) -> dict[str, Any]:
        """Completion tokens per second over the last `window_s` seconds."""
        async def query() -> dict[str, Any]:
            since = utcnow() - timedelta(seconds=window_s)
            async with self._database.connect() as conn:
                tokens, requests = (await conn.execute(select(
                    func.coalesce(func.sum(col(RequestLog.completion_tokens)), 0), func.count())
                    .where(col(RequestLog.completed_at) >= since))).one()
            return {'window_seconds': window_s, 'requests': int(requests),
                    'tokens_per_second': round(int(tokens) / window_s, 2)}
        return await self._cached(f'throughput-{window_s}', query, ttl=2.0)

    async def _cached(self, key: str, compute: Callable[[], Awaitable[T]], ttl: float | None = None) -> T:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            cached: T = hit[1]
            return cached
        value = await compute()
        self._cache[key] = (now + (self._ttl if ttl is None else ttl), value)
        return value
