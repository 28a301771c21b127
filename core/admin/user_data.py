"""One user's stored content, on their request: exported as one zip, or erased everywhere it is kept.

"Stored content" is what the user wrote and got back, wherever the gateway keeps it:

- `request_log`: the prompt and response of each of their requests (the rows themselves, the metadata, stay:
  who, when, model, tokens, status are the institution's record of use, kept as retention says);
- `conversations` / `chat_messages` / `chat_attachments`: the console chat, with the files under
  ARTIFACT_STORAGE_PATH/chat/<user id>/;
- `stored_responses`: Responses API answers kept for `previous_response_id`.

Erasure works in bounded batches, each its own transaction (core.audit.retention.in_batches): a crash half-way
leaves whole batches done and the rest untouched, and running it again finishes the job. Writes still buffered in
memory (the audit writer, the response store) are flushed first by the caller's `flush`, so nothing of the
user's lands after the erasure. Both operations are written to the admin log.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete, or_, select, update
from sqlmodel import col
from sqlmodel import select as select_models

from core.accounts import service as accounts
from core.admin.cluster_actions import Actor
from core.audit import admin_log
from core.audit.retention import BATCH_SIZE, CONVERSATION_BATCH, PAUSE, attachment_paths, delete_chat_rows, in_batches
from core.chat import files
from core.config import Settings
from core.db import Database
from core.models import ChatAttachment, ChatMessage, Conversation, RequestLog, StoredResponse, utcnow

EXPORT = 'user.content.export'
ERASE = 'user.content.erase'
EXPORT_FORMAT = 1  # bumped when the archive's layout changes


@dataclass(slots=True)
class ErasureReport:
    user_id: int
    username: str
    requests_blanked: int = 0  # audit rows whose prompt/response were cleared (the rows stay)
    conversations_deleted: int = 0
    attachments_deleted: int = 0  # attachment rows (sent and never sent)
    files_deleted: int = 0
    responses_deleted: int = 0
    audio_deleted: int = 0  # kept audio of their speech requests (AUDIT_LOG_AUDIO)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def erase_content(database: Database, settings: Settings, *, username: str, actor: Actor,
                        flush: Callable[[], Awaitable[object]] | None = None, batch_size: int = BATCH_SIZE,
                        pause: float = PAUSE) -> ErasureReport:
    """Erase everything the user wrote or got back (see the module docstring); the counts, as the admin log has
    them. Other users' data is never touched: every statement is limited to this user's id."""
    if flush is not None:
        await flush()
    async with database.session() as session:
        user = await accounts.get_user(session, username=username)
    assert user.id is not None
    uid = user.id
    report = ErasureReport(user_id=uid, username=user.username)
    has_content = or_(col(RequestLog.prompt).is_not(None), col(RequestLog.response).is_not(None))
    report.requests_blanked = await in_batches(
        database, select(col(RequestLog.id)).where(col(RequestLog.user_id) == uid, has_content).limit(batch_size),
        lambda ids: update(RequestLog).where(col(RequestLog.id).in_(ids)).values(prompt=None, response=None),
        batch=batch_size, pause=pause)
    report.audio_deleted = await _erase_audio(database, settings, uid, batch_size=batch_size, pause=pause)
    while True:  # conversations, a batch at a time: their messages go by cascade, attachment rows with them
        async with database.connect() as conn:
            ids = list((await conn.execute(select(col(Conversation.id)).where(col(Conversation.user_id) == uid)
                                           .limit(CONVERSATION_BATCH))).scalars())
            if not ids:
                break
            paths = await attachment_paths(conn, col(ChatAttachment.conversation_id).in_(ids))
            await delete_chat_rows(conn, col(Conversation.id).in_(ids))
            await conn.commit()
        report.conversations_deleted += len(ids)
        report.attachments_deleted += len(paths)
        report.files_deleted += await files.delete_files(paths, settings=settings)
        await asyncio.sleep(pause)
    async with database.connect() as conn:  # uploads never sent with a message
        paths = await attachment_paths(conn, col(ChatAttachment.user_id) == uid)
        await conn.execute(delete(ChatAttachment).where(col(ChatAttachment.user_id) == uid))
        await conn.commit()
    report.attachments_deleted += len(paths)
    report.files_deleted += await files.delete_files(paths, settings=settings)
    await files.delete_user_files(uid, settings=settings)  # anything left in their folder (a crash mid-upload)
    report.responses_deleted = await in_batches(
        database, select(col(StoredResponse.id)).where(col(StoredResponse.user_id) == uid).limit(batch_size),
        lambda ids: delete(StoredResponse).where(col(StoredResponse.id).in_(ids)), batch=batch_size, pause=pause)
    async with database.session() as session:
        await admin_log.record(session, actor_id=actor.id, actor=actor.name, action=ERASE, target=user.username,
                               after=report.as_dict(), via=actor.via)
    return report


async def _erase_audio(database: Database, settings: Settings, user_id: int, *, batch_size: int,
                       pause: float) -> int:
    """The audio kept with their speech requests: the files, then the rows' paths, a batch at a time."""
    root = settings.resolved_artifact_path.resolve()
    deleted = 0
    while True:
        async with database.connect() as conn:
            rows = (await conn.execute(select(col(RequestLog.id), col(RequestLog.audio_path)).where(
                col(RequestLog.user_id) == user_id, col(RequestLog.audio_path).is_not(None)).limit(batch_size))).all()
            if not rows:
                return deleted
            deleted += await asyncio.to_thread(_unlink_under, root, [str(path) for _, path in rows])
            await conn.execute(update(RequestLog).where(col(RequestLog.id).in_([i for i, _ in rows]))
                               .values(audio_path=None))
            await conn.commit()
        await asyncio.sleep(pause)


