"""Figures for the admin overview and the live queue: who used the most tokens, on which models, over a time
range (from the request log), and the scheduler's queue with usernames, as the admin API shows it.

Top lists are one grouped query each over the request log's `created_at` index, limited to the top rows.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlmodel import col

from core.db import Database
from core.models import RequestLog, User, utcnow
from core.scheduler.scheduler import FairScheduler

# The ranges the overview offers: key -> (label, length)
RANGES: dict[str, tuple[str, timedelta]] = {
    '1h': ('Last hour', timedelta(hours=1)),
    '24h': ('Last 24 hours', timedelta(hours=24)),
    '7d': ('Last 7 days', timedelta(days=7)),
    '30d': ('Last 30 days', timedelta(days=30)),
}
USER_COLUMNS = ('username', 'requests', 'prompt_tokens', 'completion_tokens', 'total_tokens')
MODEL_COLUMNS = ('model', 'requests', 'prompt_tokens', 'completion_tokens', 'total_tokens')
DELETED_USER = '(deleted user)'


def since(range_key: str, *, now: datetime | None = None) -> datetime:
    """The start of a range ('1h', '24h', '7d' or '30d'); KeyError for any other key."""
    return (now or utcnow()) - RANGES[range_key][1]


async def top_users(database: Database, *, start: datetime, limit: int = 10) -> list[dict[str, Any]]:
    """The users with the most tokens (prompt + completion) since `start`, most first, with request counts."""
    total = func.coalesce(func.sum(col(RequestLog.prompt_tokens) + col(RequestLog.completion_tokens)), 0)
    query = select(col(RequestLog.user_id), col(User.username), func.count(),
                   func.coalesce(func.sum(col(RequestLog.prompt_tokens)), 0),
                   func.coalesce(func.sum(col(RequestLog.completion_tokens)), 0), total) \
        .select_from(RequestLog).outerjoin(User, col(User.id) == col(RequestLog.user_id)) \
        .where(col(RequestLog.created_at) >= start) \
        .group_by(col(RequestLog.user_id), col(User.username)).order_by(total.desc()).limit(limit)
    async with database.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{'username': name or DELETED_USER, 'requests': int(count), 'prompt_tokens': int(prompt),
             'completion_tokens': int(completion), 'total_tokens': int(tokens)}
            for _, name, count, prompt, completion, tokens in rows]


async def top_models(database: Database, *, start: datetime, limit: int = 10) -> list[dict[str, Any]]:
    """The models with the most tokens since `start`, most first, with request counts."""
    total = func.coalesce(func.sum(col(RequestLog.prompt_tokens) + col(RequestLog.completion_tokens)), 0)
    query = select(col(RequestLog.model), func.count(), func.coalesce(func.sum(col(RequestLog.prompt_tokens)), 0),
                   func.coalesce(func.sum(col(RequestLog.completion_tokens)), 0), total) \
        .where(col(RequestLog.created_at) >= start).where(col(RequestLog.model) != '') \
        .group_by(col(RequestLog.model)).order_by(total.desc()).limit(limit)
    async with database.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{'model': model, 'requests': int(count), 'prompt_tokens': int(prompt),
             'completion_tokens': int(completion), 'total_tokens': int(tokens)}
            for model, count, prompt, completion, tokens in rows]


async def queue_view(scheduler: FairScheduler, database: Database, *, limit: int = 200) -> dict[str, Any]:
    """The scheduler's snapshot as a dict, each user and queued request with its username (None when the
    account is gone): what GET /api/admin/queue returns."""
    snapshot = asdict(await scheduler.snapshot(limit=limit))
    ids = {user['user_id'] for user in snapshot['users']} | {r['user_id'] for r in snapshot['requests']}
    names: dict[int, str] = {}
    if ids:
        async with database.connect() as conn:
            rows = (await conn.execute(select(col(User.id), col(User.username)).where(col(User.id).in_(ids)))).all()
        names = {user_id: name for user_id, name in rows if user_id is not None}
    for row in (*snapshot['users'], *snapshot['requests']):
        row['username'] = names.get(row['user_id'])
    return snapshot


def as_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue().encode()


def _cell(value: Any) -> Any:
    # A spreadsheet runs a cell starting with = + - @ as a formula: a username must stay text.
    return f"'{value}" if isinstance(value, str) and value[:1] in ('=', '+', '-', '@') else value


def as_json(rows: list[dict[str, Any]], *, range_key: str, start: datetime) -> bytes:
    return orjson.dumps({'range': range_key, 'since': start.isoformat(), 'rows': rows}, option=orjson.OPT_INDENT_2)
