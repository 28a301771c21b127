"""Soak: a steady rate of mixed traffic against a real gateway process, watched for drift over time.

    python -m bench.soak [--minutes 30] [--window 300] [--rate 50] [--warmup 60] [--output FILE]

A gateway (`mindrouter serve --no-ui`, SQLite, audit on) in front of a simulated vLLM engine that answers like a
small GPU would (first token after 20 ms, 16 tokens 2 ms apart). Requests start at a steady rate whatever the
answers do (open loop), in turn through the three dialects, each streaming and not: OpenAI chat completions,
Anthropic messages, Ollama chat. After a warm-up the run is cut into windows; each window reports its requests,
errors, latency p50/p99 (whole request, over the requests started in it), and the gateway's resident memory, open
file descriptors and asyncio tasks (medians of /metrics samples every 5 s), and its event-loop stalls.

Drift compares the last window with the first, figure by figure. Only growth counts (a gateway that gets faster or
smaller has not degraded), and it is measured against a floor so that small values do not turn noise into
percentages: drift = (last - first) / max(first, floor). Floors: latency p50 20 ms, p99 50 ms, memory 50 MB,
descriptors 150 (the pools' own growth fits under it), tasks 50 (so, at 10 %, a latency must grow by at least
2 ms / 5 ms, descriptors by 15, tasks by 5).
The run fails (exit status 1) when any figure drifts more than --max-drift (10 %) or more than 1 % of the requests
fail. Prints a markdown table and writes JSON (bench/results/soak.json unless --output). A benchmark that judges
itself: tests/soak/test_soak.py runs a two-minute version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench import lag
from bench.gateway import _mindrouter, _process
from bench.key_check import _commit
from bench.streams import fetch, post_request

RESULTS = Path(__file__).resolve().parent / 'results'
MODEL = 'meta-llama/Llama-3.2-1B-Instruct'
MB = 2**20
SAMPLE_EVERY = 5.0  # seconds between /metrics samples
MAX_IN_FLIGHT = 500
REQUEST_TIMEOUT = 60.0
MAX_ERROR_SHARE = 0.01
# Descriptors: pools open connections as load varies and keep them (the database pool, DB_POOL_SIZE connections of
# up to three files each on SQLite; the engine pool); growth within them is not a leak, so the floor covers them.
FLOORS = {'p50_ms': 20.0, 'p99_ms': 50.0, 'rss_mb': 50.0, 'open_fds': 150.0, 'tasks': 50.0}
_PROMPT = [{'role': 'user', 'content': 'Say something about soak tests.'}]


@dataclass(frozen=True)
class Kind:
    name: str
    path: str
    body: dict[str, object]
    done: bytes  # what a whole answer ends with (a stream cut short lacks it)


KINDS = (
    Kind('openai', '/v1/chat/completions', {'model': MODEL, 'messages': _PROMPT}, b'"finish_reason"'),
    Kind(
        'openai-stream', '/v1/chat/completions', {'model': MODEL, 'messages': _PROMPT, 'stream': True}, b'data: [DONE]'
    ),
    Kind(
        'anthropic', '/anthropic/v1/messages', {'model': MODEL, 'max_tokens': 64, 'messages': _PROMPT}, b'"stop_reason"'
    ),
    Kind(
        'anthropic-stream',
        '/anthropic/v1/messages',
        {'model': MODEL, 'max_tokens': 64, 'messages': _PROMPT, 'stream': True},
        b'message_stop',
    ),
    Kind('ollama', '/api/chat', {'model': MODEL, 'messages': _PROMPT, 'stream': False}, b'"done":true'),
    Kind('ollama-stream', '/api/chat', {'model': MODEL, 'messages': _PROMPT, 'stream': True}, b'"done":true'),
)


@dataclass
class Sample:
    at: float  # seconds since the traffic started
    rss_mb: float
    open_fds: float
    tasks: float
    loop: lag.LagScrape | None


@dataclass
class Window:
    start_s: float
    end_s: float
    requests: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rss_mb: float = 0.0
    open_fds: float = 0.0
    tasks: float = 0.0
    loop_stalls: int | None = None  # busy ones (see bench/lag.py); off-CPU ones are the machine's
    loop_lag_max_ms: float | None = None


@dataclass
class Report:
    windows: list[Window]
    drift: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='steady mixed traffic against a real gateway, checked for drift')
    parser.add_argument('--minutes', type=float, default=30.0, help='traffic time, warm-up included')
    parser.add_argument('--window', type=float, default=300.0, help='seconds per reported window')
    parser.add_argument('--warmup', type=float, default=60.0, help='seconds left out before the first window')
    parser.add_argument('--rate', type=float, default=50.0, help='requests started per second')
    parser.add_argument('--max-drift', type=float, default=0.10, help='largest growth allowed, last vs first window')
    parser.add_argument(
        '--floor',
        action='append',
        default=[],
        metavar='NAME=VALUE',
        help=f'change a drift floor ({", ".join(f"{k}={v:g}" for k, v in FLOORS.items())})',
    )
    parser.add_argument('--output', type=Path, default=RESULTS / 'soak.json')
    args = parser.parse_args(argv)
    floors = dict(FLOORS)
    for item in args.floor:
        name, _, value = item.partition('=')
        if name not in floors:
            parser.error(f'no floor named {name}')
        floors[name] = float(value)
    total = args.minutes * 60
    if total - args.warmup < 2 * args.window:
        parser.error('the run needs at least two windows after the warm-up')
    started = time.time()
    windows = run(total=total, window=args.window, warmup=args.warmup, rate=args.rate)
    report = judge(windows, max_drift=args.max_drift, floors=floors)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                'benchmark': 'soak',
                'commit': _commit(),
                'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(started)),
                'minutes': args.minutes,
                'window_s': args.window,
                'warmup_s': args.warmup,
                'rate': args.rate,
                'max_drift': args.max_drift,
                'floors': floors,
                'windows': [asdict(w) for w in report.windows],
                'drift': report.drift,
                'failures': report.failures,
            },
            indent=2,
        )
        + '\n'
    )
    print(table(report))
    print(
        f'\ncommit {_commit()}, {args.rate:g} req/s for {args.minutes:g} min, windows of {args.window:g} s after '
        f'{args.warmup:g} s of warm-up; JSON: {args.output}'
    )
    if report.failures:
        print('\nFAILED: ' + '; '.join(report.failures))
        return 1
    print(f'\npassed: no figure drifted more than {args.max_drift:.0%}')
    return 0


def run(*, total: float, window: float, warmup: float, rate: float) -> list[Window]:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        env = {
            **os.environ,
            'DATA_DIR': str(Path(tmp) / 'data'),
            'LOG_LEVEL': 'warning',
            'SECRET_KEY': 'soak-' * 8,
            'REDIS_URL': '',
        }
        env.pop('DATABASE_URL', None)
        engine_url = stack.enter_context(
            _process(
                [sys.executable, '-m', 'sim', 'vllm', '--tokens', '16', '--ttft-ms', '20', '--token-delay-ms', '2'],
                env,
                '/health',
            )
        )
        _mindrouter(env, 'migrate')
        _mindrouter(env, 'create-user', 'soak', '--role', 'admin')
        key = _mindrouter(env, 'create-key', 'soak').strip()
        gateway_url = stack.enter_context(
            _process(
                [str(Path(sys.executable).parent / 'mindrouter'), 'serve', '--no-ui'],
                env,
                '/healthz',
                stderr=Path(tmp) / 'gateway.log',
            )
        )
        headers = {'X-API-Key': key}
        httpx.post(
            f'{gateway_url}/api/admin/backends/register',
            headers=headers,
            timeout=30,
            json={'name': 'sim', 'url': engine_url, 'engine': 'vllm', 'max_concurrent': 256},
        ).raise_for_status()
        httpx.put(
            f'{gateway_url}/api/admin/users/soak/quota',
            headers=headers,
            timeout=30,
            json={'rpm_limit': 0, 'max_concurrent': 0, 'token_budget': 0, 'note': 'soak'},
        ).raise_for_status()
        results, samples = asyncio.run(_traffic(gateway_url, key, total=total, rate=rate))
    return windows_of(results, samples, window=window, warmup=warmup, total=total)


# (start s since traffic began, latency ms or None for a failure)
Result = tuple[float, float | None]


async def _traffic(url: str, key: str, *, total: float, rate: float) -> tuple[list[Result], list[Sample]]:
    """Open loop: request n starts at n / rate seconds. A raw socket client (bench/streams.py), one connection per
    request: a pooled client library spent more CPU per request as requests piled up on a loaded machine, until the
    client, not the gateway, set the pace. At most MAX_IN_FLIGHT at once; a request that has to wait for one of
    them counts as a failure (the gateway fell behind)."""
    results: list[Result] = []
    samples: list[Sample] = []
    headers = {'Authorization': f'Bearer {key}', 'anthropic-version': '2023-06-01'}
    requests = [post_request(f'{url}{kind.path}', headers, kind.body) for kind in KINDS]
    loop = asyncio.get_running_loop()
    began = loop.time()
    in_flight = 0

    async def one(n: int, at: float) -> None:
        nonlocal in_flight
        in_flight += 1
        host, port, request = requests[n % len(KINDS)]
        try:
            status, tail = await asyncio.wait_for(fetch(host, port, request), REQUEST_TIMEOUT)
            ok = status == 200 and KINDS[n % len(KINDS)].done in tail
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            ok = False
        finally:
            in_flight -= 1
        results.append((at, (loop.time() - began - at) * 1000 if ok else None))

    async def sampler() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while True:
                await asyncio.sleep(SAMPLE_EVERY)
                text = (await client.get('/metrics')).text
                samples.append(
                    Sample(
                        at=loop.time() - began,
                        rss_mb=_gauge(text, 'process_resident_memory_bytes') / MB,
                        open_fds=_gauge(text, 'process_open_fds'),
                        tasks=_gauge(text, 'mindrouter_event_loop_tasks'),
                        loop=lag.parse(text),
                    )
                )

    watcher = asyncio.create_task(sampler())
    running: set[asyncio.Task[None]] = set()
    for n in range(int(total * rate)):
        at = n / rate
        delay = began + at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= MAX_IN_FLIGHT:
            results.append((at, None))
            continue
        task = asyncio.create_task(one(n, at))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    watcher.cancel()
    return results, samples


def _gauge(text: str, name: str) -> float:
    match = re.search(rf'^{name} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def windows_of(
    results: list[Result], samples: list[Sample], *, window: float, warmup: float, total: float
) -> list[Window]:
    windows = []
    start = warmup
    while start + window <= total + 1e-9:
        end = start + window
        inside = [latency for at, latency in results if start <= at < end]
        latencies = sorted(latency for latency in inside if latency is not None)
        taken = [s for s in samples if start <= s.at < end + SAMPLE_EVERY / 2]
        current = Window(start_s=start, end_s=end, requests=len(inside), errors=inside.count(None))
        if latencies:
            current.p50_ms = round(_quantile(latencies, 0.5), 2)
            current.p99_ms = round(_quantile(latencies, 0.99), 2)
        if taken:
            current.rss_mb = round(statistics.median(s.rss_mb for s in taken), 1)
            current.open_fds = statistics.median(s.open_fds for s in taken)
            current.tasks = statistics.median(s.tasks for s in taken)
            before = [s for s in samples if s.at < start]
            loop = lag.delta(before[-1].loop if before else None, taken[-1].loop)
            if loop is not None:
                current.loop_stalls, current.loop_lag_max_ms = loop.stalls, loop.max_ms
        windows.append(current)
        start = end
    return windows


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def judge(windows: list[Window], *, max_drift: float, floors: dict[str, float] = FLOORS) -> Report:
    report = Report(windows)
    first, last = windows[0], windows[-1]
    for name, floor in floors.items():
        before, after = getattr(first, name), getattr(last, name)
        report.drift[name] = round((after - before) / max(before, floor), 4)
        if report.drift[name] > max_drift:
            report.failures.append(
                f'{name} grew from {before:g} to {after:g} ({report.drift[name]:+.1%}, floor {floor:g})'
            )
    for current in windows:
        if current.requests == 0 or current.errors > MAX_ERROR_SHARE * current.requests:
            report.failures.append(
                f'{current.errors} of {current.requests} requests failed in the window from {current.start_s:g} s'
            )
    return report


def table(report: Report) -> str:
    rows = [
        '| window (s) | requests | errors | p50 ms | p99 ms | RSS MB | open fds | tasks | loop stalls > 5 ms '
        '| loop lag max ms |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for w in report.windows:
        top = '' if w.loop_lag_max_ms is None else f'≤ {w.loop_lag_max_ms:g}'
        stalls = '' if w.loop_stalls is None else w.loop_stalls
        rows.append(
            f'| {w.start_s:g} to {w.end_s:g} | {w.requests:,} | {w.errors} | {w.p50_ms} | {w.p99_ms} | '
            f'{w.rss_mb} | {w.open_fds:g} | {w.tasks:g} | {stalls} | {top} |'
        )
    rows.append('')
    rows.append(
        'drift, last window vs first (growth / max(first, floor)): '
        + ', '.join(f'{name} {value:+.1%}' for name, value in report.drift.items())
    )
    return '\n'.join(rows)


if __name__ == '__main__':
    sys.exit(main())