def _unlink_under(root: Path, relative: list[str]) -> int:
    removed = 0
    for name in relative:
        target = (root / name).resolve()
        if target.is_relative_to(root) and target.is_file():  # a path in a row never reaches outside the folder
            target.unlink()
            removed += 1
    return removed


async def export_content(database: Database, settings: Settings, *, username: str, actor: Actor,
                         flush: Callable[[], Awaitable[object]] | None = None) -> Path:
    """A zip of everything stored about the user, in a temporary file the caller sends and then deletes:

    manifest.json       who, when, by whom, and how many of each
    requests.jsonl      their audit rows, one JSON object a line (content included where it is still kept)
    conversations.jsonl one conversation a line, with its messages and its attachments' metadata
    responses.jsonl     stored Responses API answers
    files/...           the attachment files as uploaded (and their extracted text), by their storage path
    audio/...           the audio kept with their speech requests (AUDIT_LOG_AUDIO), named as in `audio_path`
    """
    if flush is not None:
        await flush()
    async with database.session() as session:
        user = await accounts.get_user(session, username=username)
    assert user.id is not None
    descriptor, name = tempfile.mkstemp(prefix=f'mindrouter-export-{user.username}-', suffix='.zip')
    path = Path(name)
    archive = await asyncio.to_thread(_open_zip, descriptor)
    counts: dict[str, int] = {}
    try:
        counts['requests'] = await _write_jsonl(archive, 'requests.jsonl', _requests(database, user.id))
        counts['conversations'] = await _write_jsonl(archive, 'conversations.jsonl', _conversations(database, user.id))
        counts['responses'] = await _write_jsonl(archive, 'responses.jsonl', _responses(database, user.id))
        counts['files'] = await asyncio.to_thread(_add_files, archive, settings, user.id)
        counts['audio'] = await _add_audio(archive, database, settings, user.id)
        manifest = {'format': EXPORT_FORMAT, 'user': {'id': user.id, 'username': user.username, 'email': user.email,
                                                      'full_name': user.full_name, 'created_at': user.created_at},
                    'exported_at': utcnow(), 'exported_by': actor.name, 'counts': counts}
        await asyncio.to_thread(archive.writestr, 'manifest.json', _dumps(manifest, indent=2))
        await asyncio.to_thread(_close_zip, archive)
    except BaseException:
        await asyncio.to_thread(_close_zip, archive)
        path.unlink(missing_ok=True)  # noqa: ASYNC240 (one unlink, on failure)
        raise
    async with database.session() as session:
        await admin_log.record(session, actor_id=actor.id, actor=actor.name, action=EXPORT, target=user.username,
                               after=counts, via=actor.via)
    return path


# -------------------------------------------------------------------------------------------------- export parts


