"""One process at a time runs the cluster-wide jobs: the lease in `job_leases`, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Database
from core.jobs.leadership import Leadership


async def test_the_first_process_leads_and_the_others_wait_their_turn(database: Database) -> None:
    first = Leadership(database, ttl=30, holder='worker-a')
    second = Leadership(database, ttl=30, holder='worker-b')

    assert await first.renew() and first.held
    assert not await second.renew() and not second.held
    assert await first.renew()  # renewing at once (same second: MariaDB DATETIME keeps none) still holds
    assert await first.renew()
    assert not await second.renew()

    await first.resign()  # a clean shutdown hands over at once
    assert not first.held
    assert await second.renew()
    assert not await first.renew()


async def test_a_leader_that_stops_renewing_is_replaced_after_its_lease_runs_out(database: Database) -> None:
    crashed = Leadership(database, ttl=1, holder='worker-a')
    survivor = Leadership(database, ttl=1, holder='worker-b')
    assert await crashed.renew()
    assert not await survivor.renew()

    # the leader died: no renewal, no resignation. Its lease ends at most 2 s on (1 s, rounded up to the whole
    # second MariaDB keeps), never sooner: until then the survivor must wait (asserted above)
    await asyncio.sleep(2.1)
    assert not crashed.held  # and it would not act on its own past the lease either
    assert await survivor.renew()
    assert not await crashed.renew()


async def test_an_unreachable_database_means_not_leading_and_no_exception(tmp_path: object) -> None:
    database = Database('mysql+aiomysql://nobody@127.0.0.1:1/none')
    leadership = Leadership(database, ttl=30, holder='worker-a')
    try:
        assert not await leadership.renew()
        assert not leadership.held
        await leadership.resign()
    finally:
        await database.dispose()


async def test_an_outage_is_one_warning_and_each_change_of_leader_one_line(
        database: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger='mindrouter.jobs')
    leader = Leadership(database, ttl=1, holder='worker-a')
    assert await leader.renew()
    assert await leader.renew()

    @asynccontextmanager
    async def unreachable() -> AsyncIterator[AsyncConnection]:
        raise ConnectionRefusedError('the database is down')
        yield  # pragma: no cover

    monkeypatch.setattr(database, 'connect', unreachable)
    for _ in range(3):
        await leader.renew()
    await asyncio.sleep(1.1)  # the lease runs out while the database is away
    assert not await leader.renew()
    monkeypatch.undo()
    assert await leader.renew()
    assert await leader.renew()

    assert [r.getMessage().replace('worker-a', 'A') for r in caplog.records] == [
        'cluster-jobs: this process (A) now runs the cluster-wide jobs',
        'leadership: could not renew the cluster-jobs lease: the database is down',
        'cluster-jobs: this process (A) no longer runs the cluster-wide jobs',
        'leadership: the cluster-jobs lease can be renewed again',
        'cluster-jobs: this process (A) now runs the cluster-wide jobs',
    ]
