"""Chaos at scale, through real processes: 10,000 requests in all three dialects, streamed and not, from several
users, against `mindrouter serve --no-ui --workers 2` on Redis, while engines fail and clients walk away.

The run mixes: 20 % of the clients leaving at a random moment (mid-stream, or before a one-shot answer came),
engines answering 500 to some requests (failed over before the first byte), an engine dying mid-answer on some
streams, a slow engine, a backend disabled and another drained mid-run, and the Redis server killed and
restarted in the middle (the workers fall back to their own counts and reconcile when it is back).

Afterwards nothing may be left counted anywhere: every slot, queue entry and in-flight count in the gateway
and in Redis is back to zero, the engines run nothing, every request has exactly one audit row with the right
status (499 for a client that left), every stream cut by an engine ended with its dialect's error event, and the
workers hold no more file descriptors than before. `CHAOS_REQUESTS` makes a shorter or longer run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.processes import free_port, running

BIN = Path(sys.executable).parent
REQUESTS = int(os.environ.get('CHAOS_REQUESTS', '10000'))
CONCURRENCY = 64
MAX_CONCURRENT = 12  # per backend
DB_POOL_SIZE = 10  # connections each worker keeps (DB_POOL_SIZE's default)
ABORT_SHARE = 0.2
MODEL = 'chaos:latest'
PREFIX = 'chaos'
# 40 tokens 2 ms apart: long enough that a client leaving after its first reads leaves mid-answer
FAST = ['--models', MODEL, '--tokens', '40', '--token-delay-ms', '2', '--max-concurrency', '0']
ENGINES: dict[str, tuple[str, list[str]]] = {
    'steady': ('ollama', FAST),
    'spare': ('vllm', FAST),
    'failing': ('vllm', [*FAST, '--fault', 'error_500', '--fault-rate', '0.3']),  # ~5 % of all requests
    'dying': ('ollama', [*FAST, '--fault', 'die_mid_stream', '--fault-rate', '0.12', '--fault-after-tokens', '4']),
    'slow': ('vllm', ['--models', MODEL, '--tokens', '20', '--ttft-ms', '40', '--token-delay-ms', '15']),
    'to-disable': ('ollama', FAST),
    'to-drain': ('vllm', FAST),
}

pytestmark = pytest.mark.skipif(subprocess.run(['which', 'redis-server'], capture_output=True).returncode != 0,
                                reason='needs redis-server (the test restarts its own)')


@dataclass
class Fleet:
    url: str
    admin: dict[str, str]
    keys: list[str]
    sims: dict[str, str]
    redis_port: int
    redis_dir: Path
    database: Path
    serve_pid: int
    redis_process: subprocess.Popen[bytes] | None = None

    def backends(self) -> dict[str, dict[str, object]]:
        listed = httpx.get(f'{self.url}/api/admin/backends', headers=self.admin, timeout=30).json()
        return {b['name']: b for b in listed}

    def backend_id(self, name: str) -> int:
        return int(self.backends()[name]['id'])  # type: ignore[call-overload]

    def worker_pids(self) -> list[int]:
        children = Path(f'/proc/{self.serve_pid}/task/{self.serve_pid}/children').read_text().split()
        return [int(pid) for pid in children] or [self.serve_pid]

    def descriptors(self) -> dict[str, int]:
        """The workers' open descriptors by kind. Two kinds are pools, bounded by design: `engines`, the upstream
        connections kept alive (at most max_concurrent per backend and worker), and `database`, SQLite's files
        held by pooled connections (DB_POOL_SIZE per worker, up to three files each). `other` must not grow."""
        engine_ports = {int(url.rsplit(':', 1)[1]) for url in self.sims.values()}
        kinds = {'engines': 0, 'database': 0, 'other': 0}
        for pid in self.worker_pids():
            remote = _socket_remote_ports(pid)
            for fd in os.listdir(f'/proc/{pid}/fd'):
                with contextlib.suppress(FileNotFoundError):  # closed meanwhile
                    target = os.readlink(f'/proc/{pid}/fd/{fd}')
                    inode = target[8:-1] if target.startswith('socket:[') else None
                    if inode is not None and remote.get(inode) in engine_ports:
                        kinds['engines'] += 1
                    elif target.startswith(str(self.database)):
                        kinds['database'] += 1
                    else:
                        kinds['other'] += 1
        return kinds


def tasks_alive(url: str) -> int:
    """The most asyncio tasks a worker reports in /metrics, over enough calls to reach every worker."""
    counts = []
    for _ in range(12):
        for line in httpx.get(f'{url}/metrics', timeout=30).text.splitlines():
            if line.startswith('mindrouter_event_loop_tasks '):
                counts.append(float(line.split()[1]))
    assert counts, 'no mindrouter_event_loop_tasks in /metrics'
    return int(max(counts))


def _socket_remote_ports(pid: int) -> dict[str, int]:
    """socket inode -> remote TCP port, for the process's network namespace."""
    ports = {}
    for table in ('tcp', 'tcp6'):
        with contextlib.suppress(FileNotFoundError), open(f'/proc/{pid}/net/{table}') as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                ports[fields[9]] = int(fields[2].rsplit(':', 1)[1], 16)
    return ports


