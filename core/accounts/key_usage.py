"""Writes API keys' last-used times in batches, off the request path, and once more at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from core.accounts.api_keys import ApiKeyAuthenticator
from core.accounts.service import record_key_usage
from core.db import Database
from core.errors import DatabaseUnavailable

log = logging.getLogger('mindrouter.auth')


class KeyUsageWriter:
    def __init__(self, authenticator: ApiKeyAuthenticator, database: Database, *, interval: float) -> None:
        self._authenticator = authenticator
        self._database = database
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._unwritten: dict[int, float] = {}  # kept across a database outage, one entry per key

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name='api-key-usage-writer')

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()  # not task.cancel(): a write cut short would lose what it had drained
            await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        self._unwritten.update(self._authenticator.drain_usage())
        if not self._unwritten:
            return
        batch = {key_id: datetime.fromtimestamp(when, UTC) for key_id, when in self._unwritten.items()}
        try:
            async with self._database.session() as session:
                await record_key_usage(session, last_used=batch)
        except Exception as exc:  # unreachable or not usable yet: keep the times, retry on the next tick
            message = exc.message if isinstance(exc, DatabaseUnavailable) else f'{exc.__class__.__name__}: {exc}'
            log.warning('could not record API key usage, will retry: %s', message.splitlines()[0])
            return
        self._unwritten.clear()

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)
            await self.flush()
