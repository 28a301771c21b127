"""The Responses API store: `store: true` answers kept for their owner, so `previous_response_id` can chain.

Writing never slows an answer: the request hands the finished response to `submit` (a deque append) and a
background task inserts it, as the audit writer does. A chained request can follow its predecessor within
milliseconds, before that insert ran, so reads look in the pending buffer first. Reads happen only when a
client names a stored response (`previous_response_id`, `GET`, `DELETE`): one primary-key lookup.

Rows belong to a user: another user's id reads as missing (404), never as forbidden, so ids cannot be probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from core.db import Database
from core.models import StoredResponse, utcnow

log = logging.getLogger('mindrouter.responses')


@dataclass(slots=True)
class Stored:
    """One stored response as its owner reads it back."""

    id: str
    user_id: int
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    history: list[dict[str, Any]]

    def chained_items(self) -> list[dict[str, Any]]:
        """The conversation a turn chained on this one continues: everything before, this input, this output."""
        return [*self.history, *self.input_items, *self.response.get('output', [])]


class ResponseStore:
    def __init__(self, database: Database, *, buffer_limit: int = 10_000) -> None:
        self._database = database
        self._pending: deque[Stored] = deque(maxlen=buffer_limit)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = asyncio.Lock()  # the writer task and DELETE's flush never insert the same batch twice
        self.written = 0
        self.dropped = 0

    def submit(self, stored: Stored) -> None:
        """Queue a finished response for writing. Never blocks and never raises: the request path calls it."""
        self._pending.append(stored)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name='responses-writer')

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as exc:  # shutting down with the database away: say what is lost
            log.error('responses: %d stored responses could not be written at shutdown: %s', len(self._pending), exc)

    async def flush(self) -> None:
        async with self._lock:
            batch = list(self._pending)
            if not batch:
                return
            try:
                await self._insert(batch)
            except IntegrityError:  # its owner was deleted meanwhile: write the others, drop the orphans
                for stored in batch:
                    try:
                        await self._insert([stored])
                    except IntegrityError:
                        self.dropped += 1
                        log.warning('responses: dropped %s (its user is gone)', stored.id)
            for _ in batch:
                self._pending.popleft()  # only once written: a reader never finds a response in neither place
            self.written += len(batch)

    async def _insert(self, batch: list[Stored]) -> None:
        async with self._database.session() as session:
            for stored in batch:
                session.add(StoredResponse(
                    id=stored.id, user_id=stored.user_id, model=str(stored.response.get('model', ''))[:255],
                    response=orjson.dumps(stored.response).decode(),
                    input_items=orjson.dumps(stored.input_items).decode(),
                    history=orjson.dumps(stored.history).decode()))
            await session.commit()

    async def get(self, response_id: str, user_id: int) -> Stored | None:
        for stored in reversed(self._pending):
            if stored.id == response_id:
                return stored if stored.user_id == user_id else None
        async with self._database.session() as session:
            row = await session.get(StoredResponse, response_id)
        if row is None or row.user_id != user_id:
            return None
        return Stored(id=row.id, user_id=row.user_id, response=orjson.loads(row.response),
                      input_items=orjson.loads(row.input_items), history=orjson.loads(row.history))

    async def delete(self, response_id: str, user_id: int) -> bool:
        await self.flush()  # it may still be waiting to be written
        async with self._database.connect() as conn:
            result = await conn.execute(delete(StoredResponse).where(
                col(StoredResponse.id) == response_id, col(StoredResponse.user_id) == user_id))
            await conn.commit()
        return result.rowcount > 0

    async def prune(self, retention: timedelta) -> int:
        """Delete responses older than `retention`; how many went."""
        cutoff = utcnow() - retention
        async with self._database.connect() as conn:
            result = await conn.execute(delete(StoredResponse).where(col(StoredResponse.created_at) < cutoff))
            await conn.commit()
        return max(result.rowcount, 0)

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # database away: keep the buffer, try at the next wake-up
                log.warning('responses: cannot store %d responses yet: %s', len(self._pending),
                            str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
                await asyncio.sleep(1.0)