@contextmanager
def redis_server(port: int, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '',
                                '--appendonly', 'no', '--dir', str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield process
    finally:
        process.kill()
        process.wait()


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / 'mindrouter'), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope='module')
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp('chaos')
    redis_port = free_port()
    env = {**os.environ, 'DATA_DIR': str(root / 'data'), 'LOG_LEVEL': 'warning', 'AUDIT_FLUSH_INTERVAL': '0.2',
           'REDIS_URL': f'redis://127.0.0.1:{redis_port}/0', 'REDIS_PREFIX': PREFIX, 'QUEUE_TIMEOUT': '60',
           # the engines fail inference only, so health checks keep them in; they refresh what Ollama has loaded
           # (a model counts as cold, and its backend as second choice, until a check sees it in memory)
           'BACKEND_CHECK_INTERVAL': '2',
           'BACKEND_COOLDOWN': '0.2', 'REGISTRY_RELOAD_INTERVAL': '0.5'}
    env.pop('DATABASE_URL', None)
    with ExitStack() as stack:
        redis_process = stack.enter_context(redis_server(redis_port, root))
        sims = {}
        for name, (engine, args) in ENGINES.items():
            port = free_port()
            sims[name] = f'http://127.0.0.1:{port}'
            stack.enter_context(running([sys.executable, '-m', 'sim', engine, '--port', str(port), *args], env,
                                        log_path=root / f'{name}.log', ready_url=f'{sims[name]}/_sim/config'))
        cli(env, 'migrate')
        cli(env, 'create-user', 'root', '--role', 'admin')
        admin = {'X-API-Key': cli(env, 'create-key', 'root').strip()}
        users = [f'user{i}' for i in range(4)]
        for name in users:
            cli(env, 'create-user', name, '--role', 'student')
        keys = [cli(env, 'create-key', name).strip() for name in users]
        port = free_port()
        url = f'http://127.0.0.1:{port}'
        log_path = root / 'gateway.log'
        command = [str(BIN / 'mindrouter'), 'serve', '--no-ui', '--workers', '2', '--port', str(port)]
        serve_pid = stack.enter_context(running(command, env, log_path=log_path, ready_url=f'{url}/healthz')).pid
        for name, (engine, _) in ENGINES.items():
            response = httpx.post(f'{url}/api/admin/backends/register', headers=admin, timeout=30,
                                  json={'name': name, 'url': sims[name], 'engine': engine,
                                        'max_concurrent': MAX_CONCURRENT})
            assert response.status_code == 201 and response.json()['status'] == 'healthy', response.text
        for name in users:
            httpx.put(f'{url}/api/admin/users/{name}/quota', headers=admin, timeout=30, json={
                'rpm_limit': 0, 'max_concurrent': 0, 'token_budget': 0, 'note': 'chaos run'}).raise_for_status()
        fleet = Fleet(url, admin, keys, sims, redis_port, root, root / 'data' / 'mindrouter.db', serve_pid,
                      redis_process)
        stack.callback(stop_redis, fleet)  # the one running at the end (restart_redis replaces it)
        yield fleet


# --- one client ---------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    tag: str
    dialect: str
    stream: bool
    left: bool = False  # the client walked away
    status: int | None = None  # None: it left before the answer's headers came
    request_id: str | None = None
    body: bytes = b''


