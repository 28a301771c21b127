"""Audit retention: what the gateway stores about each request is kept for as long as the admin says, no longer.

Two periods, both run-time settings (core.admin.site_settings), 0 meaning "keep forever" (the default):

- content (`audit_content_retention_days`): what people wrote and got back. The prompt and response columns of
  `request_log` are blanked (the row stays); chat conversations not touched for that long are deleted with their
  messages, attachment rows and files on disk; stored Responses API answers older than that are deleted (they
  also have their own, usually shorter, RESPONSES_RETENTION_DAYS).
- metadata (`audit_metadata_retention_days`): the `request_log` rows themselves (who, when, model, tokens,
  status). Deleting a row takes whatever content it still had with it, so the shorter period wins.

The leader process runs `RetentionSweeper.sweep` periodically (core.jobs.background housekeeping). Every
statement touches at most `batch_size` rows by primary key, each batch is its own short transaction, and the
sweeper yields between batches: a sweep of millions of rows never holds a lock for long, and the audit writer's
inserts interleave with it (SQLite has one writer at a time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Executable, Select, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col

from core.chat import files
from core.config import Settings
from core.db import Database
from core.models import ChatAttachment, Conversation, RequestLog, RetentionMark, StoredResponse, utcnow

log = logging.getLogger('mindrouter.retention')

BATCH_SIZE = 1000  # rows per statement
CONVERSATION_BATCH = 100  # conversations per delete (each takes its messages and attachment rows by cascade)
PAUSE = 0.01  # seconds between batches: the audit writer and the console get the database in between
# Audit rows reach the database up to a flush interval late, and after an outage up to the buffer's age: the
# content sweep re-reads this far behind where it last stopped, so such a row is blanked all the same.
LATE_ROWS = timedelta(days=1)
CONTENT_MARK = 'request_log.content'


@dataclass(slots=True)
class RetentionReport:
    """What one sweep did."""

    contents_blanked: int = 0  # request_log rows whose prompt/response were cleared
    rows_deleted: int = 0  # request_log rows deleted
    conversations_deleted: int = 0
    files_deleted: int = 0
    responses_deleted: int = 0

    def __bool__(self) -> bool:
        return any((self.contents_blanked, self.rows_deleted, self.conversations_deleted, self.files_deleted,
                    self.responses_deleted))


def cutoff(days: int, now: datetime | None = None) -> datetime | None:
    """The moment before which data of a `days` period has expired; None for 0 (kept forever)."""
    return (now or utcnow()) - timedelta(days=days) if days > 0 else None


class RetentionSweeper:
    """Enforces the two periods, in bounded batches. One instance lives in each process; only the leader runs it.

    The content sweep walks `request_log` by (created_at, id) on the created_at index from where the previous
    sweep stopped (a mark kept in `retention_marks`, so a new leader goes on from there too): a table of blanked
    history is not read again at every sweep."""

    def __init__(self, database: Database, settings: Callable[[], Settings], *, batch_size: int = BATCH_SIZE,
                 pause: float = PAUSE) -> None:
        self._database = database
        self._settings = settings  # read at every sweep: an admin may change a period while the gateway runs
        self._batch = batch_size
        self._pause = pause

    async def sweep(self, now: datetime | None = None) -> RetentionReport:
        settings = self._settings()
        now = now or utcnow()
        report = RetentionReport()
        metadata = cutoff(settings.audit_metadata_retention_days, now)
        if metadata is not None:
            report.rows_deleted = await self._delete_requests(metadata)
        content = cutoff(settings.audit_content_retention_days, now)
        if content is not None:
            report.contents_blanked = await self._blank_requests(content)
            report.conversations_deleted, report.files_deleted = await self._delete_conversations(content, settings)
            report.responses_deleted = await self._delete_responses(content)
        if report:
            log.info('retention: %d audit rows deleted, %d blanked; %d conversations (%d files) and %d stored '
                     'responses deleted', report.rows_deleted, report.contents_blanked, report.conversations_deleted,
                     report.files_deleted, report.responses_deleted)
        return report

    async def _delete_requests(self, before: datetime) -> int:
        query = select(col(RequestLog.id)).where(col(RequestLog.created_at) < before) \
            .order_by(col(RequestLog.created_at)).limit(self._batch)
        return await self._in_batches(query, lambda ids: delete(RequestLog).where(col(RequestLog.id).in_(ids)))

    async def _blank_requests(self, before: datetime) -> int:
        """Blank prompt and response of rows created before `before`, walking the created_at index."""
        async with self._database.session() as session:
            mark = await session.get(RetentionMark, CONTENT_MARK)
            done = mark.done_until if mark is not None else None  # rows created before it have no content left
        start = done - LATE_ROWS if done is not None else None
        position: tuple[datetime, Any] | None = None
        blanked = 0
        while True:
            query = select(col(RequestLog.created_at), col(RequestLog.id)).where(col(RequestLog.created_at) < before)
            if position is not None:  # keyset paging: (created_at, id) after the last row seen
                at, last = position
                query = query.where(or_(col(RequestLog.created_at) > at,
                                        and_(col(RequestLog.created_at) == at, col(RequestLog.id) > last)))
            elif start is not None:
                query = query.where(col(RequestLog.created_at) >= start)
            query = query.order_by(col(RequestLog.created_at), col(RequestLog.id)).limit(self._batch)
            async with self._database.connect() as conn:
                rows = (await conn.execute(query)).all()
                if rows:
                    ids = [row[1] for row in rows]
                    result = await conn.execute(
                        update(RequestLog).where(col(RequestLog.id).in_(ids),
                                                 or_(col(RequestLog.prompt).is_not(None),
                                                     col(RequestLog.response).is_not(None)))
                        .values(prompt=None, response=None))
                    await conn.commit()
                    blanked += max(result.rowcount, 0)
            if len(rows) < self._batch:
                break
            position = (rows[-1][0], rows[-1][1])
            await asyncio.sleep(self._pause)
        if done is None or before > done:  # a longer period now: what was blanked stays blank, the mark stays
            async with self._database.session() as session:
                mark = await session.get(RetentionMark, CONTENT_MARK)
                if mark is None:
                    session.add(RetentionMark(name=CONTENT_MARK, done_until=before))
                else:
                    mark.done_until = before
                    session.add(mark)
                await session.commit()
        return blanked

    async def _delete_conversations(self, before: datetime, settings: Settings) -> tuple[int, int]:
        """Conversations nobody wrote in since `before`: rows (messages and attachments by cascade), then files."""
        deleted = removed = 0
        while True:
            async with self._database.connect() as conn:
                ids = list((await conn.execute(
                    select(col(Conversation.id)).where(col(Conversation.updated_at) < before)
                    .order_by(col(Conversation.updated_at)).limit(CONVERSATION_BATCH))).scalars())
                if not ids:
                    break
                paths = await attachment_paths(conn, col(ChatAttachment.conversation_id).in_(ids))
                await delete_chat_rows(conn, col(Conversation.id).in_(ids))
                await conn.commit()
            deleted += len(ids)
            removed += await files.delete_files(paths, settings=settings)
            if len(ids) < CONVERSATION_BATCH:
                break
            await asyncio.sleep(self._pause)
        return deleted, removed

    async def _delete_responses(self, before: datetime) -> int:
        query = select(col(StoredResponse.id)).where(col(StoredResponse.created_at) < before).limit(self._batch)
        return await self._in_batches(query, lambda ids: delete(StoredResponse).where(col(StoredResponse.id).in_(ids)))

    async def _in_batches(self, query: Select[Any], statement: Callable[[list[Any]], Executable]) -> int:
        return await in_batches(self._database, query, statement, batch=self._batch, pause=self._pause)


async def in_batches(database: Database, query: Select[Any], statement: Callable[[list[Any]], Executable],
                     *, batch: int, pause: float) -> int:
    """Repeat: pick up to `batch` ids with `query` (which must stop matching rows once `statement` has been applied
    to them, e.g. a delete), apply `statement` to them, commit. Each batch is one transaction; how many rows went.
    Two statements rather than DELETE ... LIMIT: SQLite has no LIMIT on DELETE, MariaDB none in IN-subqueries."""
    done = 0
    while True:
        async with database.connect() as conn:
            ids = list((await conn.execute(query)).scalars())
            if not ids:
                break
            result = await conn.execute(statement(ids))
            await conn.commit()
        done += max(result.rowcount, 0)
        if len(ids) < batch:
            break
        await asyncio.sleep(pause)
    return done


async def attachment_paths(conn: AsyncConnection, where: object) -> list[str]:
    """The storage paths of the attachment rows matching `where` (read before the rows go)."""
    return list((await conn.execute(select(col(ChatAttachment.storage_path)).where(where))).scalars())  # type: ignore[arg-type]


async def delete_chat_rows(conn: AsyncConnection, where: object) -> None:
    """Delete the conversations matching `where`, their attachment rows first. The messages go by ON DELETE
    CASCADE; attachments are deleted explicitly because their message_id is SET NULL on a message's deletion,
    and the order must not matter to either database."""
    conversation_ids = select(col(Conversation.id)).where(where)  # type: ignore[arg-type]
    await conn.execute(delete(ChatAttachment).where(col(ChatAttachment.conversation_id).in_(conversation_ids)))
    await conn.execute(delete(Conversation).where(where))  # type: ignore[arg-type]
