"""One process at a time runs the cluster-wide jobs: the lease in `job_leases`, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio

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