def request_for(dialect: str, tag: str, stream: bool) -> tuple[str, dict[str, object]]:
    messages = [{'role': 'user', 'content': f'{tag}: tell me something'}]
    if dialect == 'openai':
        return '/v1/chat/completions', {'model': MODEL, 'messages': messages, 'stream': stream}
    if dialect == 'anthropic':
        return '/anthropic/v1/messages', {'model': MODEL, 'messages': messages, 'stream': stream, 'max_tokens': 64}
    return '/api/chat', {'model': MODEL, 'messages': messages, 'stream': stream}


async def one(client: httpx.AsyncClient, index: int, rng: random.Random, key: str) -> Outcome:
    dialect = rng.choice(('openai', 'anthropic', 'ollama'))
    outcome = Outcome(f'chaos-{index:05d}', dialect, stream=rng.random() < 0.6)
    leave = rng.random() < ABORT_SHARE
    path, body = request_for(dialect, outcome.tag, outcome.stream)
    headers = {'Authorization': f'Bearer {key}'}
    if outcome.stream:
        leave_after = rng.randint(1, 3) if leave else None
        async with client.stream('POST', path, json=body, headers=headers) as response:
            outcome.status, outcome.request_id = response.status_code, response.headers.get('x-request-id')
            parts = []
            async for part in response.aiter_raw():
                parts.append(part)
                so_far = b''.join(parts)
                if leave_after is not None and len(parts) >= leave_after and not clean_end(dialect, so_far) \
                        and not error_end(dialect, so_far):
                    outcome.left = True
                    break  # closing the response mid-body drops the connection: the gateway sees the client go
            outcome.body = b''.join(parts)
        return outcome
    call = asyncio.ensure_future(client.post(path, json=body, headers=headers))
    if leave:
        done, _ = await asyncio.wait({call}, timeout=rng.uniform(0.0, 0.06))
        if not done:
            call.cancel()
            outcome.left = True
            return outcome
    response = await call
    outcome.status, outcome.request_id, outcome.body = (response.status_code, response.headers.get('x-request-id'),
                                                        response.content)
    return outcome


def clean_end(dialect: str, body: bytes) -> bool:
    if dialect == 'openai':
        return body.rstrip().endswith(b'data: [DONE]')
    if dialect == 'anthropic':
        return b'event: message_stop' in body
    lines = body.strip().splitlines()
    return bool(lines) and b'"done":true' in lines[-1]


def error_end(dialect: str, body: bytes) -> bool:
    tail = body.strip().splitlines()[-1] if body.strip() else b''
    if dialect == 'openai':
        return tail.startswith(b'data: {"error"')
    if dialect == 'anthropic':
        return b'event: error' in body.strip().split(b'\n\n')[-1]
    return tail.startswith(b'{"error"')


# --- the run ------------------------------------------------------------------------------------------------------

@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


async def chaos(fleet: Fleet) -> Run:
    run = Run()
    rng = random.Random(20261206)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    next_index = 0
    started = asyncio.Event()

    async def worker(client: httpx.AsyncClient, seed: int) -> None:
        nonlocal next_index
        local = random.Random(seed)
        while next_index < REQUESTS:
            index, next_index = next_index, next_index + 1
            run.outcomes.append(await one(client, index, local, fleet.keys[index % len(fleet.keys)]))
            started.set()

    async def disturb() -> None:
        await started.wait()
        for share, action in ((0.25, 'disable'), (0.4, 'drain'), (0.5, 'redis-restart')):
            while len(run.outcomes) < REQUESTS * share:  # noqa: ASYNC110 - a counter, polled 20 times a second
                await asyncio.sleep(0.05)
            if action == 'redis-restart':
                await asyncio.to_thread(restart_redis, fleet)
            else:
                name = 'to-disable' if action == 'disable' else 'to-drain'
                response = await asyncio.to_thread(httpx.post, f'{fleet.url}/api/admin/backends/'
                                                   f'{fleet.backend_id(name)}/{action}', headers=fleet.admin,
                                                   timeout=30)
                assert response.status_code == 200, response.text
            run.events.append(f'{action} after {len(run.outcomes)} requests')

    timeout = httpx.Timeout(120.0, connect=30.0)
    async with httpx.AsyncClient(base_url=fleet.url, limits=limits, timeout=timeout) as client:
        await asyncio.gather(disturb(), *(worker(client, rng.randrange(2**32)) for _ in range(CONCURRENCY)))
    return run


