"""Benchmark: how fairly a live gateway shares a saturated cluster between users of different weights.

    python -m bench.fairness [--scenario NAME ...] [--seconds 40]
    python -m bench.fairness --live [--seconds 60]        # what `make demo` runs

A real `mindrouter serve --no-ui` (SQLite) in front of one simulated vLLM engine with SLOTS slots, each
request holding its slot for ~0.5 s (50 tokens at 10 ms). Users are created with the CLI in their roles
(so their weights are the roles'), their rate limits lifted, and each keeps `outstanding` requests in
flight (a closed loop: a new one as soon as one ends), which offers several times the cluster's
capacity. Scenarios (targets from the scheduler issue):

- equal: three students, each offering 3x capacity: Jain's index on tokens per weight, every 10 s window.
- weights: student, staff and faculty (1:2:3) flooding: each one's token share against its weight share.
- lone: one user alone: slot utilisation.
- newcomer: a student floods; a second joins after 10 s: its share in each second after it arrives.
- interactive: a flooder and a user asking one short question every ~2 s: the light user's queue waits.

Writes bench/results/fairness.json and prints a markdown summary. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.gateway import _mindrouter, _process
from bench.key_check import _commit, _cpu_model

RESULTS = Path(__file__).resolve().parent / 'results'
MODEL = 'meta-llama/Llama-3.2-1B-Instruct'
SLOTS = 4
TOKENS = 50
TOKEN_DELAY_MS = 10
WINDOW = 10.0
WEIGHTS = {'student': 1, 'staff': 2, 'faculty': 3, 'admin': 10}


@dataclass
class User:
    name: str
    role: str
    outstanding: int  # closed-loop requests kept in flight; 0 for an interactive user
    starts_at: float = 0.0
    think_s: float = 0.0  # interactive: mean pause between questions
    key: str = ''
    done: list[tuple[float, int, float]] = field(default_factory=list)  # (finished at, tokens, queue ms)

    @property
    def weight(self) -> int:
        return WEIGHTS[self.role]


@dataclass
class Cluster:
    url: str
    admin_key: str
    env: dict[str, str]
    users: int = 0

    def add(self, user: User) -> User:
        self.users += 1
        _mindrouter(self.env, 'create-user', user.name, '--role', user.role)
        user.key = _mindrouter(self.env, 'create-key', user.name).strip()
        httpx.put(f'{self.url}/api/admin/users/{user.name}/quota', headers={'X-API-Key': self.admin_key},
                  json={'rpm_limit': 0, 'max_concurrent': 0, 'token_budget': 0, 'note': 'fairness benchmark'},
                  timeout=30).raise_for_status()
        return user


async def drive(cluster: Cluster, users: list[User], seconds: float,
                on_tick: Callable[[float], None] | None = None) -> float:
    """Run every user's load for `seconds`; returns the start time (monotonic)."""
    started = time.monotonic()
    deadline = started + seconds
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=cluster.url, timeout=120, limits=limits) as client:

        async def one(user: User, max_tokens: int) -> None:
            response = await client.post('/v1/chat/completions', headers={'X-API-Key': user.key}, json={
                'model': MODEL, 'messages': [{'role': 'user', 'content': f'{user.name} asks'}],
                'max_tokens': max_tokens})
            if response.status_code == 200 and time.monotonic() <= deadline:
                user.done.append((time.monotonic() - started, response.json()['usage']['completion_tokens'],
                                  float(response.headers['x-mindrouter-queue-ms'])))

        async def closed_loop(user: User) -> None:
            await asyncio.sleep(user.starts_at)
            while time.monotonic() < deadline:
                await one(user, TOKENS)

        async def interactive(user: User) -> None:
            rng = random.Random(user.name)
            await asyncio.sleep(user.starts_at)
            while time.monotonic() < deadline:
                await asyncio.sleep(rng.expovariate(1 / user.think_s))
                await one(user, 10)

        tasks = [asyncio.create_task(closed_loop(user)) for user in users for _ in range(user.outstanding)]
        tasks += [asyncio.create_task(interactive(user)) for user in users if not user.outstanding]
        while time.monotonic() < deadline:
            await asyncio.sleep(min(2.0, deadline - time.monotonic()))
            if on_tick is not None:
                on_tick(time.monotonic() - started)
        await asyncio.gather(*tasks, return_exceptions=True)
    return started


def tokens(user: User, start: float, end: float) -> int:
    return sum(n for at, n, _ in user.done if start <= at < end)


