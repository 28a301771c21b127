"""Reading the audit trails: search the request log, open one request, export conversations as JSON, and show
what an admin change changed. The admin API and the admin pages both call these; nothing here knows HTTP.

The request log holds hundreds of thousands of rows, so every query here is shaped for its indexes
((user_id, created_at), (created_at), (model)): a user is resolved to its id first, pages are offset/limit
newest first, counts stop at a cap instead of scanning everything, free text is searched only inside a
bounded time range, and exports walk the rows in keyset chunks with a short session each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, RowMapping, Select, and_, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import Database
from core.errors import InvalidRequest, NotFound
from core.models import AdminAction, ApiKey, RequestLog, User, utcnow

STATUSES = ('completed', 'failed', 'cancelled', 'rejected')
ENDPOINTS = ('/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/api/chat', '/api/generate', '/api/embed',
             '/anthropic/v1/messages', '/v1/messages')
COUNT_CAP = 10_000  # counting further costs a scan of every match on each search and tells an admin nothing more
TEXT_SEARCH_MAX_SPAN = timedelta(days=7)  # LIKE '%…%' reads every prompt in the range: keep the range small
EXPORT_MAX_ROWS = 50_000
EXPORT_CHUNK = 500
PAGE_LIMIT_MAX = 500

# The list view's columns: never the prompt or response, which can be megabytes each.
_LIST_COLUMNS: tuple[Any, ...] = (
    RequestLog.id, RequestLog.request_id, RequestLog.created_at, RequestLog.user_id, RequestLog.endpoint,
    RequestLog.model, RequestLog.backend_name, RequestLog.stream, RequestLog.status, RequestLog.http_status,
    RequestLog.prompt_tokens, RequestLog.completion_tokens, RequestLog.queue_ms, RequestLog.ttft_ms,
    RequestLog.total_ms, RequestLog.schema_valid, RequestLog.speech_chars, RequestLog.audio_seconds)


class RequestLogNotFound(NotFound):
    code = 'request_not_found'


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditFilter:
    """Which requests: every field narrows; None (or '') leaves it open. [since, until) in UTC."""

    user: str | None = None  # username
    model: str | None = None
    status: str | None = None
    endpoint: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None  # in the prompt or the response; needs a time range of at most TEXT_SEARCH_MAX_SPAN


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditPage:
    rows: list[dict[str, Any]]
    total: int  # matches, counted up to COUNT_CAP
    total_exact: bool  # False: at least `total` match
    offset: int
    limit: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    key: str
    before: Any
    after: Any
    changed: bool


async def search(session: AsyncSession, flt: AuditFilter, *, offset: int = 0, limit: int = 50,
                 count: bool = True) -> AuditPage:
    """One page of requests, newest first, and how many match (up to COUNT_CAP). `count=False` skips the
    count (a page turn under the same filter: the caller already knows it) and reports total -1."""
    if offset < 0:
        raise InvalidRequest('offset must be 0 or more', param='offset')
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise InvalidRequest(f'limit must be between 1 and {PAGE_LIMIT_MAX}', param='limit')
    where = await _conditions(session, flt)
    query = sa_select(*_LIST_COLUMNS, col(User.username)).outerjoin(User, col(User.id) == col(RequestLog.user_id)) \
        .where(*where).order_by(col(RequestLog.created_at).desc(), col(RequestLog.id).desc()) \
        .offset(offset).limit(limit)
    rows = [_list_row(row) for row in await _mappings(session, query)]
    total, exact = await _capped_count(session, where) if count else (-1, False)
    return AuditPage(rows=rows, total=total, total_exact=exact, offset=offset, limit=limit)


async def count_matching(session: AsyncSession, flt: AuditFilter, *, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many requests match, stopping after `cap`; (n, True) when n is exact, (cap, False) when more match."""
    return await _capped_count(session, await _conditions(session, flt), cap=cap)


