"""`kill -9` of the worker that runs the cluster-wide jobs, while it streams and while requests wait in the queue:
its slots and queue entries come back within the lease period, the jobs move to another process, uvicorn starts a
new worker, and nothing stays counted once the load is gone."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from tests.multiprocess.conftest import LEASE_TTL, PREFIX, STARTUP, Fleet, chat, until

pytestmark = pytest.mark.slow  # real processes: a minute or more on a busy host

MARGIN = 10.0  # seconds on top of the lease period: the host is shared and busy


def test_a_killed_leader_gives_back_its_slots_its_queue_and_its_jobs(fleet: Fleet) -> None:
    engine = fleet.sims['a']
    httpx.post(f'{engine}/_sim/config', json={'token_delay_ms': 50, 'tokens': 40}).raise_for_status()  # 2 s streams
    leader = until(fleet.leader, within=LEASE_TTL * 3, what='a process holds the cluster-jobs lease')
    stop = threading.Event()
    broken: list[str] = []

    def streams(replica: int) -> None:
        while not stop.is_set():
            try:
                chat(fleet.replicas[replica], fleet.keys['alice'], stream=True, timeout=60)
            except httpx.TransportError as exc:  # the killed worker's own streams break: expected
                broken.append(repr(exc))

    threads = [threading.Thread(target=streams, args=(index % 2,), daemon=True) for index in range(10)]
    for thread in threads:  # 10 streams on 4 slots: 4 run, 6 wait in the fleet's queue
        thread.start()
    try:
        def queued() -> int:
            with fleet.ledger() as client:
                return sum(client.zcard(key) for key in client.scan_iter(f'{{{PREFIX}:ledger}}:queue:*'))

        until(lambda: fleet.leases_by_pid().get(leader) and queued(), within=60, every=0.05,
              what=f'the leader ({leader}) streams on a slot of its own while requests wait in the fleet\'s queue')
        os.kill(leader, signal.SIGKILL)
        killed = time.monotonic()

        def given_back() -> bool:
            with fleet.ledger() as client:  # its leases, tickets and alive key, and its entry in the workers' set
                return not any(client.scan_iter(f'{{{PREFIX}:ledger}}:*-{leader}-*')) and \
                    not any(f'-{leader}-' in worker for worker in client.smembers(f'{{{PREFIX}:ledger}}:workers'))
        until(given_back, within=LEASE_TTL + MARGIN, what=f'the slots and tickets of the killed worker {leader}')
        returned_after = time.monotonic() - killed
        successor = until(lambda: (pid := fleet.leader()) and pid != leader and pid, within=LEASE_TTL * 2 + MARGIN,
                          what='another process takes the cluster-wide jobs over')
        assert successor in fleet.workers()
        until(lambda: len(fleet.workers()) == 4, within=STARTUP, what='uvicorn replaced the killed worker')
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    # Nothing stays counted: not in Redis, not in any worker's view of the queue.
    until(lambda: fleet.counted() == {'backends': {}, 'users': {}}, within=LEASE_TTL + MARGIN,
          what='no slot and no request counted once the load is gone')
    with fleet.ledger() as client:
        assert not list(client.scan_iter(f'{{{PREFIX}:ledger}}:queue:*'))
        assert not list(client.scan_iter(f'{{{PREFIX}:ledger}}:tickets:*'))
    for replica in range(len(fleet.replicas)):
        for _ in range(4):  # on fresh connections: either worker may answer
            queue = fleet.admin('GET', '/api/admin/queue', replica).json()
            assert queue['requests'] == [], queue
            backends = fleet.admin('GET', '/api/admin/backends', replica).json()
            assert all(backend['in_flight'] == 0 for backend in backends), backends
    assert chat(fleet.replicas[0], fleet.keys['alice']).status_code == 200  # and the fleet serves on
    print(f'slots of the killed worker back after {returned_after:.1f} s (lease period {LEASE_TTL} s)')