async def _add_audio(archive: zipfile.ZipFile, database: Database, settings: Settings, user_id: int) -> int:
    root = settings.resolved_artifact_path.resolve()
    async with database.connect() as conn:
        paths = list((await conn.execute(select(col(RequestLog.audio_path)).where(
            col(RequestLog.user_id) == user_id, col(RequestLog.audio_path).is_not(None)))).scalars())

    def add() -> int:
        added = 0
        for name in paths:
            source = (root / str(name)).resolve()
            if source.is_relative_to(root) and source.is_file():
                archive.write(source, str(name))
                added += 1
        return added

    return await asyncio.to_thread(add)


def _open_zip(descriptor: int) -> zipfile.ZipFile:
    return zipfile.ZipFile(open(descriptor, 'wb'), 'w', compression=zipfile.ZIP_DEFLATED)


def _close_zip(archive: zipfile.ZipFile) -> None:
    handle = archive.fp
    archive.close()  # writes the central directory (a second close does nothing)
    if handle is not None:
        handle.close()

async def _write_jsonl(archive: zipfile.ZipFile, name: str, batches: Any) -> int:
    """Write each batch of JSON-ready dicts as lines of one archive member (the writing off the event loop)."""
    written = 0
    with archive.open(name, 'w', force_zip64=True) as member:
        async for batch in batches:
            await asyncio.to_thread(_write_lines, member, batch)
            written += len(batch)
    return written


def _write_lines(member: IO[bytes], rows: list[dict[str, Any]]) -> None:
    member.write(b''.join(_dumps(row).encode() + b'\n' for row in rows))


async def _requests(database: Database, user_id: int) -> Any:
    after = 0
    while True:  # keyset by id: a batch in memory at a time
        async with database.session() as session:
            rows = list(await session.exec(select_models(RequestLog).where(
                col(RequestLog.user_id) == user_id, col(RequestLog.id) > after)
                .order_by(col(RequestLog.id)).limit(BATCH_SIZE)))
        if not rows:
            return
        yield [row.model_dump() for row in rows]
        after = rows[-1].id or 0


async def _conversations(database: Database, user_id: int) -> Any:
    after = 0
    while True:
        async with database.session() as session:
            chats = list(await session.exec(select_models(Conversation).where(
                col(Conversation.user_id) == user_id, col(Conversation.id) > after)
                .order_by(col(Conversation.id)).limit(CONVERSATION_BATCH)))
            if not chats:
                return
            ids = [chat.id for chat in chats]
            messages = list(await session.exec(select_models(ChatMessage).where(
                col(ChatMessage.conversation_id).in_(ids)).order_by(col(ChatMessage.id))))
            attachments = list(await session.exec(select_models(ChatAttachment).where(
                col(ChatAttachment.conversation_id).in_(ids)).order_by(col(ChatAttachment.id))))
        batch = []
        for chat in chats:
            data = chat.model_dump()
            data['messages'] = [m.model_dump() for m in messages if m.conversation_id == chat.id]
            data['attachments'] = [a.model_dump() for a in attachments if a.conversation_id == chat.id]
            batch.append(data)
        yield batch
        after = chats[-1].id or 0


async def _responses(database: Database, user_id: int) -> Any:
    after = ''
    while True:
        async with database.session() as session:
            rows = list(await session.exec(select_models(StoredResponse).where(
                col(StoredResponse.user_id) == user_id, col(StoredResponse.id) > after)
                .order_by(col(StoredResponse.id)).limit(100)))
        if not rows:
            return
        batch = []
        for row in rows:
            data = row.model_dump()
            for name in ('response', 'input_items', 'history'):  # stored as JSON text: exported as JSON
                data[name] = json.loads(data[name])
            batch.append(data)
        yield batch
        after = rows[-1].id


def _add_files(archive: zipfile.ZipFile, settings: Settings, user_id: int) -> int:
    """Every file in the user's chat folder, under files/ with its storage path (chat/<id>/...)."""
    root = settings.resolved_artifact_path
    folder = root / files.CHAT_FOLDER / str(int(user_id))
    added = 0
    if not folder.is_dir():
        return 0
    for path in sorted(folder.rglob('*')):
        if path.is_file() and not path.is_symlink():
            archive.write(path, f'files/{path.relative_to(root).as_posix()}')
            added += 1
    return added


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, indent=indent)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f'{type(value).__name__} is not JSON serialisable')