async def get_request(session: AsyncSession, request_id: str) -> dict[str, Any]:
    """One request with everything recorded: prompt (parsed messages where they are JSON) and response."""
    query = select(RequestLog, User.username, ApiKey.name, ApiKey.prefix) \
        .outerjoin(User, col(User.id) == col(RequestLog.user_id)) \
        .outerjoin(ApiKey, col(ApiKey.id) == col(RequestLog.api_key_id)) \
        .where(col(RequestLog.request_id) == request_id)
    found = (await session.exec(query)).first()
    if found is None:
        raise RequestLogNotFound(f'no request with id {request_id!r} in the audit log', param='request_id')
    entry, username, key_name, key_prefix = found
    record = entry.model_dump(exclude={'prompt'})
    record.update(user=username, api_key=f'{key_name} ({key_prefix}…)' if key_name else None,
                  backend=entry.backend_name, prompt=parse_prompt(entry.prompt))
    return record


async def export_json(database: Database, flt: AuditFilter, *, max_rows: int | None = None,
                      chunk_size: int = EXPORT_CHUNK) -> AsyncIterator[bytes]:
    """The matching requests as one JSON array, oldest first, produced chunk by chunk so that neither the
    server nor the client holds the whole export. Call `check_export` first: a stream cannot turn into an
    error once it has started."""
    max_rows = EXPORT_MAX_ROWS if max_rows is None else max_rows
    yield b'['
    first = True
    after: tuple[datetime, int] | None = None
    sent = 0
    while sent < max_rows:
        async with database.session() as session:  # one short read per chunk: a slow client holds no transaction
            where = await _conditions(session, flt)
            if after is not None:
                stamp, last_id = after
                where.append(or_(col(RequestLog.created_at) > stamp,
                                 and_(col(RequestLog.created_at) == stamp, col(RequestLog.id) > last_id)))
            query = select(RequestLog, User.username).outerjoin(User, col(User.id) == col(RequestLog.user_id)) \
                .where(*where).order_by(col(RequestLog.created_at), col(RequestLog.id)) \
                .limit(min(chunk_size, max_rows - sent))
            batch = list(await session.exec(query))
        if not batch:
            break
        parts = [orjson.dumps(_export_row(entry, username)) for entry, username in batch]
        yield (b'' if first else b',') + b','.join(parts)
        first = False
        sent += len(batch)
        last = batch[-1][0]
        assert last.id is not None
        after = (last.created_at, last.id)
    yield b']'


async def check_export(session: AsyncSession, flt: AuditFilter, *, max_rows: int | None = None) -> int:
    """How many requests an export of `flt` holds; refuses (InvalidRequest) past `max_rows` (EXPORT_MAX_ROWS)."""
    max_rows = EXPORT_MAX_ROWS if max_rows is None else max_rows
    total, exact = await count_matching(session, flt, cap=max_rows)
    if not exact:
        raise InvalidRequest(f'more than {max_rows:,} requests match; an export holds at most {max_rows:,}: '
                             'narrow the time range or the filters', param='until')
    return total


async def known_models(session: AsyncSession, *, limit: int = 200) -> list[str]:
    """The models the log has seen, for the filter's suggestions (DISTINCT walks the model index, not the rows)."""
    found = await session.exec(select(RequestLog.model).distinct().order_by(col(RequestLog.model)).limit(limit))
    return [name for name in found if name]


def parse_prompt(stored: str | None) -> Any:
    """The prompt as it was recorded: the chat messages (JSON list) parsed, or a completion's prompt text."""
    if stored is None or not stored.startswith('['):
        return stored
    try:
        parsed = orjson.loads(stored)
    except orjson.JSONDecodeError:
        return stored
    return parsed if isinstance(parsed, list) else stored


def message_text(content: Any) -> str:
    """A message's content as readable text: a string as is; content parts (OpenAI/Anthropic) joined, with
    images and other non-text parts named rather than dumped."""
    if content is None:
        return ''
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get('text')
                pieces.append(str(text) if text is not None else f'[{part.get("type", "part")}]')
            else:
                pieces.append(str(part))
        return '\n'.join(pieces)
    return orjson.dumps(content).decode()


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[Change]:
    """An admin change's before/after as a key-by-key diff: every key either side has, changed ones flagged."""
    old, new = before or {}, after or {}
    keys = list(old) + [key for key in new if key not in old]
    return [Change(key=key, before=old.get(key), after=new.get(key),
                   changed=key not in old or key not in new or old[key] != new[key]) for key in keys]


