"""One user's own usage, read from the audit trail (request_log): totals for a period, tokens per day, tokens
per model, and the user's recent requests a page at a time. Every query is scoped to one user id and uses the
(user_id, created_at) index.

Days are UTC days (the quota periods are UTC too), bucketed in SQL with DATE(), which SQLite and MariaDB both
have; SQLite answers with a 'YYYY-MM-DD' string and MariaDB with a date, so `_as_date` normalises either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Date, func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import load_only
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import UserNotFound
from core.models import RequestLog, User, utcnow
from core.quotas.guard import Period, period_bounds
from core.quotas.limits import limits_of

RANGES = (7, 30, 90)  # the day ranges the dashboard offers
MAX_PAGE = 100  # rows per page of recent requests, at most


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    speech_chars: int = 0  # characters read aloud (text to speech)
    audio_seconds: float = 0.0  # seconds of audio transcribed (speech to text)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    requests: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ModelUsage:
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One request as the user's own list shows it (never the prompt or the answer: they can be large)."""

    created_at: datetime
    endpoint: str
    model: str
    status: str
    http_status: int
    prompt_tokens: int
    completion_tokens: int
    total_ms: float


_ROW_FIELDS = tuple(RequestRow.__dataclass_fields__)  # the columns a page of recent requests loads


async def totals(session: AsyncSession, *, user_id: int, since: datetime, until: datetime | None = None) -> Totals:
    """Requests and tokens of the user in [since, until); with since = the quota period's start this is the
    figure the token budget is checked against (core.quotas.guard reads the same sum)."""
    query = sa_select(func.count(), func.coalesce(func.sum(col(RequestLog.prompt_tokens)), 0),
                      func.coalesce(func.sum(col(RequestLog.completion_tokens)), 0),
                      func.coalesce(func.sum(col(RequestLog.speech_chars)), 0),
                      func.coalesce(func.sum(col(RequestLog.audio_seconds)), 0)) \
        .where(col(RequestLog.user_id) == user_id, col(RequestLog.created_at) >= since)
    if until is not None:
        query = query.where(col(RequestLog.created_at) < until)
    # Through the session's connection: SQLModel's select() is typed for at most four columns.
    requests, prompt, completion, chars, seconds = (await (await session.connection()).execute(query)).one()
    return Totals(requests=int(requests), prompt_tokens=int(prompt), completion_tokens=int(completion),
                  speech_chars=int(chars), audio_seconds=float(seconds))


async def daily(session: AsyncSession, *, user_id: int, days: int, today: date) -> list[DayUsage]:
    """One entry per UTC day for the `days` days ending with `today`, oldest first; days without requests are
    zeros, so a chart's axis has no gaps."""
    if days < 1:
        raise ValueError('days must be at least 1')
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    day = func.date(col(RequestLog.created_at), type_=Date)
    rows = await session.exec(
        select(day, func.count(), func.coalesce(func.sum(col(RequestLog.prompt_tokens)), 0),
               func.coalesce(func.sum(col(RequestLog.completion_tokens)), 0))
        .where(col(RequestLog.user_id) == user_id, col(RequestLog.created_at) >= since)
        .group_by(day))
    found = {_as_date(bucket): (int(count), int(prompt), int(completion)) for bucket, count, prompt, completion in rows}
    result = []
    for offset in range(days):
        current = first + timedelta(days=offset)
        count, prompt, completion = found.get(current, (0, 0, 0))
        result.append(DayUsage(day=current, requests=count, prompt_tokens=prompt, completion_tokens=completion))
    return result


async def by_model(session: AsyncSession, *, user_id: int, since: datetime, limit: int = 10) -> list[ModelUsage]:
    """The user's models since `since`, most tokens first; past `limit` the rest are summed as 'other'."""
    tokens = func.coalesce(func.sum(col(RequestLog.prompt_tokens) + col(RequestLog.completion_tokens)), 0)
    rows = list(await session.exec(
        select(col(RequestLog.model), func.count(), func.coalesce(func.sum(col(RequestLog.prompt_tokens)), 0),
               func.coalesce(func.sum(col(RequestLog.completion_tokens)), 0))
        .where(col(RequestLog.user_id) == user_id, col(RequestLog.created_at) >= since)
        .group_by(col(RequestLog.model))
        .order_by(tokens.desc(), col(RequestLog.model))))
    models = [ModelUsage(model=model or '(none)', requests=int(count), prompt_tokens=int(prompt),
                         completion_tokens=int(completion)) for model, count, prompt, completion in rows]
    if len(models) <= limit:
        return models
    rest = models[limit - 1:]
    return [*models[:limit - 1], ModelUsage(model='other', requests=sum(m.requests for m in rest),
                                            prompt_tokens=sum(m.prompt_tokens for m in rest),
                                            completion_tokens=sum(m.completion_tokens for m in rest))]


async def recent(session: AsyncSession, *, user_id: int, offset: int = 0,
                 limit: int = 20) -> tuple[list[RequestRow], int]:
    """One page of the user's requests, newest first, and how many there are in all (for the pager)."""
    limit = max(1, min(limit, MAX_PAGE))
    mine = col(RequestLog.user_id) == user_id
    total = (await session.exec(select(func.count()).select_from(RequestLog).where(mine))).one()
    rows = await session.exec(
        select(RequestLog)
        .options(load_only(*(getattr(RequestLog, name) for name in _ROW_FIELDS)))
        .where(mine)
        .order_by(col(RequestLog.created_at).desc(), col(RequestLog.id).desc())
        .offset(max(0, offset)).limit(limit))
    page = [RequestRow(**{name: getattr(row, name) for name in _ROW_FIELDS}) for row in rows]
    return page, int(total)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """What applies to a user this quota period: the figures of /api/account/usage, from the same services."""

    username: str
    role: str
    period: Period
    period_start: datetime
    period_end: datetime  # the budget renews at this instant (UTC)
    used: Totals
    token_budget: int  # 0: unlimited
    rpm_limit: int  # 0: unlimited
    max_concurrent: int  # 0: unlimited
    tts_char_budget: int = 0  # characters read aloud per period; 0: unlimited
    stt_seconds_budget: int = 0  # seconds of audio transcribed per period; 0: unlimited

    @property
    def budget_fraction(self) -> float | None:
        """Share of the budget used, capped at 1; None when the budget is unlimited."""
        if not self.token_budget:
            return None
        return min(1.0, self.used.tokens / self.token_budget)


async def account_summary(session: AsyncSession, *, user_id: int, period: Period,
                          now: datetime | None = None) -> AccountSummary:
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound(f'no user with id {user_id}', param='user_id')
    effective = await limits_of(session, user=user)
    start, end = period_bounds(period, (now or utcnow()).astimezone(UTC))
    used = await totals(session, user_id=user_id, since=start)
    return AccountSummary(username=user.username, role=effective.role, period=period, period_start=start,
                          period_end=end, used=used, token_budget=effective.effective['token_budget'],
                          rpm_limit=effective.effective['rpm_limit'],
                          max_concurrent=effective.effective['max_concurrent'],
                          tts_char_budget=effective.effective['tts_char_budget'],
                          stt_seconds_budget=effective.effective['stt_seconds_budget'])
