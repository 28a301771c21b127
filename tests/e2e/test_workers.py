"""Several API workers behave as one gateway: `mindrouter serve --no-ui --workers 2` with Redis.

Slots are counted fleet-wide, and a drain waits for the streams of every worker, not only those of the
worker that happens to run the cluster-wide jobs."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from sim.text import expected_text
from tests.e2e.processes import free_port, running

BIN = Path(sys.executable).parent
PROMPT = 'stream for a while'
TOKENS = 60  # at 50 ms a token: a 3-second stream


@dataclass
class Fleet:
    url: str
    admin: dict[str, str]  # headers
    sims: dict[str, str]
    redis: redis.Redis
    prefix: str
    database: Path

    def register(self, name: str, max_concurrent: int) -> int:
        response = httpx.post(f'{self.url}/api/admin/backends/register', headers=self.admin, json={
            'name': name, 'url': self.sims[name], 'engine': 'ollama', 'max_concurrent': max_concurrent})
        response.raise_for_status()
        backend_id: int = response.json()['id']
        return backend_id

    def backend(self, name: str) -> dict[str, object]:
        listed = httpx.get(f'{self.url}/api/admin/backends', headers=self.admin).json()
        found: dict[str, object] = next(b for b in listed if b['name'] == name)
        return found

    def slots_by_pid(self) -> dict[int, int]:
        """Slots each worker process holds now, from the ledger's keys (white-box: the test must know which
        worker holds what, to prove that the one running the jobs waits for the other)."""
        held = {}
        for key in self.redis.scan_iter(f'{{{self.prefix}:ledger}}:leases:*'):
            worker = key.decode().rsplit(':', 1)[1]  # host-pid-random
            held[int(worker.rsplit('-', 2)[1])] = int(self.redis.hlen(key))
        return held

    def leader_pid(self) -> int:
        with sqlite3.connect(self.database) as db:
            (holder,) = db.execute('SELECT holder FROM job_leases').fetchone()
        return int(holder.rsplit('-', 2)[1])


@pytest.fixture(scope='module')
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    url = os.environ.get('TEST_REDIS_URL', 'redis://127.0.0.1:6379/0')
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        if os.environ.get('CI'):
            pytest.fail(f'Redis is not reachable at {url}; CI must test several workers on it')
        pytest.skip('Redis not available')
    root = tmp_path_factory.mktemp('workers')
    prefix = f'mrtest-{secrets.token_hex(4)}'
    env = {**os.environ, 'DATA_DIR': str(root / 'data'), 'LOG_LEVEL': 'warning', 'REDIS_URL': url,
           'REDIS_PREFIX': prefix, 'REGISTRY_RELOAD_INTERVAL': '0.3', 'BACKEND_CHECK_INTERVAL': '3600'}
    env.pop('DATABASE_URL', None)
    with ExitStack() as stack:
        stack.callback(client.close)
        stack.callback(lambda: [client.delete(key) for key in client.scan_iter(f'*{prefix}*')])
        sims = {}
        for name in ('busy', 'spare'):
            port = free_port()
            sims[name] = f'http://127.0.0.1:{port}'
            stack.enter_context(running([sys.executable, '-m', 'sim', 'ollama', '--port', str(port)], env,
                                        log_path=root / f'{name}.log', ready_url=f'{sims[name]}/_sim/config'))
            httpx.post(f'{sims[name]}/_sim/config', json={'token_delay_ms': 50, 'tokens': TOKENS}).raise_for_status()
        for args in (('migrate',), ('create-user', 'root', '--role', 'admin')):
            subprocess.run([str(BIN / 'mindrouter'), *args], env=env, check=True, capture_output=True)
        key = subprocess.run([str(BIN / 'mindrouter'), 'create-key', 'root'], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        port = free_port()
        gateway = f'http://127.0.0.1:{port}'
        stack.enter_context(running([str(BIN / 'mindrouter'), 'serve', '--no-ui', '--workers', '2', '--port',
                                     str(port)], env, log_path=root / 'gateway.log', ready_url=f'{gateway}/healthz'))
        yield Fleet(gateway, {'X-API-Key': key}, sims, client, prefix, root / 'data' / 'mindrouter.db')


def stream(fleet: Fleet, results: list[str]) -> None:
    """One streaming chat on its own connection (so the kernel may hand it to either worker)."""
    with httpx.Client(timeout=30) as client:
        response = client.post(f'{fleet.url}/v1/chat/completions', headers=fleet.admin, json={
            'model': 'llama3.2', 'messages': [{'role': 'user', 'content': PROMPT}], 'max_tokens': TOKENS,
            'stream': True})
        results.append(response.text)


def test_a_drain_waits_for_the_streams_of_every_worker(fleet: Fleet) -> None:
    busy = fleet.register('busy', max_concurrent=8)
    time.sleep(1)  # every worker's registry has it
    leader = fleet.leader_pid()
    results: list[str] = []
    streams: list[threading.Thread] = []
    # Streams, one at a time, until the worker that does NOT run the jobs holds one: a drain that counted
    # only the leader's own requests would disable the backend under it.
    for _ in range(8):
        streams.append(threading.Thread(target=stream, args=(fleet, results)))
        streams[-1].start()
        deadline = time.monotonic() + 5
        while sum(fleet.slots_by_pid().values()) < len(streams) and time.monotonic() < deadline:
            time.sleep(0.02)
        if any(count for pid, count in fleet.slots_by_pid().items() if pid != leader):
            break
    held = fleet.slots_by_pid()
    assert any(count for pid, count in held.items() if pid != leader), held
    assert fleet.backend('busy')['in_flight'] == len(streams)  # fleet-wide, whichever worker answers

    fleet.register('spare', max_concurrent=4)
    drained = httpx.post(f'{fleet.url}/api/admin/backends/{busy}/drain', headers=fleet.admin)
    assert drained.json()['status'] == 'draining'
    time.sleep(0.5)  # both workers have reloaded the registry
    for _ in range(4):  # new work goes elsewhere, whichever worker takes it
        answer = httpx.post(f'{fleet.url}/v1/chat/completions', headers=fleet.admin, json={
            'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 1})
        assert answer.headers['x-mindrouter-backend'] == 'spare'

    while any(thread.is_alive() for thread in streams):
        status = fleet.backend('busy')['status']
        running = sum(fleet.slots_by_pid().values())
        assert status == 'draining' or not running, f'{status} while {running} streams still ran on it'
        time.sleep(0.05)
    for thread in streams:
        thread.join()

    assert len(results) == len(streams)
    for body in results:  # no stream lost or cut
        assert body.rstrip().endswith('data: [DONE]')
        chunks = [json.loads(line[6:]) for line in body.splitlines() if line.startswith('data: {')]
        assert ''.join(c['choices'][0]['delta'].get('content') or '' for c in chunks if c['choices']) == \
            expected_text(PROMPT, TOKENS)
    deadline = time.monotonic() + 5
    while fleet.backend('busy')['status'] != 'disabled' and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fleet.backend('busy')['status'] == 'disabled'
    assert fleet.backend('busy')['in_flight'] == 0


def test_two_workers_together_never_put_more_than_max_concurrent_on_an_engine(fleet: Fleet) -> None:
    spare = fleet.sims['spare']  # registered by the drain test with max_concurrent=4; register it if run alone
    if not any(b['name'] == 'spare' for b in httpx.get(f'{fleet.url}/api/admin/backends', headers=fleet.admin).json()):
        fleet.register('spare', max_concurrent=4)
        time.sleep(1)
    httpx.post(f'{spare}/_sim/config', json={'token_delay_ms': 20, 'tokens': 20}).raise_for_status()
    httpx.post(f'{spare}/_sim/stats/reset').raise_for_status()
    results: list[str] = []
    threads = [threading.Thread(target=stream, args=(fleet, results)) for _ in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(fleet.slots_by_pid()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fleet.slots_by_pid()) == 2, 'both workers should be admitting requests'
    for thread in threads:
        thread.join()

    assert len(results) == 16 and all(body.rstrip().endswith('data: [DONE]') for body in results)
    stats = httpx.get(f'{spare}/_sim/stats').json()
    assert stats['peak_in_flight'] == 4  # the limit was reached, and never passed, by both workers together
