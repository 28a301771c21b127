"""The audit trail's writer: requests hand it a record and move on; it inserts rows in batches.

A slow or absent database slows nobody's tokens: records wait in a bounded buffer (oldest dropped, and
counted, only if the buffer fills during a long outage), are retried while the database is away, and
the buffer is flushed at clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import operator
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from sqlalchemy import bindparam, insert
from sqlalchemy.exc import DataError, IntegrityError

from core.db import Database
from core.errors import DatabaseUnavailable
from core.models import RequestLog, utcnow

log = logging.getLogger('mindrouter.audit')


@dataclass(slots=True)
class AuditRecord:
    request_id: str
    endpoint: str
    status: str  # completed | failed | cancelled | rejected
    http_status: int
    model: str = ''
    requested_model: str | None = None  # the alias asked for, when the model was named by one
    user_id: int | None = None
    api_key_id: int | None = None
    backend_id: int | None = None
    backend_name: str | None = None
    stream: bool = False
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    queue_ms: float = 0.0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    client_ip: str | None = None
    user_agent: str | None = None
    prompt: str | None = None
    response: str | None = None
    schema_valid: bool | None = None
    speech_chars: int = 0
    audio_seconds: float = 0.0
    audio_path: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    completed_at: datetime | None = None

    def row(self) -> dict[str, object]:
        # Not dataclasses.asdict: that deep-copies every value, which costs more than the rest of a request.
        return {name: getattr(self, name) for name in _COLUMNS}


_COLUMNS = tuple(f.name for f in fields(AuditRecord))
_DATETIME_COLUMNS = frozenset(f.name for f in fields(AuditRecord) if 'datetime' in str(f.type))
_ROWS_PER_TURN = 100  # rows converted between two turns of the event loop (~0.5 ms)
_ROWS_PER_CALL = 32  # rows per call into SQLite's thread while the writer keeps up (~0.3 ms of that thread's time)
# A writer that has fallen behind (a saturated core): batches this many times the usual size, inserts of this many
# rows a statement (32 x 27 parameters: its thread takes the GIL once per 32 rows, not once a row), and the core
# handed back to the event loop every few statements (~1 ms of the thread's work).
_CATCH_UP_BATCHES = 10
_CATCH_UP_ROWS_PER_STATEMENT = 32
_CATCH_UP_STATEMENTS_PER_SLICE = 4
_yield_core: Callable[[], None] = getattr(os, 'sched_yield', lambda: None)  # POSIX
# A row the database refuses (a constraint), from SQLAlchemy or, for the SQLite path that bypasses it, sqlite3.
_REFUSED = (IntegrityError, DataError, sqlite3.IntegrityError, sqlite3.DataError)


def _db_value(value: object, datetime_as_text: bool) -> object:
    if isinstance(value, datetime):  # stored as naive UTC, as core.models.base.UtcDateTime does
        naive = value.astimezone(UTC).replace(tzinfo=None)
        # SQLite compares the text: always six fractional digits, as SQLAlchemy writes them, or a time on a whole
        # second ('12:00:00') would sort before its own bound parameter ('12:00:00.000000').
        return naive.isoformat(' ', timespec='microseconds') if datetime_as_text else naive
    return value


class _Statement:
    """The compiled insert, and how a record becomes its parameter tuple: one C-level attribute fetch for every
    column, then the datetimes converted (~3 µs a record; a generic per-column conversion took twice that)."""

    def __init__(self, sql: str, order: tuple[str, ...], *, as_text: bool) -> None:
        self.sql = sql
        self._values: Callable[[AuditRecord], tuple[object, ...]] = operator.attrgetter(*order)
        self._datetimes = tuple(i for i, name in enumerate(order) if name in _DATETIME_COLUMNS)
        self._as_text = as_text  # SQLAlchemy's SQLite DATETIME is text; drivers elsewhere take datetimes
        self._multi_row: dict[int, str] = {}  # rows -> statement (a full chunk and the batches' remainders)

    def row(self, record: AuditRecord) -> tuple[object, ...]:
        values = list(self._values(record))
        for i in self._datetimes:
            values[i] = _db_value(values[i], self._as_text)
        return tuple(values)

    def multi_row_sql(self, rows: int) -> str:
        """The insert for `rows` rows in one statement: INSERT ... VALUES (?, ...), (?, ...), ..."""
        sql = self._multi_row.get(rows)
        if sql is None:
            head, values = self.sql.split(' VALUES ', 1)
            sql = self._multi_row[rows] = f'{head} VALUES {", ".join([values] * rows)}'
        return sql

    def parameters_of(self, records: list[AuditRecord], rows: int) -> Iterator[tuple[object, ...]]:
        """The parameters of `multi_row_sql(rows)` for `records` (a multiple of `rows`), statement by statement.
        An iterator, so that sqlite3's `executemany` builds each set in the connection's own thread as it binds it.
        Every few statements the thread gives the core back to the event loop: a time slice of its own otherwise
        held the loop off for 5 ms and more."""
        for statement, start in enumerate(range(0, len(records), rows)):
            if statement and statement % _CATCH_UP_STATEMENTS_PER_SLICE == 0:
                _yield_core()  # without the GIL (CPython releases it around the call)
            yield tuple(itertools.chain.from_iterable(map(self.row, records[start:start + rows])))


class AuditWriter:
    def __init__(self, database: Database, *, interval: float = 1.0, batch_size: int = 500,
                 buffer_limit: int = 50_000) -> None:
        self._database = database
        self._interval = interval
        self._batch_size = batch_size
        self._buffer: deque[AuditRecord] = deque(maxlen=buffer_limit)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._statement: _Statement | None = None
        self.dropped = 0  # records lost because the buffer overflowed during an outage
        self.written = 0

    def submit(self, record: AuditRecord) -> None:
        """Queue a record. Never blocks and never raises: the request path calls it."""
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error('audit buffer full (%d records): dropped %d oldest records so far',
                          len(self._buffer), self.dropped)
        self._buffer.append(record)
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name='audit-writer')

    async def stop(self) -> None:
        """Stop the loop and write everything still buffered (one last try if the database is down)."""
        if self._task is not None:
            # Not task.cancel(): a cancelled insert would lose the batch it had taken from the buffer.
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        while self._buffer:
            if not await self.flush():
                log.error('audit: %d records could not be written at shutdown', len(self._buffer))
                return

    async def flush(self) -> bool:
        """Write one batch; False when the database refused it (the batch stays buffered)."""
        if not self._buffer:
            return True
        # Behind (two batches waiting, or the last writes at shutdown): on SQLite bigger batches in fewer round trips
        # through the loop. (On MariaDB aiomysql builds the statement in the loop's thread: a bigger batch would
        # stall the loop.)
        behind = self._stopping or len(self._buffer) >= 2 * self._batch_size
        size = self._batch_size * (_CATCH_UP_BATCHES if behind and self._database.is_sqlite_file else 1)
        batch = [self._buffer.popleft() for _ in range(min(size, len(self._buffer)))]
        try:
            await self._insert(batch, behind=behind)
        except asyncio.CancelledError:
            self._buffer.extendleft(reversed(batch))  # not written: keep it for the final flush
            raise
        except _REFUSED:
            # A row the database refuses (say, a user deleted mid-flight) must not block the others:
            # retry one by one and drop only the culprits.
            log.warning('audit: batch of %d rejected; retrying row by row', len(batch))
            for position, record in enumerate(batch):
                try:
                    await self._insert_alone(record)
                except _REFUSED as exc:
                    self.dropped += 1
                    log.error('audit: dropped record %s: %s', record.request_id, getattr(exc, 'orig', exc))
                except Exception:
                    self._buffer.extendleft(reversed(batch[position:]))
                    return False
            return True
        except Exception as exc:  # unreachable, or not usable yet (schema missing): keep everything, retry
            self._buffer.extendleft(reversed(batch))
            message = exc.message if isinstance(exc, DatabaseUnavailable) else f'{exc.__class__.__name__}: {exc}'
            log.warning('audit: cannot write, %d records buffered: %s', len(self._buffer), message.splitlines()[0])
            return False
        return True

    async def _insert_alone(self, record: AuditRecord) -> None:
        try:
            await self._insert([record])
        except (IntegrityError, sqlite3.IntegrityError):
            if record.backend_id is None:
                raise
            # Its backend may have been deleted after the request ended (deletion waits for no request in
            # flight, not for this buffer): keep the row under the backend's name, without the dangling id.
            record.backend_id = None
            await self._insert([record])

    async def _insert(self, records: list[AuditRecord], *, behind: bool = True) -> None:
        statement = self._compiled()
        if (self._database.engine.dialect.driver != 'aiosqlite'
                or not await self._insert_in_thread(statement, records, behind=behind)):
            await self._insert_from_loop(statement, records)
        self.written += len(records)

    async def _insert_in_thread(self, statement: _Statement, records: list[AuditRecord], *, behind: bool) -> bool:
        """SQLite: on a connection of the batch's own (core.db.BackgroundSqliteConnection), whose thread runs behind
        the event loop for the CPU (nice +10), in one transaction; the rows are converted and bound in that thread as
        sqlite3 asks for them. False on an in-memory database: the caller goes through the pool.

        While the writer keeps up: a row a statement, `_ROWS_PER_CALL` rows a call; between two calls the thread
        waits on its queue, so a request never waits for the core behind more than one call (~0.3 ms). Once it is
        behind, that pace (a round trip through a saturated loop per call, a GIL hand-off per row) capped it at
        ~1,500 rows a second, below what one core serves: the whole batch then goes in one call, in statements of
        `_CATCH_UP_ROWS_PER_STATEMENT` rows (docs/performance.md#the-audit-trail-on-a-saturated-core)."""
        connection = self._database.background_sqlite()
        if connection is None:
            return False
        async with connection as conn:  # opening one costs ~1 ms of its thread, a few times a second
            try:
                if behind:
                    rows = _CATCH_UP_ROWS_PER_STATEMENT
                    whole = len(records) - len(records) % rows
                    # whole statements, then the rest in one statement of its own size
                    for part, per_statement in ((records[:whole], rows), (records[whole:], len(records) - whole)):
                        if part:
                            await conn.executemany(statement.multi_row_sql(per_statement),
                                                   statement.parameters_of(part, per_statement))
                else:
                    for start in range(0, len(records), _ROWS_PER_CALL):
                        await conn.executemany(statement.sql, map(statement.row, records[start:start + _ROWS_PER_CALL]))
                await conn.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.rollback()  # nothing of a refused batch stays half-written
                raise
        return True

    async def _insert_from_loop(self, statement: _Statement, records: list[AuditRecord]) -> None:
        """Through the pool (MariaDB; in-memory SQLite): aiomysql builds the statement in the event loop's thread, so
        the rows are converted a slice per turn of the loop, and a full batch does not hold it for milliseconds."""
        rows: list[tuple[object, ...]] = []
        for start in range(0, len(records), _ROWS_PER_TURN):
            if start:  # a full batch took ~3 ms of the loop in one go (docs/performance.md#event-loop-lag)
                await asyncio.sleep(0)
            rows.extend(statement.row(record) for record in records[start:start + _ROWS_PER_TURN])
        async with self._database.connect() as conn:
            await conn.exec_driver_sql(statement.sql, rows)
            await conn.commit()

    def _compiled(self) -> _Statement:
        if self._statement is None:
            dialect = self._database.engine.dialect
            # Compiled once, then rows go to the driver as plain tuples: SQLAlchemy's per-row parameter
            # processing cost ~55 µs a row, more than everything else the writer does.
            compiled = insert(RequestLog).values({name: bindparam(name) for name in _COLUMNS}).compile(dialect=dialect)
            positions = compiled.positiontup  # both drivers (sqlite3, aiomysql) take positional parameters
            assert positions is not None, f'{dialect.name} driver does not take positional parameters'
            self._statement = _Statement(str(compiled), tuple(positions), as_text=dialect.name == 'sqlite')
        return self._statement

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            while self._buffer and not self._stopping:
                if not await self.flush():
                    break  # database away: wait for the next tick
                if len(self._buffer) < self._batch_size:
                    # What came in during the write waits for the next tick or a full batch: flushing it at once
                    # turned a busy gateway's audit trail into hundreds of two-row transactions a second.
                    break
