"""Audit retention and per-user erasure on SQLite and MariaDB: content expires before metadata, each in small
batches; erasure leaves nothing of the user's content anywhere and touches nobody else's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlmodel import col, select

from app.lifespan import RETENTION_SETTINGS as RETENTION
from core.accounts import service as accounts
from core.admin import site_settings, user_data
from core.admin.cluster_actions import Actor
from core.audit.retention import RetentionSweeper
from core.audit.writer import AuditRecord, AuditWriter
from core.chat import conversations as chat
from core.chat import files
from core.config import Settings, get_settings
from core.db import Database
from core.errors import UserNotFound
from core.models import AdminAction, ChatAttachment, ChatMessage, Conversation, RequestLog, StoredResponse, utcnow


@dataclass
class Stored:
    """What one user has in the database, built by `store_user_data`."""

    user_id: int
    conversation_id: int
    file: Path


async def store_user_data(database: Database, settings: Settings, username: str, *, age: timedelta = timedelta(),
                          requests: int = 3) -> Stored:
    """A user with `requests` audit rows (prompt and answer), a conversation with a message and an attached file,
    and a stored response, all `age` old."""
    created = utcnow() - age
    async with database.session() as session:
        user = await accounts.create_user(session, username=username, role='student')
        assert user.id is not None
        upload = await files.save_upload(session, user_id=user.id, filename='notes.txt', data=b'my secret notes',
                                         settings=settings)
        conversation = await chat.create_conversation(session, user_id=user.id, title=f'{username} chat')
        assert conversation.id is not None and upload.id is not None
        message = await chat.add_message(session, user_id=user.id, conversation_id=conversation.id, role='user',
                                         content=f'{username} asks something private')
        await files.attach(session, user_id=user.id, attachment_ids=[upload.id], conversation_id=conversation.id,
                           message_id=message.id or 0)
        conversation.updated_at = created
        session.add(conversation)
        session.add(StoredResponse(id=f'resp_{username}', user_id=user.id, model='m', response='{"output": []}',
                                   input_items='[]', history='[]', created_at=created))
        await session.commit()
    async with database.connect() as conn:
        await conn.execute(insert(RequestLog), [
            {'request_id': f'{username}-{n}', 'user_id': user.id, 'endpoint': '/v1/chat/completions',
             'model': 'llama3.2:latest', 'status': 'completed', 'http_status': 200, 'prompt_tokens': 12,
             'completion_tokens': 34, 'prompt': f'{username} prompt {n}', 'response': f'{username} answer {n}',
             'created_at': _naive(created - timedelta(seconds=n))} for n in range(requests)])
        await conn.commit()
    return Stored(user_id=user.id, conversation_id=conversation.id,
                  file=settings.resolved_artifact_path / upload.storage_path)


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)  # a bulk insert bypasses the model's UtcDateTime


def settings_with(content: int, metadata: int) -> Settings:
    settings = get_settings().model_copy()
    settings.audit_content_retention_days = content
    settings.audit_metadata_retention_days = metadata
    return settings


async def rows_of(database: Database, user_id: int) -> list[RequestLog]:
    async with database.session() as session:
        return list(await session.exec(select(RequestLog).where(col(RequestLog.user_id) == user_id)
                                       .order_by(col(RequestLog.request_id))))


async def chat_of(database: Database, user_id: int) -> tuple[int, int, int, int]:
    """The user's conversations, messages, attachments and stored responses, counted."""
    async with database.session() as session:
        conversations = list(await session.exec(select(Conversation.id).where(Conversation.user_id == user_id)))
        messages = list(await session.exec(select(ChatMessage.id).where(
            col(ChatMessage.conversation_id).in_(conversations or [-1]))))
        attachments = list(await session.exec(select(ChatAttachment.id).where(ChatAttachment.user_id == user_id)))
        responses = list(await session.exec(select(StoredResponse.id).where(StoredResponse.user_id == user_id)))
    return len(conversations), len(messages), len(attachments), len(responses)


