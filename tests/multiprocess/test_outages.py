"""The shared servers restarted under load. Redis: requests keep flowing on each worker's own counts, and the
fleet-wide counts are right again afterwards. MariaDB: requests keep flowing (keys and limits are cached), audit
rows wait in memory, and every answered request has its row once the database is back."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.multiprocess.conftest import LEASE_TTL, Fleet, Load, chat, until

pytestmark = pytest.mark.slow  # real processes: a minute or more on a busy host

OUTAGE = 4.0  # seconds the server stays down
MARGIN = 15.0


def test_requests_flow_through_a_redis_restart_and_the_counts_reconcile(fleet: Fleet) -> None:
    httpx.post(f'{fleet.sims["a"]}/_sim/config', json={'token_delay_ms': 10, 'tokens': 20}).raise_for_status()
    with Load(fleet, {'alice': 3, 'bob': 3}) as load:
        time.sleep(2)
        fleet.redis.kill()  # kill -9: a crash, and it comes back empty (no persistence)
        down = time.monotonic()
        time.sleep(OUTAGE)
        fleet.redis.start()
        up = time.monotonic()
        time.sleep(4)

    assert not load.errors, load.errors[:3]
    assert {status for _, status, _, _ in load.answers} == {200}
    assert sum(down + 1 < ended < up for *_, ended in load.answers) > 5  # served while Redis was away
    assert sum(ended > up + 2 for *_, ended in load.answers) > 5  # and after
    # The restarted Redis knows every worker again, and counts what runs, which is nothing now.
    until(lambda: len(fleet.workers()) == 4, within=LEASE_TTL + MARGIN, what='every worker back in the ledger')
    until(lambda: fleet.counted() == {'backends': {}, 'users': {}}, within=LEASE_TTL + MARGIN,
          what='no slot counted once the load is gone')
    assert chat(fleet.replicas[1], fleet.keys['bob']).status_code == 200
    assert fleet.counted() == {'backends': {}, 'users': {}}  # a lease taken on fleet-wide counts was given back


def test_no_audit_row_is_lost_through_a_mariadb_restart(fleet: Fleet) -> None:
    httpx.post(f'{fleet.sims["a"]}/_sim/config', json={'token_delay_ms': 10, 'tokens': 20}).raise_for_status()
    with Load(fleet, {'alice': 3, 'bob': 3}) as load:
        time.sleep(2)
        fleet.mariadb.kill()  # kill -9: InnoDB recovers at the next start
        down = time.monotonic()
        time.sleep(OUTAGE)
        fleet.mariadb.start()
        up = time.monotonic()
        time.sleep(3)

    assert not load.errors, load.errors[:3]
    served = {request_id for _, status, request_id, _ in load.answers if status == 200}
    assert {status for _, status, _, _ in load.answers} == {200}
    assert sum(down + 1 < ended < up for *_, ended in load.answers) > 5  # served while MariaDB was away
    answered = {request_id for *_, request_id, _ in load.answers}
    assert len(served) > 20 and all(answered)

    def stored() -> set[str]:
        return {str(row[0]) for row in fleet.mariadb.query('SELECT request_id FROM request_log')}
    until(lambda: answered <= stored(), within=MARGIN * 2, every=0.5, what='every answered request has its audit row')