def stop_redis(fleet: Fleet) -> None:
    if fleet.redis_process is not None:
        fleet.redis_process.kill()
        fleet.redis_process.wait()


def restart_redis(fleet: Fleet) -> None:
    stop_redis(fleet)
    time.sleep(1.0)  # requests keep coming meanwhile: the workers count on their own
    fleet.redis_process = subprocess.Popen(
        ['redis-server', '--port', str(fleet.redis_port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
         '--dir', str(fleet.redis_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def eventually(condition: Callable[[], object], *, seconds: float = 60.0,
               what: Callable[[], object] = lambda: '') -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f'not settled after {seconds} s: {what()}')
        time.sleep(0.25)


def audit_rows(database: Path) -> dict[str, tuple[str, int, str]]:
    """request id -> (status, http status, prompt) for every audited request of the chaos users."""
    with sqlite3.connect(f'file:{database}?mode=ro', uri=True) as connection:
        rows = connection.execute(
            "SELECT request_id, status, http_status, COALESCE(prompt, '') FROM request_log r JOIN users u "
            "ON u.id = r.user_id WHERE u.username LIKE 'user%'").fetchall()
    return {request_id: (status, http_status, prompt) for request_id, status, http_status, prompt in rows}


def redis_leftovers(fleet: Fleet) -> dict[str, object]:
    client = redis.Redis(port=fleet.redis_port)
    base = f'{{{PREFIX}:ledger}}'
    left: dict[str, object] = {}
    for key in (f'{base}:backends', f'{base}:users'):
        counts = {k.decode(): int(v) for k, v in client.hgetall(key).items() if int(v)}
        if counts:
            left[key] = counts
    for pattern in (f'{base}:leases:*', f'{base}:tickets:*'):
        for key in client.scan_iter(pattern):
            if client.hlen(key):
                left[key.decode()] = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
    for key in client.scan_iter(f'{base}:queue:*'):
        if client.zcard(key):
            left[key.decode()] = client.zcard(key)
    return left


def test_ten_thousand_chaotic_requests_leave_nothing_behind(fleet: Fleet) -> None:
    # a short warm-up, so that connection pools and caches are there before the descriptors are counted
    with httpx.Client(base_url=fleet.url, timeout=30) as warm:
        for dialect in ('openai', 'anthropic', 'ollama'):
            path, body = request_for(dialect, 'warm-up', False)
            assert warm.post(path, json=body, headers={'X-API-Key': fleet.keys[0]}).status_code == 200
    descriptors_before = fleet.descriptors()['other']
    tasks_before = tasks_alive(fleet.url)
    began = time.monotonic()

    run = asyncio.run(chaos(fleet))

    elapsed = time.monotonic() - began
    outcomes = run.outcomes
    assert len(outcomes) == REQUESTS
    assert len(run.events) == 3, run.events
    print(f'\nchaos: {REQUESTS} requests in {elapsed:.1f} s ({REQUESTS / elapsed:.0f}/s); {run.events}')

    # Nothing counted anywhere once the dust settles.
    eventually(lambda: all(b['in_flight'] == 0 for b in fleet.backends().values()),
               what=lambda: {n: b['in_flight'] for n, b in fleet.backends().items()})
    def queue_left() -> dict[str, object]:  # each worker refreshes the fleet's per-user counts every heartbeat
        queue = httpx.get(f'{fleet.url}/api/admin/queue', headers=fleet.admin, timeout=30).json()
        return {'queued': queue['queued'], 'requests': queue['requests'],
                'running': {u['user_id']: u['running'] for u in queue['users'] if u['running']},
                'in_flight': {b['name']: b['in_flight'] for b in queue['backends'] if b['in_flight']}}

    eventually(lambda: queue_left() == {'queued': 0, 'requests': [], 'running': {}, 'in_flight': {}},
               seconds=30, what=queue_left)
    eventually(lambda: not redis_leftovers(fleet), what=lambda: redis_leftovers(fleet))
    for name, sim in fleet.sims.items():
        eventually(lambda sim=sim: httpx.get(f'{sim}/_sim/stats').json()['running'] == 0, what=lambda name=name: name)
    backends = fleet.backends()
    assert backends['to-disable']['status'] == 'disabled' and backends['to-drain']['status'] == 'disabled'

    # Every answered request: exactly one audit row, with the status the client saw.
    answered = [o for o in outcomes if o.request_id is not None]
    expected = {o.request_id for o in answered}
    eventually(lambda: expected <= audit_rows(fleet.database).keys(),
               what=lambda: len(expected - audit_rows(fleet.database).keys()))
    rows = audit_rows(fleet.database)
    by_tag: dict[str, int] = {}
    for _, _, prompt in rows.values():
        tag = prompt.split('chaos-', 1)[1][:5] if 'chaos-' in prompt else None
        if tag is not None:
            by_tag[tag] = by_tag.get(tag, 0) + 1
    assert max(by_tag.values()) == 1, 'a request audited twice'
    assert len(rows) <= REQUESTS + 3  # the warm-up's three
    mismatched = []
    for outcome in answered:
        status, http_status, _ = rows[outcome.request_id]  # type: ignore[index]
        if outcome.left:
            # the client left mid-stream: 499, unless the gateway had already written the whole answer (200) or
            # the engine died in between (502: its error event went to a client no longer reading)
            if http_status not in (499, 200, 502):
                mismatched.append((outcome, status, http_status))
        elif outcome.stream and outcome.status == 200 and error_end(outcome.dialect, outcome.body):
            if (status, http_status) != ('failed', 502):  # cut by the engine after the 200 went out
                mismatched.append((outcome, status, http_status))
        elif http_status != outcome.status:
            mismatched.append((outcome, status, http_status))
    assert not mismatched, mismatched[:5]
    left_mid_stream = [o for o in answered if o.left]
    abandoned = sum(rows[o.request_id][1] == 499 for o in left_mid_stream)  # type: ignore[index]
    # Not all: an answer of a few kilobytes fits the socket buffers, so the gateway often writes it whole before the
    # client's leaving shows; those are rightly 200. The 499 path must still be well exercised.
    assert abandoned >= 0.3 * len(left_mid_stream), (abandoned, len(left_mid_stream))
    left_early = [o for o in outcomes if o.left and o.request_id is None]
    assert len(left_mid_stream) + len(left_early) >= 0.15 * REQUESTS

    # Streams: a clean ending or the dialect's error event, never a silent cut.
    streams = [o for o in answered if o.stream and not o.left and o.status == 200]
    cut = [o for o in streams if not clean_end(o.dialect, o.body)]
    engine_stats = {name: httpx.get(f'{sim}/_sim/stats').json() for name, sim in fleet.sims.items()}
    assert cut, ('the dying engine cut no stream: the run did not test what it claims',
                 {name: (s['requests_total'], s['faults']) for name, s in engine_stats.items()})
    silent = [o for o in cut if not error_end(o.dialect, o.body)]
    assert not silent, [(o.dialect, o.body[-200:]) for o in silent[:3]]
    for o in cut:
        assert rows[o.request_id][0] == 'failed', (o, rows[o.request_id])  # type: ignore[index]
    one_shot = [o for o in answered if not o.stream and not o.left]
    assert sum(o.status == 200 for o in one_shot) >= 0.98 * len(one_shot)  # failover hides the failing engines

    # No descriptor leaked in the workers: the pools stay within their design, nothing else grows beyond what comes
    # and goes (a Redis reconnection, a log rotation); a leak per request would show in thousands.
    workers = len(fleet.worker_pids())
    bounds = {'engines': workers * len(ENGINES) * MAX_CONCURRENT, 'database': workers * DB_POOL_SIZE * 3,
              'other': descriptors_before + 16}
    eventually(lambda: all(count <= bounds[kind] for kind, count in fleet.descriptors().items()),
               what=lambda: f'descriptors {fleet.descriptors()}, bounds {bounds}')
    # No task left behind either (a stream's relay, a release retry, a flag keeper that never ends).
    eventually(lambda: tasks_alive(fleet.url) <= tasks_before + 5,
               what=lambda: f'asyncio tasks {tasks_before} -> {tasks_alive(fleet.url)}')
