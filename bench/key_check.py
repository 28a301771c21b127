"""Micro-benchmark: the cached API-key check that every inference request pays.

    python -m bench.key_check [--iterations N]

Measures ApiKeyAuthenticator.authenticate() for a key whose answer is cached (the steady state): the
SHA-256 digest of the presented key, the cache lookup, the status and expiry checks and the last-use
record. Also reports a cache miss against a real, migrated SQLite database, for scale. Prints a
markdown table and writes bench/results/key_check.json. A benchmark, not a test: it never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from core import migrations
from core.accounts import service as accounts
from core.accounts.api_keys import ApiKeyAuthenticator
from core.db import Database

RESULTS = Path(__file__).resolve().parent / 'results'


async def main(iterations: int, database_url: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f'sqlite+aiosqlite:///{tmp}/bench.db'
        await asyncio.to_thread(migrations.upgrade, url)
        database = Database(url)
        async with database.session() as session:
            username = f'bench{time.time_ns()}'  # a reused database may hold earlier runs
            await accounts.create_user(session, username=username, role='student')
            _, key = await accounts.create_api_key(session, username=username)

        authenticator = ApiKeyAuthenticator(accounts.principal_loader(database), ttl=5.0)
        await authenticator.authenticate(key)  # warm the cache

        cached = await _sample(authenticator, key, iterations)
        miss_samples = []
        for _ in range(200):
            authenticator.invalidate()
            start = time.perf_counter_ns()
            await authenticator.authenticate(key)
            miss_samples.append((time.perf_counter_ns() - start) / 1000)
        await database.dispose()

    result = {
        'benchmark': 'key_check',
        'commit': _commit(),
        'python': platform.python_version(),
        'machine': f'{platform.machine()}, {_cpu_model()}',
        'iterations': iterations,
        'cached_us': _summary(cached),
        'miss_database': make_url(url).get_backend_name(),
        'miss_us': _summary(miss_samples),
    }
    return result


async def _sample(authenticator: ApiKeyAuthenticator, key: str, iterations: int) -> list[float]:
    # Batches of 1,000 calls timed together: per-call timer overhead would dominate a ~2 µs operation.
    per_call = []
    batch = 1000
    for _ in range(max(1, iterations // batch)):
        start = time.perf_counter_ns()
        for _ in range(batch):
            await authenticator.authenticate(key)
        per_call.append((time.perf_counter_ns() - start) / batch / 1000)
    return per_call


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        'p50': round(statistics.median(ordered), 3),
        'p99': round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        'mean': round(statistics.fmean(ordered), 3),
    }


def _commit() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def _cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument('--iterations', type=int, default=200_000)
    parser.add_argument('--database-url', help='a migrated-or-empty database for the cache-miss figure '
                                               '(default: a temporary SQLite file)')
    args = parser.parse_args()
    outcome = asyncio.run(main(args.iterations, args.database_url))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f'key_check-{outcome["miss_database"]}.json').write_text(json.dumps(outcome, indent=2) + '\n')
    cached, miss = outcome['cached_us'], outcome['miss_us']
    assert isinstance(cached, dict) and isinstance(miss, dict)
    print(f"| check | p50 µs | p99 µs | mean µs |\n|---|---|---|---|\n"
          f"| cached key (steady state) | {cached['p50']} | {cached['p99']} | {cached['mean']} |\n"
          f"| cache miss, {outcome['miss_database']} lookup | {miss['p50']} | {miss['p99']} | {miss['mean']} |\n"
          f"\n{outcome['machine']}, Python {outcome['python']}, commit {outcome['commit']}")