async def test_content_expires_before_metadata_in_small_batches(database: Database) -> None:
    settings = get_settings()
    ancient = await store_user_data(database, settings, 'ancient', age=timedelta(days=100), requests=5)
    old = await store_user_data(database, settings, 'old', age=timedelta(days=40), requests=5)
    recent = await store_user_data(database, settings, 'recent', age=timedelta(days=2))
    policy = settings_with(content=30, metadata=90)
    sweeper = RetentionSweeper(database, lambda: policy, batch_size=2, pause=0)  # 2: many batches

    report = await sweeper.sweep()

    assert await rows_of(database, ancient.user_id) == []  # past the metadata period: the rows went
    old_rows = await rows_of(database, old.user_id)
    assert len(old_rows) == 5  # past the content period only: the rows stay, blank
    assert all(r.prompt is None and r.response is None for r in old_rows)
    assert all((r.model, r.prompt_tokens, r.completion_tokens, r.status) == ('llama3.2:latest', 12, 34, 'completed')
               for r in old_rows)
    assert await chat_of(database, old.user_id) == (0, 0, 0, 0) and not old.file.exists()
    recent_rows = await rows_of(database, recent.user_id)
    assert [r.prompt for r in recent_rows] == [f'recent prompt {n}' for n in range(3)]
    assert await chat_of(database, recent.user_id) == (1, 1, 1, 1) and recent.file.exists()
    assert (report.rows_deleted, report.contents_blanked, report.conversations_deleted, report.responses_deleted) \
        == (5, 5, 2, 2)
    assert report.files_deleted >= 2  # each upload and its extracted text

    # The next sweep starts where this one stopped and finds nothing left to do.
    assert not await sweeper.sweep()


async def test_zero_keeps_everything_forever(database: Database) -> None:
    stored = await store_user_data(database, get_settings(), 'keeper', age=timedelta(days=3650))
    report = await RetentionSweeper(database, lambda: settings_with(0, 0)).sweep()
    assert not report
    assert all(r.prompt for r in await rows_of(database, stored.user_id))
    assert await chat_of(database, stored.user_id) == (1, 1, 1, 1) and stored.file.exists()


async def test_a_period_changed_at_run_time_applies_at_the_next_sweep(database: Database) -> None:
    stored = await store_user_data(database, get_settings(), 'mover', age=timedelta(days=10))
    policy = settings_with(content=30, metadata=0)
    sweeper = RetentionSweeper(database, lambda: policy, pause=0)
    assert not await sweeper.sweep()
    policy.audit_content_retention_days = 7  # the admin shortens it
    assert (await sweeper.sweep()).contents_blanked == 3
    assert all(r.prompt is None for r in await rows_of(database, stored.user_id))


async def test_erasure_removes_all_of_a_users_content_and_nothing_of_anyone_elses(database: Database) -> None:
    settings = get_settings()
    alice = await store_user_data(database, settings, 'alice', requests=7)
    bob = await store_user_data(database, settings, 'bob', requests=4)
    bob_before = [(r.request_id, r.prompt, r.response) for r in await rows_of(database, bob.user_id)]
    async with database.session() as session:  # an upload alice never sent
        await files.save_upload(session, user_id=alice.user_id, filename='draft.txt', data=b'draft', settings=settings)
    flushed: list[bool] = []

    async def flush() -> None:
        flushed.append(True)

    report = await user_data.erase_content(database, settings, username='alice', flush=flush, batch_size=3, pause=0,
                                           actor=Actor(id=None, name='ops', via='api'))

    assert flushed == [True]  # buffered writes go to the database before anything is erased
    assert (report.requests_blanked, report.conversations_deleted, report.attachments_deleted,
            report.responses_deleted) == (7, 1, 2, 1)
    alice_rows = await rows_of(database, alice.user_id)
    assert len(alice_rows) == 7 and all(r.prompt is None and r.response is None for r in alice_rows)
    assert await chat_of(database, alice.user_id) == (0, 0, 0, 0)
    assert not (settings.resolved_artifact_path / files.CHAT_FOLDER / str(alice.user_id)).exists()
    assert [(r.request_id, r.prompt, r.response) for r in await rows_of(database, bob.user_id)] == bob_before
    assert await chat_of(database, bob.user_id) == (1, 1, 1, 1) and bob.file.exists()
    async with database.session() as session:
        [entry] = list(await session.exec(select(AdminAction).where(AdminAction.action == user_data.ERASE)))
    assert (entry.actor, entry.target, entry.via) == ('ops', 'alice', 'api')
    assert entry.after is not None and entry.after['requests_blanked'] == 7


async def test_erasing_an_unknown_user_is_refused(database: Database) -> None:
    with pytest.raises(UserNotFound):
        await user_data.erase_content(database, get_settings(), username='nobody',
                                      actor=Actor(id=None, name='ops', via='api'))


