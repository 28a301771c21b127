"""Benchmark: what the gateway adds, measured side by side with direct access to the same engine.

    python -m bench.gateway [--seconds 10] [--redis redis://127.0.0.1:6379/0] [--cells chat1,ttft64]
                            [--trace-stalls FILE] [--awake-client-core]

Topology (reference/peers-and-targets.md §6.2): the gateway (`mindrouter serve --no-ui`, one worker,
auth on, audit trail on, SQLite) pinned to core 0; the simulated vLLM engines and the load generators
(wrk, bench/streams.py) pinned to core 1. For each cell the same request runs against the engine directly
and through the gateway. Cells: a small non-streaming chat (20-token answer) at 1 and 64 connections
(`chat1`, `chat64`), a streaming chat (64 tokens, SSE, back to back) at 16 connections (`sse16`), and the
time to first token of 64 concurrent paced streams (`ttft64`: the engine waits 100 ms, then sends 200 tokens
20 ms apart; target T6). For every gateway cell the gateway's event-loop lag over the cell is read from its
/metrics (ticked every millisecond here, so that every stall over 5 ms is counted). Prints markdown tables and
writes bench/results/gateway.json. With --redis the gateway counts its slots in that Redis (the fleet-wide
admission ledger of a multi-worker deployment) and the results go to bench/results/gateway-redis.json. With
--trace-stalls the gateway logs where its loop was during each stall (LOOP_STALL_TRACE) into FILE. With
--awake-client-core a process that only spins at the lowest priority (SCHED_IDLE) keeps core 1 from halting during
every cell, direct and gateway alike: on a virtual machine whose idle CPUs halt, a client whose core idles pays a
wake-up through the host that direct access (client and engine handing the core to each other) never pays
(docs/performance.md#the-audit-thread-under-sched_idle-tried-withdrawn-and-what-the-clients-core-adds). Results
then go to bench/results/gateway-awake.json.
Needs `wrk` (Debian package) and `taskset`. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench import lag
from bench.key_check import _commit, _cpu_model
from bench.streams import run_streams

RESULTS = Path(__file__).resolve().parent / 'results'
MODEL = 'meta-llama/Llama-3.2-1B-Instruct'
PROMPT = 'x' * 200  # the ~200 byte prompt of target T1
STREAM_TOKENS = 64
PACED_MODEL = 'bench/paced'  # served by the second engine: TTFT 100 ms, 200 tokens 20 ms apart (target T6)
CELLS = ('chat1', 'chat64', 'sse16', 'ttft64')


@dataclass
class Cell:
    name: str
    target: str  # direct | gateway
    connections: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    gateway_cpu_ms_per_1k: float | None = None
    loop_lag: lag.LagDelta | None = None  # the gateway's, over the cell


def main() -> None:
    parser = argparse.ArgumentParser(description='gateway vs direct, side by side')
    parser.add_argument('--seconds', type=int, default=10, help='duration of each wrk run')
    parser.add_argument('--redis', default='', help='REDIS_URL for the gateway: slots counted in Redis')
    parser.add_argument('--cells', default=','.join(CELLS), help=f'comma-separated subset of {",".join(CELLS)}')
    parser.add_argument('--ttft-seconds', type=int, default=20, help='duration of the ttft64 cell (4 s a stream)')
    parser.add_argument('--trace-stalls', type=Path, help='log where the loop was during each stall into this file')
    parser.add_argument('--awake-client-core', action='store_true',
                        help='keep core 1 (engines, load generator) from halting with a SCHED_IDLE spinner')
    args = parser.parse_args()
    if not shutil.which('wrk') or not shutil.which('taskset'):
        sys.exit('bench.gateway needs wrk and taskset (apt-get install wrk util-linux)')
    chosen = [name.strip() for name in args.cells.split(',') if name.strip()]
    if unknown := set(chosen) - set(CELLS):
        sys.exit(f'unknown cells: {", ".join(sorted(unknown))}')
    with _spinner(core=1) if args.awake_client_core else nullcontext():
        cells = run(args.seconds, args.redis, cells=chosen, ttft_seconds=args.ttft_seconds, trace=args.trace_stalls)
    RESULTS.mkdir(exist_ok=True)
    result = {'benchmark': 'gateway', 'commit': _commit(), 'machine': f'{os.cpu_count()} cores, {_cpu_model()}',
              'python': sys.version.split()[0], 'seconds_per_cell': args.seconds, 'redis': bool(args.redis),
              'awake_client_core': args.awake_client_core,
              'cells': [asdict(cell) for cell in cells]}
    name = 'gateway-redis' if args.redis else 'gateway-awake' if args.awake_client_core else 'gateway'
    (RESULTS / f'{name}.json').write_text(json.dumps(result, indent=2) + '\n')
    print(_table(cells))
    print(f'\n{result["machine"]}, Python {result["python"]}, commit {result["commit"]}, {args.seconds} s per cell')


def run(seconds: int, redis_url: str = '', *, cells: Sequence[str] = CELLS, ttft_seconds: int = 20,
        trace: Path | None = None) -> list[Cell]:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        env = {**os.environ, 'DATA_DIR': str(root / 'data'), 'LOG_LEVEL': 'error', 'SECRET_KEY': 'bench-' * 8,
               'REDIS_URL': redis_url, 'REDIS_PREFIX': f'bench-{os.getpid()}', 'LOOP_LAG_INTERVAL': '0.001'}
        env.pop('DATABASE_URL', None)
        engine_url = stack.enter_context(_process(
            ['taskset', '-c', '1', sys.executable, '-m', 'sim', 'vllm', '--tokens', '20'], env, '/health'))
        paced_url = stack.enter_context(_process(
            ['taskset', '-c', '1', sys.executable, '-m', 'sim', 'vllm', '--models', PACED_MODEL, '--tokens', '200',
             '--ttft-ms', '100', '--token-delay-ms', '20'], env, '/health'))
        _mindrouter(env, 'migrate')
        _mindrouter(env, 'create-user', 'bench', '--role', 'admin')
        key = _mindrouter(env, 'create-key', 'bench').strip()
        gateway_env = {**env, 'LOOP_STALL_TRACE': 'true', 'LOG_LEVEL': 'warning'} if trace else env
        gateway_url = stack.enter_context(_process(
            ['taskset', '-c', '0', str(Path(sys.executable).parent / 'mindrouter'), 'serve', '--no-ui'], gateway_env,
            '/healthz', stderr=trace))
        for name, url in (('sim', engine_url), ('paced', paced_url)):
            httpx.post(f'{gateway_url}/api/admin/backends/register', headers={'X-API-Key': key}, timeout=30,
                       json={'name': name, 'url': url, 'engine': 'vllm', 'max_concurrent': 512}).raise_for_status()
        # A load generator is one user far past any human's limits: lift them (0 = unlimited).
        httpx.put(f'{gateway_url}/api/admin/users/bench/quota', headers={'X-API-Key': key}, timeout=30,
                  json={'rpm_limit': 0, 'max_concurrent': 0, 'token_budget': 0, 'note': 'benchmark'}
                  ).raise_for_status()
        gateway_pid = _listening_pid(gateway_url)

        chat: dict[str, object] = {'model': MODEL, 'messages': [{'role': 'user', 'content': PROMPT}]}
        stream: dict[str, object] = {**chat, 'stream': True, 'max_tokens': STREAM_TOKENS}
        paced: dict[str, object] = {**chat, 'model': PACED_MODEL, 'stream': True}
        plan: dict[str, tuple[str, dict[str, object], int]] = {
            'chat1': ('chat', chat, 1), 'chat64': ('chat', chat, 64), 'sse16': ('sse', stream, 16),
            'ttft64': ('ttft', paced, 64)}
        results = []
        for name, body, connections in (plan[cell] for cell in CELLS if cell in cells):
            targets = (('direct', paced_url if name == 'ttft' else engine_url), ('gateway', gateway_url))
            for target, url in targets:
                duration = ttft_seconds if name == 'ttft' else seconds
                _measure(name, root, url, key, body, connections, 1 if name == 'ttft' else 2)  # warm-up
                before, lag_before = _cpu_ms(gateway_pid), lag.scrape(gateway_url)
                cell = _measure(name, root, url, key, body, connections, duration)
                cell.name, cell.target = name, target
                if target == 'gateway':
                    cell.loop_lag = lag.delta(lag_before, lag.scrape(gateway_url))
                    completed = cell.requests_per_s * duration
                    cell.gateway_cpu_ms_per_1k = round((_cpu_ms(gateway_pid) - before) / completed * 1000, 1)
                results.append(cell)
        return results


def _measure(name: str, root: Path, url: str, key: str, body: dict[str, object], connections: int,
             seconds: int) -> Cell:
    if name == 'ttft':
        return _streams(url, key, body, connections, seconds)
    return _wrk(root, url, key, body, connections, seconds)


def _streams(url: str, key: str, body: dict[str, object], streams: int, seconds: int) -> Cell:
    """Time to first token of `streams` paced streams at once, from core 1 like wrk."""
    os.sched_setaffinity(0, {1})
    try:
        started = time.perf_counter()
        figures = asyncio.run(run_streams(f'{url}/v1/chat/completions', key, body, streams, seconds))
        elapsed = time.perf_counter() - started
    finally:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    ttft = sorted(figures.ttft_ms) or [0.0]

    def at(q: float) -> float:
        return round(ttft[min(len(ttft) - 1, int(q * len(ttft)))], 3)

    return Cell(name='', target='', connections=streams, requests_per_s=round(len(figures.ttft_ms) / elapsed, 1),
                p50_ms=at(0.5), p90_ms=at(0.9), p99_ms=at(0.99), errors=figures.errors)


def _wrk(root: Path, base_url: str, key: str, body: dict[str, object], connections: int, seconds: int) -> Cell:
    script = root / 'post.lua'
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = {json.dumps(json.dumps(body))}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    out = subprocess.run(
        ['taskset', '-c', '1', 'wrk', '-t1', f'-c{connections}', f'-d{seconds}s', '--latency', '-s', str(script),
         f'{base_url}/v1/chat/completions'], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r'^\s+(50|90|99)\.?0*%\s+([\d.]+\w+)\s*$', out, re.M))
    errors = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    return Cell(name='', target='', connections=connections,
                requests_per_s=float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1)),  # type: ignore[union-attr]
                p50_ms=_ms(latency['50']), p90_ms=_ms(latency['90']), p99_ms=_ms(latency['99']),
                errors=int(errors.group(1)) if errors else 0)


def _ms(value: str) -> float:
    number, unit = re.match(r'([\d.]+)(\w+)', value).groups()  # type: ignore[union-attr]
    return round(float(number) * {'us': 0.001, 'ms': 1.0, 's': 1000.0, 'm': 60000.0}[unit], 3)


@contextmanager
def _process(command: list[str], env: dict[str, str], health: str, stderr: Path | None = None) -> Iterator[str]:
    port = _free_port()
    with ExitStack() as files:
        err = files.enter_context(stderr.open('w')) if stderr else subprocess.DEVNULL
        process = files.enter_context(subprocess.Popen([*command, '--port', str(port)], env=env,
                                                       stdout=subprocess.DEVNULL, stderr=err))
        url = f'http://127.0.0.1:{port}'
        try:
            deadline = time.monotonic() + 120  # a loaded machine starts slowly
            while True:
                try:
                    if httpx.get(f'{url}{health}', timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f'{command} did not start')
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


@contextmanager
def _spinner(core: int) -> Iterator[None]:
    """A process on `core` that only spins, under SCHED_IDLE: any other thread there takes the core from it at once,
    but the core never halts."""
    spin = ('import os\n'
            'os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n'
            'while True:\n    pass\n')
    with subprocess.Popen(['taskset', '-c', str(core), sys.executable, '-c', spin]) as process:
        try:
            yield
        finally:
            process.kill()


def _mindrouter(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(Path(sys.executable).parent / 'mindrouter'), *args], env=env, check=True,
                          capture_output=True, text=True).stdout


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _listening_pid(url: str) -> int:
    port = url.rsplit(':', 1)[1]
    out = subprocess.run(['ss', '-ltnpH', f'sport = :{port}'], capture_output=True, text=True).stdout
    return int(re.search(r'pid=(\d+)', out).group(1))  # type: ignore[union-attr]


def _cpu_ms(pid: int) -> float:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf('SC_CLK_TCK')


def _table(cells: list[Cell]) -> str:
    rows = ['| cell | conns | target | req/s | p50 ms | p90 ms | p99 ms | errors | gateway CPU ms / 1k req '
            '| loop lag p99 ms | loop lag max ms | stalls > 5 ms: busy, off CPU |',
            '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for cell in cells:
        cpu = '' if cell.gateway_cpu_ms_per_1k is None else f'{cell.gateway_cpu_ms_per_1k:,.0f}'
        loop = cell.loop_lag
        lag_cells = '| | |' if loop is None else (
            f'| ≤ {loop.p99_ms:g} | ≤ {loop.max_ms:g} | {loop.stalls}, {loop.off_cpu_stalls} |')
        rows.append(f'| {cell.name} | {cell.connections} | {cell.target} | {cell.requests_per_s:,.0f} | '
                    f'{cell.p50_ms} | {cell.p90_ms} | {cell.p99_ms} | {cell.errors} | {cpu} {lag_cells}')
    by_key = {(c.name, c.connections, c.target): c for c in cells}
    rows.append('')
    for name, connections in dict.fromkeys((c.name, c.connections) for c in cells):
        direct, gateway = by_key[(name, connections, 'direct')], by_key[(name, connections, 'gateway')]
        added = f'{gateway.p50_ms - direct.p50_ms:.3f} ms at p50, {gateway.p99_ms - direct.p99_ms:.3f} ms at p99'
        if name == 'ttft':
            rows.append(f'- time to first token of {connections} paced streams: the gateway adds {added} '
                        f'({gateway.requests_per_s:,.1f} streams/s started)')
            continue
        extra = f', {gateway.requests_per_s * STREAM_TOKENS:,.0f} SSE events/s' if name == 'sse' else ''
        rows.append(f'- {name} at {connections} connection(s): the gateway adds {added}; p99/p50 '
                    f'{gateway.p99_ms / gateway.p50_ms:.1f}; it serves {gateway.requests_per_s:,.0f} req/s on one '
                    f'core{extra}')
    return '\n'.join(rows)


if __name__ == '__main__':
    main()