def jain(values: list[float]) -> float:
    total = sum(v * v for v in values)
    return sum(values) ** 2 / (len(values) * total) if total else 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def scenario(name: str, cluster: Cluster, seconds: float) -> dict[str, object]:
    n = cluster.users
    if name == 'equal':
        users = [cluster.add(User(f'eq{n}-{i}', 'student', 3 * SLOTS)) for i in range(3)]
    elif name == 'weights':
        users = [cluster.add(User(f'w{n}-{role}', role, 2 * SLOTS)) for role in ('student', 'staff', 'faculty')]
    elif name == 'lone':
        users = [cluster.add(User(f'lone{n}', 'student', SLOTS + 2))]
    elif name == 'newcomer':
        users = [cluster.add(User(f'first{n}', 'student', 3 * SLOTS)),
                 cluster.add(User(f'second{n}', 'student', 3 * SLOTS, starts_at=10.0))]
    else:  # interactive
        users = [cluster.add(User(f'flood{n}', 'student', 4 * SLOTS)),
                 cluster.add(User(f'asker{n}', 'student', 0, starts_at=2.0, think_s=2.0))]
    asyncio.run(drive(cluster, users, seconds))
    service_s = TOKENS * TOKEN_DELAY_MS / 1000
    result: dict[str, object] = {'scenario': name, 'seconds': seconds, 'users': [
        {'user': u.name, 'role': u.role, 'weight': u.weight, 'requests': len(u.done), 'tokens': tokens(u, 0, seconds),
         'queue_ms_p50': round(percentile([q for *_, q in u.done], 0.5), 1),
         'queue_ms_p95': round(percentile([q for *_, q in u.done], 0.95), 1)} for u in users]}
    warm = 5.0  # the first seconds fill the slots and the queue
    if name in ('equal', 'weights'):
        windows = [jain([tokens(u, s, s + WINDOW) / u.weight for u in users])
                   for s in [warm + WINDOW * i for i in range(int((seconds - warm) // WINDOW))]]
        total = sum(tokens(u, warm, seconds) for u in users)
        result['jain_min_10s'] = round(min(windows), 4) if windows else None
        result['shares'] = {u.name: {'share': round(tokens(u, warm, seconds) / total, 4),
                                     'entitled': round(u.weight / sum(v.weight for v in users), 4)} for u in users}
    if name == 'lone':
        served_s = len(users[0].done) * service_s
        result['slot_utilisation'] = round(served_s / (SLOTS * seconds), 4)
    if name == 'newcomer':
        first, second = users
        result['second_share_by_second'] = [
            round(tokens(second, t, t + 1) / max(1, tokens(first, t, t + 1) + tokens(second, t, t + 1)), 3)
            for t in range(10, min(20, int(seconds)))]
    if name == 'interactive':
        waits = [q / 1000 for *_, q in users[1].done]
        result['light_wait_p95_s'] = round(percentile(waits, 0.95), 3)
        result['mean_service_s'] = service_s
    return result


def live(cluster: Cluster, seconds: float) -> None:
    """`make demo`: every role floods at once; each user's share of the last 10 s next to its entitlement."""
    users = [cluster.add(User(f'demo-{role}', role, 2 * SLOTS)) for role in ('student', 'staff', 'faculty', 'admin')]
    total_weight = sum(u.weight for u in users)

    def show(elapsed: float) -> None:
        recent = {u.name: tokens(u, max(0.0, elapsed - WINDOW), elapsed) for u in users}
        total = sum(recent.values()) or 1
        lines = [f'\n{elapsed:5.1f} s   user           role     weight  entitled   last 10 s   tokens so far']
        for u in users:
            lines.append(f'          {u.name:<14} {u.role:<8} {u.weight:>6}  {u.weight / total_weight:8.1%}'
                         f'   {recent[u.name] / total:9.1%}   {tokens(u, 0, elapsed):>13,}')
        print('\n'.join(lines), flush=True)

    print(f'{len(users)} users flood {SLOTS} slots; shares should follow the weights {WEIGHTS}')
    asyncio.run(drive(cluster, users, seconds, show))


def main() -> None:
    parser = argparse.ArgumentParser(description='fair share on a live gateway')
    parser.add_argument('--scenario', nargs='*', default=['equal', 'weights', 'lone', 'newcomer', 'interactive'])
    parser.add_argument('--seconds', type=float, default=40.0)
    parser.add_argument('--live', action='store_true', help='the demo: print shares every 2 s')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        env = {**os.environ, 'DATA_DIR': str(Path(tmp) / 'data'), 'LOG_LEVEL': 'error', 'SECRET_KEY': 'fair-' * 10,
               'QUEUE_TIMEOUT': '600'}
        env.pop('DATABASE_URL', None)
        engine = stack.enter_context(_process([sys.executable, '-m', 'sim', 'vllm', '--tokens', str(TOKENS)], env,
                                              '/health'))
        httpx.post(f'{engine}/_sim/config', json={'token_delay_ms': TOKEN_DELAY_MS}).raise_for_status()
        _mindrouter(env, 'migrate')
        _mindrouter(env, 'create-user', 'operator', '--role', 'admin')
        admin_key = _mindrouter(env, 'create-key', 'operator').strip()
        gateway = stack.enter_context(_process([str(Path(sys.executable).parent / 'mindrouter'), 'serve', '--no-ui'],
                                               env, '/healthz'))
        httpx.post(f'{gateway}/api/admin/backends/register', headers={'X-API-Key': admin_key}, timeout=30,
                   json={'name': 'sim', 'url': engine, 'engine': 'vllm', 'max_concurrent': SLOTS}).raise_for_status()
        cluster = Cluster(gateway, admin_key, env)
        if args.live:
            live(cluster, args.seconds)
            return
        results = [scenario(name, cluster, args.seconds) for name in args.scenario]
    RESULTS.mkdir(exist_ok=True)
    report = {'benchmark': 'fairness', 'commit': _commit(), 'machine': f'{os.cpu_count()} cores, {_cpu_model()}',
              'slots': SLOTS, 'service_s': TOKENS * TOKEN_DELAY_MS / 1000, 'scenarios': results}
    (RESULTS / 'fairness.json').write_text(json.dumps(report, indent=2) + '\n')
    for result in results:
        print(f"\n## {result['scenario']}")
        for key, value in result.items():
            if key not in ('scenario', 'users'):
                print(f'- {key}: {value}')
        for user in result['users']:  # type: ignore[attr-defined]
            print(f"  - {user['user']} ({user['role']}, weight {user['weight']}): {user['tokens']:,} tokens, "
                  f"{user['requests']} requests, queue p50 {user['queue_ms_p50']} ms, p95 {user['queue_ms_p95']} ms")
    print(f"\n{report['machine']}, commit {report['commit']}, {args.seconds:g} s per scenario")


if __name__ == '__main__':
    main()