async def test_the_leader_sees_a_period_set_in_another_processs_console(database: Database) -> None:
    """Each process has its own Settings; the sweep's process refreshes the periods from the database."""
    console, leader = Settings(), Settings()
    async with database.session() as session:
        await site_settings.change(session, console, name='audit_content_retention_days', value=45, actor_id=None,
                                   actor='ops', via='console')
    assert leader.audit_content_retention_days == 0
    await site_settings.refresh(leader, RETENTION, database)
    assert (leader.audit_content_retention_days, leader.audit_metadata_retention_days) == (45, 0)

    async with database.session() as session:
        await site_settings.reset(session, console, name='audit_content_retention_days', actor_id=None, actor='ops',
                                  via='console')
    await site_settings.refresh(leader, RETENTION, database)
    assert leader.audit_content_retention_days == 0  # the environment's value again


async def test_a_row_delivered_late_is_blanked_by_the_next_sweep(database: Database) -> None:
    """The audit writer may deliver a row after the sweep passed its time (buffered through an outage)."""
    stored = await store_user_data(database, get_settings(), 'early', age=timedelta(days=31), requests=1)
    sweeper = RetentionSweeper(database, lambda: settings_with(content=30, metadata=0), pause=0)
    assert (await sweeper.sweep()).contents_blanked == 1
    async with database.session() as session:
        session.add(RequestLog(request_id='late', user_id=stored.user_id, endpoint='/api/chat', status='completed',
                               prompt='late prompt', response='late answer',
                               created_at=utcnow() - timedelta(days=30, hours=2)))
        await session.commit()
    assert (await sweeper.sweep()).contents_blanked == 1
    assert all(r.prompt is None for r in await rows_of(database, stored.user_id))


async def test_the_audit_writer_keeps_writing_while_a_long_sweep_runs(database: Database) -> None:
    """Bounded batches with a pause between them: the writer's inserts land between the sweep's batches, they do
    not wait for the whole sweep."""
    old = _naive(utcnow() - timedelta(days=100))
    async with database.connect() as conn:
        await conn.execute(insert(RequestLog), [
            {'request_id': f'old-{n}', 'endpoint': '/api/chat', 'status': 'completed', 'http_status': 200,
             'prompt': 'p', 'created_at': old} for n in range(3000)])
        await conn.commit()
    writer = AuditWriter(database, batch_size=10)
    sweeper = RetentionSweeper(database, lambda: settings_with(content=0, metadata=30), batch_size=100, pause=0.01)
    sweep = asyncio.create_task(sweeper.sweep())
    written_during_sweep = 0
    n = 0
    while not sweep.done():
        writer.submit(AuditRecord(request_id=f'new-{n}', endpoint='/api/chat', status='completed', http_status=200))
        n += 1
        assert await writer.flush()
        if not sweep.done():
            written_during_sweep += 1
    assert (await sweep).rows_deleted == 3000
    assert written_during_sweep >= 5  # the sweep took 30 batches; the writer was not held back until its end
    async with database.session() as session:
        assert len(list(await session.exec(select(RequestLog.id)))) == n


async def test_a_new_leader_goes_on_from_the_mark_the_last_sweep_left(database: Database) -> None:
    """The content sweep's progress is kept in the database: another process's sweeper starts at the mark (less
    the day allowed for late rows), not at the beginning of a history it would only find blank."""
    stored = await store_user_data(database, get_settings(), 'history', age=timedelta(days=31), requests=1)
    policy = settings_with(content=30, metadata=0)
    assert (await RetentionSweeper(database, lambda: policy, pause=0).sweep()).contents_blanked == 1
    async with database.session() as session:  # far behind the mark: the next leader does not look there
        session.add(RequestLog(request_id='ancient', user_id=stored.user_id, endpoint='/api/chat',
                               status='completed', prompt='kept', created_at=utcnow() - timedelta(days=60)))
        await session.commit()
    assert not await RetentionSweeper(database, lambda: policy, pause=0).sweep()
    assert [r.prompt for r in await rows_of(database, stored.user_id) if r.request_id == 'ancient'] == ['kept']


async def test_a_row_written_on_a_whole_second_is_found_by_its_time(database: Database) -> None:
    """The writer stores times as the queries bind them (on SQLite, text compared as text)."""
    moment = utcnow().replace(microsecond=0) - timedelta(days=40)
    writer = AuditWriter(database)
    for n in range(3):
        writer.submit(AuditRecord(request_id=f'whole-{n}', endpoint='/api/chat', status='completed', http_status=200,
                                  prompt='p', created_at=moment))
    assert await writer.flush()
    async with database.session() as session:
        same = list(await session.exec(select(RequestLog.request_id).where(RequestLog.created_at == moment)))
    assert sorted(same) == ['whole-0', 'whole-1', 'whole-2']
    sweeper = RetentionSweeper(database, lambda: settings_with(content=30, metadata=0), batch_size=1, pause=0)
    assert (await sweeper.sweep()).contents_blanked == 3  # keyset paging through rows of one timestamp
