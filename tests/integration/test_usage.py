"""A user's own usage and keys (core.quotas.usage, core.accounts.my_keys), on SQLite and MariaDB: every figure is
the user's alone, days are bucketed the same on both databases, and another user's key can be neither seen nor
revoked."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from core.accounts import my_keys
from core.accounts import service as accounts
from core.db import Database
from core.errors import ApiKeyNotFound, InvalidRequest
from core.models import ApiKeyStatus, RequestLog
from core.quotas import usage

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


async def make_users(database: Database) -> tuple[int, int]:
    async with database.session() as session:
        alice = await accounts.create_user(session, username='alice', role='student')
        bob = await accounts.create_user(session, username='bob', role='faculty')
    assert alice.id is not None and bob.id is not None
    return alice.id, bob.id


async def log(database: Database, user_id: int, *rows: tuple[datetime, str, int, int]) -> None:
    """Requests in the audit trail: (when, model, prompt tokens, completion tokens)."""
    async with database.session() as session:
        for when, model, prompt, completion in rows:
            session.add(RequestLog(request_id=f'r-{user_id}-{when.isoformat()}-{model}', user_id=user_id,
                                   endpoint='/v1/chat/completions', model=model, status='completed',
                                   prompt_tokens=prompt, completion_tokens=completion, total_ms=250.0,
                                   created_at=when))
        await session.commit()


async def test_daily_usage_is_the_users_own_per_utc_day_with_empty_days_filled(database: Database) -> None:
    alice, bob = await make_users(database)
    await log(database, alice,
              (NOW, 'llama', 10, 20),
              (NOW.replace(hour=0, minute=0, second=1), 'qwen', 1, 2),  # same UTC day, just after midnight
              (NOW - timedelta(days=2, hours=1), 'llama', 100, 200),
              (NOW - timedelta(days=30), 'llama', 5, 5))  # outside a 7-day range
    await log(database, bob, (NOW, 'llama', 1000, 1000))
    async with database.session() as session:
        days = await usage.daily(session, user_id=alice, days=7, today=NOW.date())
    assert [d.day for d in days] == [NOW.date() - timedelta(days=n) for n in range(6, -1, -1)]
    assert days[-1] == usage.DayUsage(day=NOW.date(), requests=2, prompt_tokens=11, completion_tokens=22)
    assert days[-3] == usage.DayUsage(day=date(2026, 3, 13), requests=1, prompt_tokens=100, completion_tokens=200)
    assert sum(d.requests for d in days) == 3  # bob's request and the old one are not counted


async def test_totals_by_model_and_summary_count_the_period_only(database: Database) -> None:
    alice, bob = await make_users(database)
    await log(database, alice, (NOW, 'llama', 10, 20), (NOW - timedelta(hours=1), 'qwen', 300, 1),
              (datetime(2026, 2, 27, tzinfo=UTC), 'llama', 7, 7))  # last month
    await log(database, bob, (NOW, 'qwen', 1000, 1000))
    month_start = datetime(2026, 3, 1, tzinfo=UTC)
    async with database.session() as session:
        total = await usage.totals(session, user_id=alice, since=month_start)
        models = await usage.by_model(session, user_id=alice, since=month_start)
        summary = await usage.account_summary(session, user_id=alice, period='month', now=NOW)
        admin = await usage.account_summary(session, user_id=bob, period='day', now=NOW)
    assert total == usage.Totals(requests=2, prompt_tokens=310, completion_tokens=21)
    assert [(m.model, m.requests, m.tokens) for m in models] == [('qwen', 1, 301), ('llama', 1, 30)]
    assert summary.used == total
    assert (summary.period_start, summary.period_end) == (month_start, datetime(2026, 4, 1, tzinfo=UTC))
    assert (summary.role, summary.token_budget, summary.rpm_limit, summary.max_concurrent) == \
        ('student', 2_000_000, 60, 4)
    assert summary.budget_fraction == pytest.approx(331 / 2_000_000)
    assert admin.used.tokens == 2000 and admin.period_end == datetime(2026, 3, 16, tzinfo=UTC)


async def test_by_model_sums_the_tail_as_other(database: Database) -> None:
    alice, _ = await make_users(database)
    await log(database, alice, *[(NOW, f'model-{n}', 10 * (n + 1), 0) for n in range(5)])
    async with database.session() as session:
        models = await usage.by_model(session, user_id=alice, since=NOW - timedelta(days=1), limit=3)
    assert [(m.model, m.tokens, m.requests) for m in models] == [('model-4', 50, 1), ('model-3', 40, 1),
                                                                 ('other', 60, 3)]


async def test_recent_requests_page_through_the_users_rows_newest_first(database: Database) -> None:
    alice, bob = await make_users(database)
    await log(database, alice, *[(NOW - timedelta(minutes=n), f'm{n}', n, n) for n in range(25)])
    await log(database, bob, (NOW + timedelta(minutes=1), 'bobs', 1, 1))
    async with database.session() as session:
        first, total = await usage.recent(session, user_id=alice, offset=0, limit=10)
        last, _ = await usage.recent(session, user_id=alice, offset=20, limit=10)
        nothing, none = await usage.recent(session, user_id=bob + 100, offset=0, limit=10)
    assert total == 25
    assert [r.model for r in first] == [f'm{n}' for n in range(10)]
    assert [r.model for r in last] == [f'm{n}' for n in range(20, 25)]
    assert first[0].created_at == NOW and first[0].total_ms == 250.0 and first[0].endpoint == '/v1/chat/completions'
    assert (nothing, none) == ([], 0)


async def test_own_keys_are_listed_created_and_revoked_only_by_their_owner(database: Database) -> None:
    alice, bob = await make_users(database)
    async with database.session() as session:
        key, plaintext = await my_keys.create_my_key(session, user_id=alice, name=' laptop ',
                                                     expires_on=NOW.date() + timedelta(days=10), today=NOW.date())
        bobs, _ = await my_keys.create_my_key(session, user_id=bob, name='bob')
        assert key.name == 'laptop' and plaintext.startswith(key.prefix)
        assert key.expires_at == datetime(2026, 3, 25, tzinfo=UTC)
        assert [k.id for k in await my_keys.list_my_keys(session, user_id=alice)] == [key.id]
        with pytest.raises(ApiKeyNotFound):
            await my_keys.revoke_my_key(session, user_id=alice, key_id=bobs.id)  # as if it did not exist
        revoked = await my_keys.revoke_my_key(session, user_id=alice, key_id=key.id)
        assert revoked.status == ApiKeyStatus.revoked
        [still] = await my_keys.list_my_keys(session, user_id=bob)
        assert still.status == ApiKeyStatus.active
        later = NOW + timedelta(days=11)
        soon, _ = await my_keys.create_my_key(session, user_id=bob, name='short', expires_on=date(2026, 3, 20),
                                              today=NOW.date())
        assert {k.id: k.status for k in await my_keys.list_my_keys(session, user_id=bob, now=later)} == \
            {soon.id: 'expired', bobs.id: 'active'}


@pytest.mark.parametrize(('name', 'expires_on', 'param'), [
    ('   ', None, 'name'), ('x' * 101, None, 'name'), ('ok', NOW.date(), 'expires_at')])
async def test_a_key_needs_a_name_and_a_future_expiry(database: Database, name: str, expires_on: date | None,
                                                      param: str) -> None:
    alice, _ = await make_users(database)
    async with database.session() as session:
        with pytest.raises(InvalidRequest) as refused:
            await my_keys.create_my_key(session, user_id=alice, name=name, expires_on=expires_on, today=NOW.date())
    assert refused.value.param == param
