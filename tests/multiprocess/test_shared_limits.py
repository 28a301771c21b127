"""Two replicas of two workers each behave as one scheduler: a backend's `max_concurrent` holds across all four
processes, and a saturated backend is shared in the users' weights."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.multiprocess.conftest import Fleet, Load

pytestmark = pytest.mark.slow  # real processes: a minute or more on a busy host

SECONDS = 15.0
WARM_UP = 3.0  # the first seconds, while the queues fill, are not counted


def test_max_concurrent_holds_across_processes_and_shares_follow_the_weights(fleet: Fleet) -> None:
    engine = fleet.sims['a']
    # 0.6 s a request: long next to a client's turnaround, so that both users always have requests waiting
    httpx.post(f'{engine}/_sim/config', json={'token_delay_ms': 20, 'tokens': 30}).raise_for_status()
    httpx.post(f'{engine}/_sim/stats/reset').raise_for_status()
    with Load(fleet, {'alice': 8, 'bob': 8}, max_tokens=30) as load:  # 16 outstanding on 4 slots: always a queue
        load_started = time.monotonic()
        time.sleep(SECONDS)
    stats = httpx.get(f'{engine}/_sim/stats').json()
    assert stats['peak_in_flight'] == 4  # reached, and never passed, by the four workers together

    assert not load.errors and all(status == 200 for _, status, _, _ in load.answers), load.errors[:3]
    # Answered while both users kept requests waiting: not the warm-up, nor the queue draining after the load stops.
    counted = [user for user, _, _, ended in load.answers if WARM_UP < ended - load_started <= SECONDS]
    alice = counted.count('alice') / len(counted)
    assert len(counted) > 50, len(counted)
    assert abs(alice - 0.75) <= 0.03, f'alice (faculty, weight 3) got {alice:.1%} against bob (student, weight 1)'
