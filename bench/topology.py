"""Benchmark: the production topology (tests/topology/stack.py) through nginx, and one API process scaled out.

    python -m bench.topology [--requests 300] [--seconds 15] [--workers 1,2,4]

1. TTFT through nginx vs direct: two API processes of `--workers 2` behind nginx (TLS, the shipped
   configuration), MariaDB, Redis, a simulated Ollama engine answering at once. One client sends streaming chats
   one at a time, alternating between nginx (https) and one API process (http), each on a kept-alive connection,
   and times the first token. The difference is what nginx adds.
2. Scaling out: one `mindrouter serve --no-ui --workers N` process for each N, wrk with 64 connections sending a
   small non-streaming chat straight to it. Requests per second, the CPU the gateway's processes spent per
   request, and what the shared stores carried per request: Redis commands (a Redis server of the benchmark's
   own, so nothing else is counted) and MariaDB statements (the server's global `Questions`: other clients of a
   shared server are counted too).

Needs nginx, wrk, redis-server and a MariaDB server (--mariadb, default root@127.0.0.1:3306). Writes
bench/results/topology.json and prints a markdown table. A benchmark, not a test: the machine it runs on and its
load are part of the result (both recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import pymysql
import redis
from sqlalchemy.engine import make_url

from bench.key_check import _commit, _cpu_model
from tests.e2e.processes import free_port
from tests.topology.stack import running_topology

RESULTS = Path(__file__).resolve().parent / 'results'
# The production defaults for what the test topology speeds up (registry reload, audit flush): their background
# reads and writes would be counted as the requests' own.
QUIET = {'LOG_LEVEL': 'error', 'REGISTRY_RELOAD_INTERVAL': '5', 'AUDIT_FLUSH_INTERVAL': '1'}
CHAT = {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'x' * 200}], 'max_tokens': 20}


@dataclass
class Ttft:
    target: str  # nginx | direct
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float


@dataclass
class Scale:
    workers: int
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    gateway_cpu_ms_per_request: float
    redis_scripts_per_request: float  # EVALSHA calls: the acquire, release, RPM and token-meter round trips
    redis_commands_per_request: float  # everything Redis executed, the commands inside those scripts included
    mariadb_statements_per_request: float


def main() -> None:
    parser = argparse.ArgumentParser(description='nginx vs direct TTFT, and requests/s with 1, 2, 4 workers')
    parser.add_argument('--requests', type=int, default=300, help='streaming requests per target for TTFT')
    parser.add_argument('--seconds', type=int, default=15, help='duration of each wrk run')
    parser.add_argument('--workers', default='1,2,4', help='worker counts to measure')
    parser.add_argument('--mariadb', default='mysql+aiomysql://root@127.0.0.1:3306', help='MariaDB server URL')
    args = parser.parse_args()
    nginx = shutil.which('nginx') or '/usr/sbin/nginx'
    for tool in (nginx, 'wrk', 'redis-server'):
        if not shutil.which(tool):
            sys.exit(f'bench.topology needs {tool}')
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, _own_redis(Path(tmp)) as redis_url:
        root = Path(tmp)
        ttft = measure_ttft(root / 'ttft', nginx, args.mariadb, redis_url, args.requests)
        scaling = [
            measure_scale(root / f'workers-{n}', nginx, args.mariadb, redis_url, n, args.seconds)
            for n in (int(n) for n in args.workers.split(','))
        ]
    result = {
        'benchmark': 'topology',
        'commit': _commit(),
        'machine': f'{os.cpu_count()} cores, {_cpu_model()}',
        'python': sys.version.split()[0],
        'load_average_before': [round(x, 2) for x in load_before],
        'load_average_after': [round(x, 2) for x in os.getloadavg()],
        'ttft': [asdict(cell) for cell in ttft],
        'scaling': [asdict(cell) for cell in scaling],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / 'topology.json').write_text(json.dumps(result, indent=2) + '\n')
    print(table(ttft, scaling))
    print(
        f'\n{result["machine"]}, Python {result["python"]}, commit {result["commit"]}, load average '
        f'{result["load_average_before"]} before, {result["load_average_after"]} after'
    )


def measure_ttft(root: Path, nginx: str, mariadb: str, redis_url: str, requests: int) -> list[Ttft]:
    root.mkdir()
    with running_topology(
        root,
        nginx=nginx,
        database_server=mariadb,
        redis_url=redis_url,
        console=False,
        token_delay_ms=0,
        settings=QUIET,
    ) as topology:
        httpx.post(f'{topology.sims["sim-ollama"]}/_sim/config', json={'tokens': 8}).raise_for_status()
        targets = {'nginx': topology.url, 'direct': topology.api[0]}
        times: dict[str, list[float]] = {name: [] for name in targets}
        with topology.client(headers={'X-API-Key': topology.key}) as client:
            for index in range(requests + 20):
                for name, base in targets.items():  # alternating: the machine's load drifts alike for both
                    took = _first_token_ms(client, base)
                    if index >= 20:  # the first ones warm up connections and caches
                        times[name].append(took)
    return [Ttft(name, len(values), *_percentiles(values, 50, 90, 99)) for name, values in times.items()]


def _first_token_ms(client: httpx.Client, base: str) -> float:
    started = time.perf_counter()
    with client.stream('POST', f'{base}/v1/chat/completions', json={**CHAT, 'stream': True}) as response:
        response.raise_for_status()
        lines = response.iter_lines()
        for line in lines:
            chunk = json.loads(line[6:]) if line.startswith('data: {') else {}
            if chunk.get('choices') and chunk['choices'][0]['delta'].get('content'):
                took = (time.perf_counter() - started) * 1000
                break
        else:
            raise AssertionError('no token in the stream')
        for _ in lines:  # read the rest: the connection goes back to the pool
            pass
    return took


def measure_scale(root: Path, nginx: str, mariadb: str, redis_url: str, workers: int, seconds: int) -> Scale:
    root.mkdir()
    with running_topology(
        root,
        nginx=nginx,
        database_server=mariadb,
        redis_url=redis_url,
        api_processes=1,
        workers=workers,
        console=False,
        token_delay_ms=0,
        max_concurrent=1024,
        settings=QUIET,
    ) as topology:
        base = topology.api[0]
        _wrk(root, base, topology.key, 64, 3)  # warm-up
        pids = _process_tree(topology.processes['api-1'].pid)
        store = redis.Redis.from_url(redis_url)
        cpu, (scripts, commands), statements = _cpu_ms(pids), _redis_counts(store), _mariadb_questions(mariadb)
        cell = _wrk(root, base, topology.key, 64, seconds)
        completed = cell['requests_per_s'] * seconds
        time.sleep(1)  # the last audit batch
        scripts_after, commands_after = _redis_counts(store)
        return Scale(
            workers=workers,
            connections=64,
            requests_per_s=round(cell['requests_per_s'], 1),
            p50_ms=cell['p50_ms'],
            p99_ms=cell['p99_ms'],
            errors=int(cell['errors']),
            gateway_cpu_ms_per_request=round((_cpu_ms(pids) - cpu) / completed, 3),
            redis_scripts_per_request=round((scripts_after - scripts) / completed, 2),
            redis_commands_per_request=round((commands_after - commands) / completed, 2),
            mariadb_statements_per_request=round((_mariadb_questions(mariadb) - statements) / completed, 3),
        )


def _wrk(root: Path, base: str, key: str, connections: int, seconds: int) -> dict[str, float]:
    script = root / 'post.lua'
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = {json.dumps(json.dumps(CHAT))}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    out = subprocess.run(
        [
            'wrk',
            '-t1',
            f'-c{connections}',
            f'-d{seconds}s',
            '--latency',
            '-s',
            str(script),
            f'{base}/v1/chat/completions',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r'^\s+(50|99)\.?0*%\s+([\d.]+\w+)\s*$', out, re.M))
    errors = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    rate = re.search(r'Requests/sec:\s+([\d.]+)', out)
    assert rate, out
    return {
        'requests_per_s': float(rate.group(1)),
        'p50_ms': _ms(latency['50']),
        'p99_ms': _ms(latency['99']),
        'errors': int(errors.group(1)) if errors else 0,
    }


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r'([\d.]+)(\w+)', value).groups()  # type: ignore[union-attr]
    return round(float(number) * {'us': 0.001, 'ms': 1.0, 's': 1000.0, 'm': 60000.0}[unit], 3)


def _percentiles(values: list[float], *points: int) -> list[float]:
    cuts = statistics.quantiles(values, n=100, method='inclusive')
    return [round(cuts[point - 1], 3) for point in points]


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers, their multiprocessing helpers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f'/proc/{current}/task').iterdir():
            queue += [int(child) for child in (task / 'children').read_text().split()]
    return found


def _cpu_ms(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf('SC_CLK_TCK')
    return total


def _redis_counts(store: redis.Redis) -> tuple[int, int]:
    """Scripts run (EVALSHA: one client round trip each) and all commands run, those inside scripts included."""
    scripts = sum(
        int(stats['calls'])
        for name, stats in store.info('commandstats').items()
        if name in ('cmdstat_evalsha', 'cmdstat_eval')
    )
    return scripts, int(store.info('stats')['total_commands_processed'])


def _mariadb_questions(server: str) -> int:
    url = make_url(server)
    connection = pymysql.connect(
        host=url.host or '127.0.0.1', port=url.port or 3306, user=url.username or 'root', password=url.password or ''
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
            row = cursor.fetchone()
            assert row is not None
            return int(row[1])
    finally:
        connection.close()


@contextmanager
def _own_redis(root: Path) -> Iterator[str]:
    """A Redis server for the benchmark alone, so that its command counter counts only the gateway's commands."""
    port = free_port()
    with subprocess.Popen(
        [
            'redis-server',
            '--port',
            str(port),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--appendonly',
            'no',
            '--dir',
            str(root),
        ],
        stdout=subprocess.DEVNULL,
    ) as process:
        url = f'redis://127.0.0.1:{port}/0'
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with redis.Redis.from_url(url) as client:
                        client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def table(ttft: list[Ttft], scaling: list[Scale]) -> str:
    by_target = {cell.target: cell for cell in ttft}
    rows = ['| TTFT (streaming chat, one at a time) | requests | p50 ms | p90 ms | p99 ms |', '|---|---|---|---|---|']
    rows += [f'| {c.target} | {c.requests} | {c.p50_ms} | {c.p90_ms} | {c.p99_ms} |' for c in ttft]
    if {'nginx', 'direct'} <= by_target.keys():
        nginx, direct = by_target['nginx'], by_target['direct']
        rows.append(
            f'\nnginx adds {nginx.p50_ms - direct.p50_ms:.3f} ms at p50, {nginx.p99_ms - direct.p99_ms:.3f} ms '
            'at p99 (TLS, one more hop on loopback).\n'
        )
    rows += [
        '| workers | conns | req/s | p50 ms | p99 ms | errors | gateway CPU ms / request | Redis scripts / request | '
        'Redis commands / request | MariaDB statements / request |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    rows += [
        f'| {c.workers} | {c.connections} | {c.requests_per_s:,.0f} | {c.p50_ms} | {c.p99_ms} | {c.errors} | '
        f'{c.gateway_cpu_ms_per_request} | {c.redis_scripts_per_request} | {c.redis_commands_per_request} | '
        f'{c.mariadb_statements_per_request} |'
        for c in scaling
    ]
    return '\n'.join(rows)


if __name__ == '__main__':
    main()