def admin_action_row(entry: AdminAction) -> dict[str, Any]:
    """An admin log entry as the API and the page show it, with its diff."""
    return {'id': entry.id, 'created_at': entry.created_at, 'actor': entry.actor, 'actor_id': entry.actor_id,
            'action': entry.action, 'target': entry.target, 'via': entry.via, 'before': entry.before,
            'after': entry.after,
            'changed': [change.key for change in changes(entry.before, entry.after) if change.changed]}


def preset_range(preset: str, *, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """The time presets the console offers: '1h', '24h', '7d', '30d', or 'all' (no bounds)."""
    spans = {'1h': timedelta(hours=1), '24h': timedelta(days=1), '7d': timedelta(days=7), '30d': timedelta(days=30)}
    if preset == 'all':
        return None, None
    if preset not in spans:
        raise InvalidRequest(f'unknown time range {preset!r}', param='range')
    end = now or utcnow()
    return end - spans[preset], None


async def _conditions(session: AsyncSession, flt: AuditFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if flt.user:
        # By id, so the (user_id, created_at) index serves both the filter and the newest-first order.
        user_id = (await session.exec(select(User.id).where(col(User.username) == flt.user.strip()))).first()
        if user_id is None:
            raise InvalidRequest(f'no user named {flt.user.strip()!r}', param='user')
        where.append(col(RequestLog.user_id) == user_id)
    if flt.model:
        where.append(col(RequestLog.model) == flt.model.strip())
    if flt.status:
        if flt.status not in STATUSES:
            raise InvalidRequest(f'status must be one of {", ".join(STATUSES)}, not {flt.status!r}', param='status')
        where.append(col(RequestLog.status) == flt.status)
    if flt.endpoint:
        where.append(col(RequestLog.endpoint) == flt.endpoint.strip())
    if flt.since is not None and flt.until is not None and flt.since >= flt.until:
        raise InvalidRequest('since must be before until', param='since')
    if flt.since is not None:
        where.append(col(RequestLog.created_at) >= flt.since)
    if flt.until is not None:
        where.append(col(RequestLog.created_at) < flt.until)
    if flt.text:
        # A little grace: "the last 7 days" measured a moment ago is a few seconds more by now.
        if flt.since is None or (flt.until or utcnow()) - flt.since > TEXT_SEARCH_MAX_SPAN + timedelta(minutes=5):
            raise InvalidRequest(f'searching prompts and responses needs a time range of at most '
                                 f'{TEXT_SEARCH_MAX_SPAN.days} days', param='q')
        where.append(or_(col(RequestLog.prompt).contains(flt.text, autoescape=True),
                         col(RequestLog.response).contains(flt.text, autoescape=True)))
    return where


async def _capped_count(session: AsyncSession, where: list[ColumnElement[bool]], *,
                        cap: int = COUNT_CAP) -> tuple[int, bool]:
    # COUNT over a LIMITed subquery: the database stops after cap+1 matches however many rows the range holds.
    limited = select(RequestLog.id).where(*where).limit(cap + 1).subquery()
    found = int((await session.exec(select(func.count()).select_from(limited))).one())
    return (found, True) if found <= cap else (cap, False)


async def _mappings(session: AsyncSession, query: Select[Any]) -> list[RowMapping]:
    # Through the session's connection: SQLModel's exec() is typed for at most four columns.
    return list((await (await session.connection()).execute(query)).mappings())


def _list_row(row: RowMapping) -> dict[str, Any]:
    record = dict(row)
    record['user'] = record.pop('username')
    record['backend'] = record.pop('backend_name')
    return record


def _export_row(entry: RequestLog, username: str | None) -> dict[str, Any]:
    return {'request_id': entry.request_id, 'created_at': entry.created_at, 'user': username,
            'endpoint': entry.endpoint, 'model': entry.model, 'requested_model': entry.requested_model,
            'status': entry.status,
            'prompt': parse_prompt(entry.prompt), 'response': entry.response,
            'prompt_tokens': entry.prompt_tokens, 'completion_tokens': entry.completion_tokens,
            'speech_chars': entry.speech_chars, 'audio_seconds': entry.audio_seconds}
