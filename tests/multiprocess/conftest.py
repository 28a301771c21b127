"""One gateway made of many processes, measured from outside: two `mindrouter serve --no-ui --workers 2` replicas on
one MariaDB and one Redis of the tests' own (so that a test may kill and restart them), simulated engines behind.

The users: `root` (admin), `alice` (faculty, weight 3) and `bob` (student, weight 1), their request limits lifted.
A small SCHEDULER_BURST_TOKENS (see the fixture), and short periods, so that what the tests wait for happens in
seconds: LEADER_LEASE_TTL=3 (a dead process's jobs and slots come back within it), REGISTRY_RELOAD_INTERVAL=0.5,
and SETTINGS_RELOAD_INTERVAL=3600 (a setting that arrives within seconds came by the Redis message, not by the
periodic re-read).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from tests.e2e.cluster import BIN, cli
from tests.e2e.processes import free_port, running, wait_until_ready
from tests.multiprocess.services import OwnMariaDB, OwnRedis

PREFIX = 'mr'
LEASE_TTL = 3.0
GRACE = 4.0  # SHUTDOWN_GRACE_SECONDS: the short stream of test_shutdown (2 s) ends within it
MODEL = 'llama3.2'
STARTUP = 300.0  # seconds a replica may take to come up: its workers import the whole app (over 120 s at load 20)


@dataclass
class Fleet:
    replicas: list[str]  # the base URL of each `serve` process
    admin_key: str
    keys: dict[str, str]  # username -> API key
    sims: dict[str, str]  # backend name -> engine URL
    redis: OwnRedis
    mariadb: OwnMariaDB
    env: dict[str, str]
    root: Path
    # Starts one more replica (its log's name): its URL, its process, and the stack that stops it.
    serve: Callable[[str], tuple[str, subprocess.Popen[bytes], ExitStack]] = field(repr=False)

    def admin(self, method: str, path: str, replica: int = 0, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f'{self.replicas[replica]}{path}', headers={'X-API-Key': self.admin_key},
                             timeout=30, **kwargs)

    def ledger(self) -> Redis:
        return Redis(port=self.redis.port, decode_responses=True, socket_timeout=5)

    def counted(self) -> dict[str, dict[str, str]]:
        """What Redis counts now: slots per backend and requests per user, fleet-wide (empty when nothing runs)."""
        with self.ledger() as client:
            return {'backends': client.hgetall(f'{{{PREFIX}:ledger}}:backends'),
                    'users': client.hgetall(f'{{{PREFIX}:ledger}}:users')}

    def workers(self) -> set[int]:
        """The pids of the workers alive in the ledger (each refreshes its `alive` key; a dead one's expires)."""
        with self.ledger() as client:
            return {int(key.rsplit('-', 2)[1]) for key in client.scan_iter(f'{{{PREFIX}:ledger}}:alive:*')}

    def leases_by_pid(self) -> dict[int, int]:
        """Slots each worker process holds, from the ledger's keys (worker ids are host-pid-random)."""
        with self.ledger() as client:
            return {int(key.rsplit(':', 1)[1].rsplit('-', 2)[1]): int(client.hlen(key))
                    for key in client.scan_iter(f'{{{PREFIX}:ledger}}:leases:*')}

    def leader(self) -> int | None:
        """The pid of the process holding the cluster-jobs lease now (None when it has expired)."""
        rows = self.mariadb.query('SELECT holder FROM job_leases WHERE expires_at > UTC_TIMESTAMP()')
        return int(str(rows[0][0]).rsplit('-', 2)[1]) if rows else None


def chat(url: str, key: str, *, stream: bool = False, max_tokens: int | None = None, timeout: float = 60,
         content: str = 'hello') -> httpx.Response:
    """One chat on its own connection (so that the kernel may hand it to either worker of the replica)."""
    body: dict[str, Any] = {'model': MODEL, 'messages': [{'role': 'user', 'content': content}], 'stream': stream}
    if max_tokens is not None:
        body['max_tokens'] = max_tokens
    return httpx.post(f'{url}/v1/chat/completions', headers={'X-API-Key': key}, json=body, timeout=timeout)


def until(check: Callable[[], object], *, within: float, every: float = 0.1, what: str = '') -> Any:
    """Poll `check` until it returns something true; fail with `what` and its last answer after `within` s."""
    deadline = time.monotonic() + within
    result: object = None
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f'not within {within} s: {what} (last: {result!r})')


