"""The status page's throughput series: completion tokens and requests per second in fixed buckets, read from the
audit trail (SQLite and MariaDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.db import Database
from core.errors import InvalidRequest
from core.models import RequestLog
from core.status.throughput import throughput_history

NOW = datetime(2026, 3, 2, 12, 0, 7, tzinfo=UTC)  # 7 s into a 10 s bucket: that bucket is not finished


async def finished(database: Database, *requests: tuple[datetime, int]) -> None:
    async with database.session() as session:
        for number, (at, tokens) in enumerate(requests):
            session.add(RequestLog(request_id=f'r{number}', endpoint='/v1/chat/completions', model='m',
                                   status='completed', completion_tokens=tokens, created_at=at - timedelta(seconds=2),
                                   completed_at=at))
        await session.commit()


async def test_requests_land_in_the_bucket_they_finished_in(database: Database) -> None:
    minute = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    await finished(database,
                   (minute - timedelta(seconds=5), 30),  # the last finished bucket, 11:59:50-12:00:00
                   (minute - timedelta(seconds=1), 20),  # the same one
                   (minute - timedelta(seconds=25), 10),  # 11:59:30-11:59:40
                   (minute + timedelta(seconds=3), 999),  # the running bucket: not shown yet
                   (minute - timedelta(minutes=11), 999))  # before the window

    series = await throughput_history(database, minutes=1, step=10, now=NOW)

    assert [point['end'] for point in series] == [minute - timedelta(seconds=s) for s in (50, 40, 30, 20, 10, 0)]
    assert [point['tokens_per_second'] for point in series] == [0, 0, 0, 1.0, 0, 5.0]
    assert [point['requests_per_second'] for point in series] == [0, 0, 0, 0.1, 0, 0.2]


async def test_an_empty_trail_is_a_flat_line_and_nonsense_windows_are_refused(database: Database) -> None:
    series = await throughput_history(database, minutes=10, step=10, now=NOW)
    assert len(series) == 60 and {point['tokens_per_second'] for point in series} == {0}
    with pytest.raises(InvalidRequest):
        await throughput_history(database, minutes=10, step=0, now=NOW)
    with pytest.raises(InvalidRequest):
        await throughput_history(database, minutes=600, step=1, now=NOW)
