"""How much database the audit trail takes per 100,000 requests, on SQLite and on MariaDB.

    python -m bench.audit_size [--requests 100000] [--mariadb mysql+aiomysql://root@127.0.0.1:3306]

Writes the requests through the real writer path (core.audit.writer.AuditWriter: the same compiled batch INSERT
the gateway uses, 500 rows a batch) into a fresh, migrated database, twice: with prompts and answers kept (the
default) and without (AUDIT_LOG_PROMPTS/RESPONSES=false, what is left once content retention has blanked a row).
It then measures the request_log table: on SQLite the pages it uses (dbstat) and the file, checkpointed; on MariaDB
data_length + index_length from information_schema after ANALYZE TABLE (InnoDB's figures: pages allocated).

The traffic is synthetic but shaped like chat traffic (the seeds are fixed, so runs compare): every request
stores its whole conversation so far as the prompt (the gateway keeps `messages` as JSON), conversations run a
few turns (geometric, mean 3), a user turn has a median of ~300 characters, an answer ~1,200 (log-normal), half
the conversations start with a ~400-character system prompt; 3 % fail (no answer), 5 % are embeddings (short
input, no answer). The average stored prompt and answer lengths are reported so the figures can be scaled to
other traffic. A benchmark, not a test: it never fails. Results: bench/results/audit_size.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.key_check import _commit, _cpu_model
from core import migrations
from core.accounts import service as accounts
from core.audit.writer import AuditRecord, AuditWriter
from core.db import Database
from core.models import utcnow

RESULTS = Path(__file__).resolve().parent / 'results'
USERS = 200
BATCH = 500  # AUDIT_BATCH_SIZE's default
WORDS = ('the', 'model', 'data', 'learning', 'function', 'value', 'result', 'student', 'research', 'question',
         'answer', 'because', 'which', 'python', 'error', 'example', 'table', 'system', 'paper', 'course', 'lecture',
         'network', 'memory', 'matrix', 'gradient', 'loss', 'train', 'energy', 'protein', 'cell', 'theory', 'proof',
         'equation', 'code', 'test', 'file', 'output', 'input', 'method', 'class', 'analysis', 'however',
         'therefore', 'explain', 'summarize', 'compare', 'describe', 'write', 'improve', 'review')


@dataclass(slots=True)
class Traffic:
    """Deterministic synthetic requests (see the module docstring)."""

    seed: int = 17

    def records(self, count: int, users: list[int], content: bool) -> Iterator[AuditRecord]:
        rng = random.Random(self.seed)
        start = utcnow() - timedelta(days=1)
        conversation: list[dict[str, str]] = []
        turns_left = 0
        for n in range(count):
            kind = rng.random()
            created = start + timedelta(seconds=n * 86_400 / count)
            user = rng.choice(users)
            common: dict[str, Any] = dict(
                request_id=f'{uuid.uuid4().hex[:20]}{n:012x}', user_id=user,
                client_ip=f'10.{n % 250}.{n % 7}.{n % 200}',
                user_agent=rng.choice(('OpenAI/Python 1.54.4', 'ollama-python/0.4.4', 'Anthropic/Python 0.39.0',
                                       'Mozilla/5.0 (X11; Linux x86_64) MindRouter console')),
                backend_name=f'gpu{rng.randint(1, 8)}-ollama', created_at=created,
                completed_at=created + timedelta(seconds=3), queue_ms=rng.random() * 50, total_ms=rng.random() * 9000)
            if kind < 0.05:  # embeddings: a short input, no answer text
                yield AuditRecord(endpoint='/v1/embeddings', status='completed', http_status=200,
                                  model='nomic-embed-text:latest', prompt_tokens=rng.randint(5, 400),
                                  prompt=self._text(rng, 200) if content else None, **common)
                continue
            if turns_left == 0:  # a new conversation
                turns_left = 1 + int(rng.expovariate(1 / 2))  # geometric-ish, mean 3
                conversation = [{'role': 'system', 'content': self._text(rng, 400)}] if rng.random() < 0.5 else []
            turns_left -= 1
            conversation.append({'role': 'user', 'content': self._text(rng, 300)})
            prompt = orjson.dumps(conversation).decode()
            failed = kind < 0.08
            answer = '' if failed else self._text(rng, 1200)
            if not failed:
                conversation.append({'role': 'assistant', 'content': answer})
            yield AuditRecord(
                endpoint=rng.choice(('/v1/chat/completions', '/api/chat', '/anthropic/v1/messages')),
                status='failed' if failed else 'completed', http_status=502 if failed else 200,
                error='engine error: CUDA out of memory' if failed else None, model=rng.choice(
                    ('llama3.2:latest', 'qwen2.5:32b', 'gpt-oss:120b', 'gemma3:27b')), stream=rng.random() < 0.7,
                prompt_tokens=len(prompt) // 4, completion_tokens=len(answer) // 4,
                ttft_ms=None if failed else rng.random() * 800,
                prompt=prompt if content else None, response=(answer or None) if content else None, **common)

    @staticmethod
    def _text(rng: random.Random, median: int) -> str:
        length = max(8, int(median * math.exp(rng.gauss(0, 0.8))))
        words: list[str] = []
        size = 0
        while size < length:
            word = rng.choice(WORDS)
            words.append(word)
            size += len(word) + 1
        return ' '.join(words)[:length]


async def run(url: str, requests: int, content: bool) -> dict[str, Any]:
    await asyncio.to_thread(migrations.upgrade, url)
    database = Database(url)
    try:
        async with database.session() as session:
            users = []
            for n in range(USERS):
                user = await accounts.create_user(session, username=f'user{n:04d}', role='student')
                assert user.id is not None
                users.append(user.id)
        empty = await measure(database)
        writer = AuditWriter(database, batch_size=BATCH, buffer_limit=BATCH * 4)
        prompt_chars = answer_chars = 0
        started = time.perf_counter()
        for record in Traffic().records(requests, users, content):
            prompt_chars += len(record.prompt or '')
            answer_chars += len(record.response or '')
            writer.submit(record)
            if writer.pending >= BATCH:
                assert await writer.flush(), 'the database refused a batch'
        while writer.pending:
            assert await writer.flush()
        elapsed = time.perf_counter() - started
        full = await measure(database)
    finally:
        await database.dispose()
    return {'content': content, 'rows': requests, 'write_seconds': round(elapsed, 1),
            'rows_per_second': round(requests / elapsed), 'avg_prompt_chars': round(prompt_chars / requests),
            'avg_response_chars': round(answer_chars / requests), 'empty': empty, 'full': full,
            'request_log_bytes': full['request_log_bytes'] - empty['request_log_bytes'],
            'database_bytes': full['database_bytes'] - empty['database_bytes']}


async def measure(database: Database) -> dict[str, int]:
    """request_log's bytes (data + indexes) and the whole database's, as the engine allocates them."""
    async with database.connect() as conn:
        if conn.dialect.name == 'sqlite':
            await conn.execute(text('PRAGMA wal_checkpoint(TRUNCATE)'))
            path = database.url.database or ''
            return await asyncio.to_thread(_sqlite_sizes, path)
        await conn.execute(text('ANALYZE TABLE request_log'))
        rows = (await conn.execute(text(
            'SELECT table_name, data_length + index_length FROM information_schema.tables '
            'WHERE table_schema = DATABASE()'))).all()
    sizes = {str(name): int(size or 0) for name, size in rows}
    return {'request_log_bytes': sizes.get('request_log', 0), 'database_bytes': sum(sizes.values())}


def _sqlite_sizes(path: str) -> dict[str, int]:
    connection = sqlite3.connect(path)
    try:
        try:  # dbstat: the pages of each table and index (SQLITE_ENABLE_DBSTAT_VTAB, on in Debian's and PyPI's)
            names = [r[0] for r in connection.execute(
                "SELECT name FROM sqlite_master WHERE tbl_name = 'request_log'")]
            marks = ','.join('?' * len(names))
            used = connection.execute(f'SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})', names).fetchone()[0]
        except sqlite3.OperationalError:
            used = 0
    finally:
        connection.close()
    return {'request_log_bytes': int(used or 0), 'database_bytes': os.path.getsize(path)}


async def main(requests: int, mariadb: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {'benchmark': 'audit_size', 'commit': _commit(), 'python': platform.python_version(),
                               'machine': f'{platform.machine()}, {_cpu_model()}', 'requests': requests, 'runs': []}
    for content in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            outcome = await run(f'sqlite+aiosqlite:///{tmp}/audit.db', requests, content)
            results['runs'].append({'database': 'sqlite', **outcome})
        if mariadb:
            server = Database(mariadb)  # no database part: the server, to create and drop a scratch database
            name = f'mr_bench_{uuid.uuid4().hex[:10]}'
            try:
                await _server_statement(server, f'CREATE DATABASE `{name}` CHARACTER SET utf8mb4 '
                                                f'COLLATE utf8mb4_unicode_ci')
                try:
                    url = make_url(mariadb).set(database=name).render_as_string(hide_password=False)
                    outcome = await run(url, requests, content)
                    results['runs'].append({'database': 'mariadb', **outcome})
                finally:
                    await _server_statement(server, f'DROP DATABASE IF EXISTS `{name}`')
            finally:
                await server.dispose()
    return results


async def _server_statement(server: Database, statement: str) -> None:
    async with server.connect() as conn:
        await conn.execute(text(statement))
        await conn.commit()


def table(results: dict[str, Any]) -> str:
    per = 100_000 / results['requests']
    lines = ['| database | prompts and answers | request_log per 100k requests | whole database per 100k | '
             'avg prompt / answer chars | rows/s written |', '|---|---|---|---|---|---|']
    for r in results['runs']:
        table_mib, database_mib = r['request_log_bytes'] * per / 2**20, r['database_bytes'] * per / 2**20
        lines.append(f"| {r['database']} | {'kept' if r['content'] else 'not kept'} | {table_mib:,.0f} MiB | "
                     f"{database_mib:,.0f} MiB | {r['avg_prompt_chars']:,} / {r['avg_response_chars']:,} | "
                     f"{r['rows_per_second']:,} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument('--requests', type=int, default=100_000)
    parser.add_argument('--mariadb', help='a MariaDB server URL (no database part); a scratch database is created '
                                          'on it and dropped afterwards. Default: SQLite only')
    args = parser.parse_args()
    outcome = asyncio.run(main(args.requests, args.mariadb))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / 'audit_size.json').write_text(json.dumps(outcome, indent=2) + '\n')
    print(table(outcome))