class Load:
    """Closed-loop clients: each thread sends its next request as soon as the last one ends, alternating replicas;
    every answer (status, request id, when it ended) is kept."""

    def __init__(self, fleet: Fleet, users: dict[str, int], *, max_tokens: int = 20) -> None:
        self._fleet = fleet
        self._stop = threading.Event()
        self.answers: list[tuple[str, int, str, float]] = []  # user, status, request id, monotonic end
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(user, index, max_tokens), daemon=True)
                         for user, outstanding in users.items() for index in range(outstanding)]

    def _loop(self, user: str, index: int, max_tokens: int) -> None:
        body = {'model': MODEL, 'messages': [{'role': 'user', 'content': 'hello'}], 'max_tokens': max_tokens}
        # One client per thread, kept alive: a new connection per request costs the (shared, busy) host more CPU
        # than the gateway spends, and slow clients would leave gaps in the queue.
        client = httpx.Client(base_url=self._fleet.replicas[index % len(self._fleet.replicas)], timeout=30,
                              headers={'X-API-Key': self._fleet.keys[user]})
        while not self._stop.is_set():
            try:
                answer = client.post('/v1/chat/completions', json=body)
            except httpx.TransportError as exc:
                with self._lock:
                    self.errors.append(f'{user}: {exc!r}')
                time.sleep(0.1)
                continue
            with self._lock:
                self.answers.append((user, answer.status_code, answer.headers.get('x-request-id', ''),
                                     time.monotonic()))
        client.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


@pytest.fixture(scope='package')
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp('fleet')
    with ExitStack() as stack:
        own_redis, mariadb = OwnRedis(root, 'redis'), OwnMariaDB(root, 'mariadb')
        for server in (own_redis, mariadb):
            server.start()
            stack.callback(server.stop)
        env = {**_environment(), 'DATA_DIR': str(root / 'data'), 'DATABASE_URL': mariadb.url,
               'REDIS_URL': own_redis.url, 'REDIS_PREFIX': PREFIX, 'LOG_LEVEL': 'info', 'GC_FREEZE': 'false',
               'AUDIT_FLUSH_INTERVAL': '0.2', 'REGISTRY_RELOAD_INTERVAL': '0.5', 'LEADER_LEASE_TTL': str(LEASE_TTL),
               'SETTINGS_RELOAD_INTERVAL': '3600', 'BACKEND_CHECK_INTERVAL': '3600',
               'SHUTDOWN_GRACE_SECONDS': str(GRACE),
               # The credit a user who was idle may spend ahead of the others (512 tokens by default) would let the
               # history of earlier tests, not the weights, decide the first seconds of a fairness measure.
               'SCHEDULER_BURST_TOKENS': '40'}
        sims = {}
        for name in ('a', 'b'):
            port = free_port()
            sims[name] = f'http://127.0.0.1:{port}'
            stack.enter_context(running([sys.executable, '-m', 'sim', 'ollama', '--port', str(port)], env,
                                        log_path=root / f'sim-{name}.log', ready_url=f'{sims[name]}/_sim/config'))
        cli(env, 'migrate')
        cli(env, 'create-user', 'root', '--role', 'admin')
        cli(env, 'create-user', 'alice', '--role', 'faculty')
        cli(env, 'create-user', 'bob', '--role', 'student')
        admin_key = cli(env, 'create-key', 'root').strip()
        keys = {user: cli(env, 'create-key', user).strip() for user in ('alice', 'bob')}

        def serve(log_name: str) -> tuple[str, subprocess.Popen[bytes], ExitStack]:
            """One more replica, started (not yet ready: `wait_until_ready`)."""
            port = free_port()
            url = f'http://127.0.0.1:{port}'
            own = ExitStack()
            process = own.enter_context(running(
                [str(BIN / 'mindrouter'), 'serve', '--no-ui', '--workers', '2', '--port', str(port)], env,
                log_path=root / f'{log_name}.log', ready_url=None))
            return url, process, own

        replicas = []
        for name in ('replica-1', 'replica-2'):  # side by side: each takes long to start on a busy host
            url, process, own = serve(name)
            stack.enter_context(own)
            replicas.append((url, process, root / f'{name}.log'))
        for url, process, log in replicas:
            wait_until_ready(f'{url}/healthz', process, log, STARTUP)
        fleet = Fleet([url for url, _, _ in replicas], admin_key, keys, sims, own_redis, mariadb, env, root, serve)
        registered = fleet.admin('POST', '/api/admin/backends/register', json={
            'name': 'a', 'url': sims['a'], 'engine': 'ollama', 'max_concurrent': 4})
        assert registered.status_code == 201, registered.text
        for user in keys:
            fleet.admin('PUT', f'/api/admin/users/{user}/quota', json={
                'rpm_limit': 0, 'max_concurrent': 0, 'token_budget': 0, 'note': 'test suite'}).raise_for_status()
        until(lambda: len(fleet.workers()) == 4, within=STARTUP, what='all four workers admitting')
        time.sleep(1.5)  # every worker's registry has the backend (REGISTRY_RELOAD_INTERVAL)
        yield fleet


def _environment() -> dict[str, str]:
    import os

    env = dict(os.environ)
    for name in ('DATABASE_URL', 'REDIS_URL'):
        env.pop(name, None)
    return env
