"""The async engine and sessions: SQLite (embedded default, aiosqlite) or MariaDB (production, aiomysql).

One `Database` per process, built lazily from the settings so that code which never touches the
database (the CLI's `--help`, the NiceGUI test fixture) never opens a connection.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import Settings, get_settings
from core.errors import DatabaseUnavailable

log = logging.getLogger('mindrouter.db')

# Errors that mean "no usable connection" (as opposed to a bad statement or a constraint violation).
CONNECTION_ERRORS = (OperationalError, InterfaceError, OSError)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 20, pool_recycle: int = 1800) -> None:
        self.url = make_url(url)
        self.engine = _create_engine(self.url, pool_size=pool_size, max_overflow=max_overflow,
                                     pool_recycle=pool_recycle)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(settings.resolved_database_url, pool_size=settings.db_pool_size,
                   max_overflow=settings.db_max_overflow, pool_recycle=settings.db_pool_recycle)

    @property
    def is_sqlite_file(self) -> bool:
        """SQLite in a file (the embedded default), as opposed to MariaDB or an in-memory database."""
        return self.url.get_backend_name() == 'sqlite' and self.url.database not in (None, '', ':memory:')

    @property
    def location(self) -> str:
        return describe_location(self.url)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; a lost or refused connection surfaces as DatabaseUnavailable naming the host."""
        try:
            async with self._sessions() as session:
                yield session
        except CONNECTION_ERRORS as exc:
            raise unavailable(self.location, exc) from exc

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A bare connection for hot-path reads; connection failures become DatabaseUnavailable."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except CONNECTION_ERRORS as exc:
            raise unavailable(self.location, exc) from exc

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at; None on an empty database.

        Raises DatabaseUnavailable (naming the host) when the server cannot be reached.
        """
        try:
            async with self.engine.connect() as conn:
                has_table = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, 'alembic_version'))
                if not has_table:
                    return None
                return (await conn.execute(text('SELECT version_num FROM alembic_version'))).scalar()
        except CONNECTION_ERRORS as exc:
            raise unavailable(self.location, exc) from exc

    def background_sqlite(self) -> aiosqlite.Connection | None:
        """A connection of its own to the SQLite file, for a background writer (the audit trail), whose thread lets
        the event loop go first for the CPU (`BackgroundSqliteConnection`); None on MariaDB or in-memory SQLite. The
        caller opens and closes it (`async with`)."""
        if not self.is_sqlite_file:
            return None
        url = prepare_url(self.url)
        assert url.database is not None
        return aiosqlite.connect(url.database, timeout=30, factory=BackgroundSqliteConnection)

    async def dispose(self) -> None:
        await self.engine.dispose()


_database: Database | None = None


def get_database() -> Database:
    """The process-wide database, built from the settings on first use."""
    global _database
    if _database is None:
        _database = Database.from_settings(get_settings())
    return _database


async def dispose_database() -> None:
    global _database
    if _database is not None:
        await _database.dispose()
        _database = None


def describe_location(url: URL | str) -> str:
    """Where a database lives, for error messages: host:port, or the SQLite file. Never the password."""
    url = make_url(url)
    if url.get_backend_name() == 'sqlite':
        return f'sqlite file {url.database}' if url.database else 'in-memory sqlite'
    return f'{url.host or "localhost"}:{url.port or 3306}'


def prepare_url(url: URL | str) -> URL:
    """The URL as the engine needs it: utf8mb4 on MariaDB, the SQLite file's folder created."""
    url = make_url(url)
    if url.get_backend_name() == 'sqlite' and url.database and url.database != ':memory:':
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == 'mysql' and 'charset' not in url.query:
        url = url.update_query_dict({'charset': 'utf8mb4'})
    return url


def _create_engine(url: URL, *, pool_size: int, max_overflow: int, pool_recycle: int) -> AsyncEngine:
    url = prepare_url(url)
    if url.get_backend_name() == 'sqlite':
        engine = create_async_engine(url, connect_args={'timeout': 30})
        event.listen(engine.sync_engine, 'connect', _sqlite_pragmas)
        return engine
    options: dict[str, Any] = {'connect_timeout': 5}
    # pool_recycle below MariaDB's wait_timeout avoids "server has gone away" on idle connections.
    return create_async_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow,
                               pool_recycle=pool_recycle, connect_args=options)


# How far behind the event loop a background writer's thread queues for the CPU (nice steps, Linux only).
BACKGROUND_NICENESS = 10


class BackgroundSqliteConnection(sqlite3.Connection):
    """A SQLite connection whose worker thread lets the event loop go first for the CPU.

    aiosqlite opens the connection in the thread that serves it, so this constructor runs there and lowers that
    thread's own priority. On a busy core an audit batch (~5 ms of SQLite's work, which runs without the GIL)
    otherwise takes the core from the requests in flight for as long as it lasts; behind the loop it runs in the
    loop's idle moments (docs/performance.md#the-one-connection-tail-the-audit-batch). Only background writes use
    it: a thread the loop waits on for a request stays at the loop's own priority.

    Not SCHED_IDLE, though it measured ~0.2 ms better at one connection: that thread holds the GIL for a row at a
    time, and any busy process sharing its core then starves it while the loop waits for the GIL (p99 of 226-329 ms
    and loop stalls of 0.3 s with one CPU hog beside the gateway; nice +10: 5 ms and 0.15 s). Nice +10 still gets a
    share of a saturated core, so a writer that has fallen behind catches up
    (docs/performance.md#the-audit-trail-on-a-saturated-core).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _lower_thread_priority(BACKGROUND_NICENESS)
        super().__init__(*args, **kwargs)
        _sqlite_pragmas(self, None)


def _lower_thread_priority(steps: int) -> None:
    if not hasattr(os, 'setpriority'):
        return
    thread = threading.get_native_id()  # on Linux the calling thread's own priority, not the process's
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + steps))
    except OSError as exc:  # a sandbox without the call: a slower tail, nothing worse
        log.debug('could not lower a background thread\'s priority: %s', exc)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute('PRAGMA foreign_keys=ON')
    cursor.execute('PRAGMA journal_mode=WAL')  # readers never wait for the audit writer
    cursor.execute('PRAGMA synchronous=NORMAL')
    cursor.execute('PRAGMA busy_timeout=30000')
    cursor.close()


def unavailable(location: str, exc: BaseException) -> DatabaseUnavailable:
    """The one-line error for a connection failure: where, and why (never a traceback)."""
    return DatabaseUnavailable(f'cannot reach the database at {location}: {_reason(exc)}')


def _reason(exc: BaseException) -> str:
    original: BaseException = getattr(exc, 'orig', None) or exc
    args: tuple[object, ...] = original.args
    # pymysql errors are (code, message); keep the message only
    if len(args) >= 2 and isinstance(args[1], str):
        return args[1]
    text = str(original)
    return text.splitlines()[0] if text else type(original).__name__
