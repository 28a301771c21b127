"""The audit writer keeps records through a database outage and writes them when it is back."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from sqlmodel import select

from core import migrations
from core.audit.writer import AuditRecord, AuditWriter
from core.db import Database
from core.models import BackendBase, RequestLog
from core.registry import store


async def test_records_wait_out_an_unusable_database_and_are_written_at_shutdown(database_url: str) -> None:
    database = Database(database_url)  # not migrated yet: every insert fails
    writer = AuditWriter(database, interval=0.05, batch_size=10)
    writer.start()
    for n in range(25):
        writer.submit(AuditRecord(request_id=f'req-{n}', endpoint='/v1/chat/completions', status='completed',
                                  http_status=200, prompt='question', response='answer'))
    await asyncio.sleep(0.2)
    assert writer.pending == 25 and writer.written == 0  # nothing lost, nothing written

    await asyncio.to_thread(migrations.upgrade, database_url)  # the database is back
    await writer.stop()  # flushes everything still buffered

    async with database.session() as session:
        rows = list(await session.exec(select(RequestLog)))
    await database.dispose()
    assert sorted(row.request_id for row in rows) == sorted(f'req-{n}' for n in range(25))
    assert all(row.response == 'answer' and row.created_at.tzinfo is not None for row in rows)


async def test_a_full_buffer_drops_the_oldest_and_counts_them(database_url: str) -> None:
    writer = AuditWriter(Database(database_url), buffer_limit=100)
    for n in range(150):
        writer.submit(AuditRecord(request_id=f'r{n}', endpoint='/api/chat', status='completed', http_status=200))
    assert writer.pending == 100 and writer.dropped == 50


async def test_a_record_whose_backend_was_deleted_meanwhile_is_kept_under_its_name(database: Database) -> None:
    """A request ends, its backend is deleted before the writer's next batch: the row is written all the same,
    without the id that names nothing now, with the backend's name."""
    async with database.session() as session:
        backend = await store.create_backend(session, data=BackendBase(name='gone', url='http://127.0.0.1:9',
                                                                       engine='ollama'))
    assert backend.id is not None
    writer = AuditWriter(database)
    writer.submit(AuditRecord(request_id='before', endpoint='/api/chat', status='completed', http_status=200,
                              backend_id=backend.id, backend_name='gone'))
    writer.submit(AuditRecord(request_id='other', endpoint='/api/chat', status='completed', http_status=200))
    async with database.session() as session:
        await store.delete_backend(session, backend_id=backend.id)
    assert await writer.flush()
    async with database.session() as session:
        rows = {row.request_id: row for row in await session.exec(select(RequestLog))}
    assert set(rows) == {'before', 'other'} and writer.dropped == 0
    assert (rows['before'].backend_id, rows['before'].backend_name) == (None, 'gone')


@pytest.mark.parametrize('batch_size', [500, 20], ids=['keeping-up', 'catching-up'])
async def test_a_row_the_database_refuses_costs_only_itself(database: Database, batch_size: int) -> None:
    """A request id written twice (the unique key refuses it): the rest of its batch, which spans several statements
    (a row each while the writer keeps up, 32 rows each while it catches up), goes in; only the culprit is dropped
    and counted."""
    writer = AuditWriter(database, batch_size=batch_size)
    writer.submit(AuditRecord(request_id='dup', endpoint='/api/chat', status='completed', http_status=200))
    assert await writer.flush()
    for n in range(99):
        writer.submit(AuditRecord(request_id='dup' if n == 70 else f'r{n}', endpoint='/api/chat',
                                  status='completed', http_status=200))
    while writer.pending:  # one batch on SQLite; on MariaDB, which keeps its batch size, several in catching-up
        assert await writer.flush()
    async with database.session() as session:
        ids = [row.request_id for row in await session.exec(select(RequestLog))]
    assert sorted(ids) == sorted(['dup', *(f'r{n}' for n in range(99) if n != 70)])
    assert writer.dropped == 1 and writer.pending == 0


async def test_what_arrives_during_a_write_waits_for_the_next_tick(database: Database) -> None:
    """A full batch wakes the writer; what is left after it, short of a batch, waits for the interval instead of
    starting a transaction of its own at once (a busy gateway made hundreds of two-row transactions a second)."""
    writer = AuditWriter(database, interval=30, batch_size=10)
    writer.start()
    try:
        for n in range(15):
            writer.submit(AuditRecord(request_id=f'r{n}', endpoint='/api/chat', status='completed', http_status=200))
        for _ in range(100):
            if writer.written == 10:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        assert (writer.written, writer.pending) == (10, 5)
    finally:
        await writer.stop()
    assert (writer.written, writer.pending) == (15, 0)


async def test_a_writer_that_is_behind_catches_up_in_bigger_batches(database: Database) -> None:
    """Two batches or more waiting (a saturated core let the writer fall behind): on SQLite one transaction takes up
    to ten batches, in one call, so that the writer keeps pace with what one core serves instead of dropping the
    oldest records; once it has caught up, batches are the usual size again. MariaDB keeps its batch size (aiomysql
    builds the statement in the event loop's thread)."""
    writer = AuditWriter(database, interval=30, batch_size=20)
    for n in range(300):
        writer.submit(AuditRecord(request_id=f'r{n}', endpoint='/api/chat', status='completed', http_status=200))
    batch = 200 if database.is_sqlite_file else 20  # on SQLite: six statements of 32 rows, and one of 8
    assert await writer.flush()
    assert (writer.written, writer.pending) == (batch, 300 - batch)
    while writer.pending:
        assert await writer.flush()
    assert writer.written == 300
    for n in range(20):  # a batch again, with the writer keeping up
        writer.submit(AuditRecord(request_id=f's{n}', endpoint='/api/chat', status='completed', http_status=200))
    assert await writer.flush()
    assert writer.written == 320
    async with database.session() as session:
        ids = {row.request_id for row in await session.exec(select(RequestLog))}
    assert ids == {f'r{n}' for n in range(300)} | {f's{n}' for n in range(20)}


@pytest.mark.skipif(not hasattr(os, 'setpriority'), reason='a thread\'s own priority is POSIX')
async def test_the_background_writer_thread_lets_the_event_loop_go_first(tmp_path: Path) -> None:
    """The audit batch's own connection: its thread runs at nice +10 (not SCHED_IDLE: starved by a busy neighbour
    while holding the GIL, it held the loop up for a third of a second); the loop's own thread is untouched."""
    database = Database(f'sqlite+aiosqlite:///{tmp_path}/audit.db')
    connection = database.background_sqlite()
    assert connection is not None
    async with connection as conn:  # a SQL function runs in the connection's own thread: ask it there
        await conn.create_function('policy', 0, lambda: os.sched_getscheduler(0))
        await conn.create_function('niceness', 0, _own_niceness)
        async with conn.execute('SELECT policy(), niceness()') as cursor:
            row = await cursor.fetchone()
    assert row is not None
    assert (row[0], row[1]) == (os.SCHED_OTHER, min(19, _own_niceness() + 10))
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    await database.dispose()


def _own_niceness() -> int:
    """The calling thread's own nice value (Linux keeps one per thread)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
