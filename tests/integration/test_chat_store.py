"""The chat's storage (core.chat) on SQLite and MariaDB: conversations and messages are each user's own, the
context for the next request carries the files sent with each message, and deleting a conversation (or the
user) removes its rows and its files on disk."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from core.accounts import service as accounts
from core.chat import AttachmentNotFound, ConversationNotFound, files
from core.chat import conversations as chat
from core.config import Settings, get_settings
from core.db import Database
from core.errors import InvalidRequest
from core.models import ChatAttachment, ChatMessage, Conversation, utcnow
from tests.unit.test_chat_files import minimal_pdf, png


async def make_users(database: Database) -> tuple[int, int]:
    async with database.session() as session:
        alice = await accounts.create_user(session, username='alice', role='student')
        bob = await accounts.create_user(session, username='bob', role='faculty')
    assert alice.id is not None and bob.id is not None
    return alice.id, bob.id


def on_disk(settings: Settings, attachment: ChatAttachment) -> Path:
    return settings.resolved_artifact_path / attachment.storage_path


async def test_conversations_are_listed_newest_first_searched_and_paged_per_user(database: Database) -> None:
    alice, bob = await make_users(database)
    async with database.session() as session:
        made = [await chat.create_conversation(session, user_id=alice, title=title, model='llama3')
                for title in ('Trip to Rome', 'Python help', 'ROME history 50%', 'Groceries')]
        await chat.create_conversation(session, user_id=bob, title='Rome for Bob')
        for minutes, conversation in enumerate(reversed(made), 1):  # made a minute apart (MariaDB keeps seconds)
            conversation.updated_at = utcnow() - timedelta(minutes=minutes)
            session.add(conversation)
        await session.commit()
        # a new message makes a conversation the most recent
        await chat.add_message(session, user_id=alice, conversation_id=made[0].id or 0, role='user', content='hi')

        rows, total = await chat.list_conversations(session, user_id=alice)
        assert total == 4 and rows[0].title == 'Trip to Rome'
        assert [r.title for r in rows] == ['Trip to Rome', 'Groceries', 'ROME history 50%', 'Python help']
        rome, rome_total = await chat.list_conversations(session, user_id=alice, q='  rome ')
        assert rome_total == 2 and {r.title for r in rome} == {'Trip to Rome', 'ROME history 50%'}
        percent, _ = await chat.list_conversations(session, user_id=alice, q='50%')
        assert [r.title for r in percent] == ['ROME history 50%']  # % is searched for, not a wildcard
        assert (await chat.list_conversations(session, user_id=alice, q='_'))[1] == 0
        page, page_total = await chat.list_conversations(session, user_id=alice, offset=1, limit=2)
        assert page_total == 4 and [r.title for r in page] == ['Groceries', 'ROME history 50%']
        assert (await chat.list_conversations(session, user_id=bob))[1] == 1


async def test_settings_title_and_validation(database: Database) -> None:
    alice, _ = await make_users(database)
    async with database.session() as session:
        conversation = await chat.create_conversation(session, user_id=alice)
        assert conversation.title == chat.DEFAULT_TITLE and conversation.web_search is False
        cid = conversation.id or 0
        updated = await chat.update_settings(session, user_id=alice, conversation_id=cid, model='qwen3',
                                             system_prompt='Answer briefly.', temperature=0.7, think=True,
                                             web_search=True)
        assert (updated.model, updated.system_prompt, updated.temperature, updated.think, updated.web_search) == \
            ('qwen3', 'Answer briefly.', 0.7, True, True)
        # UNSET leaves a field alone, None clears it
        updated = await chat.update_settings(session, user_id=alice, conversation_id=cid, temperature=None)
        assert (updated.model, updated.temperature, updated.think) == ('qwen3', None, True)
        with pytest.raises(InvalidRequest, match='temperature must be between 0 and 2'):
            await chat.update_settings(session, user_id=alice, conversation_id=cid, temperature=2.5)
        renamed = await chat.rename_conversation(session, user_id=alice, conversation_id=cid, title='  My   plan ')
        assert renamed.title == 'My plan'
        with pytest.raises(InvalidRequest, match='at most 200'):
            await chat.rename_conversation(session, user_id=alice, conversation_id=cid, title='x' * 201)
    async with database.session() as session:
        stored = await chat.get_conversation(session, user_id=alice, conversation_id=cid)
        assert (stored.title, stored.model, stored.temperature, stored.web_search) == ('My plan', 'qwen3', None, True)


def test_title_from_the_first_message() -> None:
    assert chat.title_from('\n\n# How do I   sort a list?\nin python') == 'How do I sort a list?'
    assert chat.title_from('   ') == chat.DEFAULT_TITLE
    long = chat.title_from('Explain the difference between processes and threads in operating systems please')
    assert long == 'Explain the difference between processes and threads in…' and len(long) <= 61


async def test_another_users_conversation_is_not_found_everywhere(database: Database) -> None:
    alice, bob = await make_users(database)
    settings = get_settings()
    async with database.session() as session:
        conversation = await chat.create_conversation(session, user_id=alice, title='secret')
        cid = conversation.id or 0
        message = await chat.add_message(session, user_id=alice, conversation_id=cid, role='user', content='hi')
        upload = await files.save_upload(session, user_id=alice, filename='a.txt', data=b'private', settings=settings)
        bob_upload = await files.save_upload(session, user_id=bob, filename='b.txt', data=b'bob', settings=settings)
        bob_chat = await chat.create_conversation(session, user_id=bob)
        bob_message = await chat.add_message(session, user_id=bob, conversation_id=bob_chat.id or 0, role='user')

        calls = [
            chat.get_conversation(session, user_id=bob, conversation_id=cid),
            chat.rename_conversation(session, user_id=bob, conversation_id=cid, title='mine'),
            chat.update_settings(session, user_id=bob, conversation_id=cid, model='x'),
            chat.delete_conversation(session, user_id=bob, conversation_id=cid),
            chat.add_message(session, user_id=bob, conversation_id=cid, role='user', content='x'),
            chat.update_message(session, user_id=bob, message_id=message.id or 0, content='changed'),
            chat.list_messages(session, user_id=bob, conversation_id=cid),
            chat.context_for(session, user_id=bob, conversation_id=cid),
            files.list_attachments(session, user_id=bob, conversation_id=cid),
            files.attach(session, user_id=bob, attachment_ids=[bob_upload.id or 0], conversation_id=cid,
                         message_id=message.id or 0),
            chat.get_conversation(session, user_id=alice, conversation_id=cid + 1000),  # none at all: the same
        ]
        for call in calls:
            with pytest.raises(ConversationNotFound) as missing:
                await call
            assert missing.value.status_code == 404 and 'secret' not in missing.value.message
        # alice's upload cannot be taken into bob's conversation, read or deleted by bob
        with pytest.raises(AttachmentNotFound):
            await files.attach(session, user_id=bob, attachment_ids=[upload.id or 0],
                               conversation_id=bob_chat.id or 0, message_id=bob_message.id or 0)
        with pytest.raises(AttachmentNotFound):
            await files.get_attachment(session, user_id=bob, attachment_id=upload.id or 0)
        with pytest.raises(AttachmentNotFound):
            await files.delete_attachment(session, user_id=bob, attachment_id=upload.id or 0)
        assert await files.link_request(session, user_id=bob, attachment_ids=[upload.id or 0], request_id='r') == 0
        assert [a.id for a in await files.list_unsent(session, user_id=bob)] == [bob_upload.id]
    async with database.session() as session:
        messages = await chat.list_messages(session, user_id=alice, conversation_id=cid)
        assert [(m.content, m.role) for m in messages] == [('hi', 'user')]
        assert (await files.get_attachment(session, user_id=alice, attachment_id=upload.id or 0)).request_id is None


async def test_messages_keep_their_order_and_stream_in(database: Database) -> None:
    alice, _ = await make_users(database)
    async with database.session() as session:
        cid = (await chat.create_conversation(session, user_id=alice)).id or 0
        first = await chat.add_message(session, user_id=alice, conversation_id=cid, role='user', content='one')
        answer = await chat.add_message(session, user_id=alice, conversation_id=cid, role='assistant',
                                        model='llama3')
        for so_far in ('Th', 'The ans', 'The answer [1]'):
            await chat.update_message(session, user_id=alice, message_id=answer.id or 0, content=so_far)
        await chat.update_message(session, user_id=alice, message_id=answer.id or 0, reasoning='thinking...',
                                  prompt_tokens=12, completion_tokens=5, request_id='req-abc', stopped=True,
                                  citations=[{'n': 1, 'title': 'Example', 'url': 'https://example.org'}])
        await chat.add_message(session, user_id=alice, conversation_id=cid, role='user', content='two')
        failed = await chat.add_message(session, user_id=alice, conversation_id=cid, role='assistant')
        await chat.update_message(session, user_id=alice, message_id=failed.id or 0, error='backend unavailable')
        with pytest.raises(InvalidRequest, match='role'):
            await chat.add_message(session, user_id=alice, conversation_id=cid, role='tool', content='x')
    async with database.session() as session:
        messages = await chat.list_messages(session, user_id=alice, conversation_id=cid)
        assert [m.content for m in messages] == ['one', 'The answer [1]', 'two', '']
        done = messages[1]
        assert (done.model, done.reasoning, done.prompt_tokens, done.completion_tokens, done.request_id,
                done.stopped, done.citations) == ('llama3', 'thinking...', 12, 5, 'req-abc', True,
                                                  [{'n': 1, 'title': 'Example', 'url': 'https://example.org'}])
        assert messages[3].error == 'backend unavailable' and messages[0].id == first.id
        conversation = await chat.get_conversation(session, user_id=alice, conversation_id=cid)
        assert await chat.context_messages(conversation, messages, []) == [
            {'role': 'user', 'content': 'one'},
            {'role': 'assistant', 'content': 'The answer [1]'},  # no reasoning, no citations sent back
            {'role': 'user', 'content': 'two'},  # the failed answer is left out
        ]


async def test_context_carries_a_text_file_and_an_image_with_the_message_they_were_sent_with(
        database: Database) -> None:
    alice, _ = await make_users(database)
    settings = get_settings()
    image = png(2, 2)
    async with database.session() as session:
        conversation = await chat.create_conversation(session, user_id=alice, system_prompt='You are terse.')
        cid = conversation.id or 0
        report = await files.save_upload(session, user_id=alice, filename='../report.pdf',
                                         data=minimal_pdf('Revenue grew 12 percent'), settings=settings)
        picture = await files.save_upload(session, user_id=alice, filename='chart.png', data=image,
                                          settings=settings)
        code = await files.save_upload(session, user_id=alice, filename='main.py', data=b'print(1)\n',
                                       settings=settings)
        assert (report.kind, report.media_type, report.filename) == ('text', 'application/pdf', 'report.pdf')
        assert (picture.kind, picture.media_type, picture.extracted_chars) == ('image', 'image/png', 0)
        assert report.storage_path.startswith(f'chat/{alice}/') and 'report' not in report.storage_path
        assert on_disk(settings, picture).read_bytes() == image
        assert [a.id for a in await files.list_unsent(session, user_id=alice)] == [report.id, picture.id, code.id]

        question = await chat.add_message(session, user_id=alice, conversation_id=cid, role='user',
                                          content='Summarise these.')
        sent = await files.attach(session, user_id=alice, attachment_ids=[report.id or 0, picture.id or 0],
                                  conversation_id=cid, message_id=question.id or 0)
        assert [a.id for a in sent] == [report.id, picture.id]
        await chat.add_message(session, user_id=alice, conversation_id=cid, role='assistant', content='Up 12%.')
        follow_up = await chat.add_message(session, user_id=alice, conversation_id=cid, role='user',
                                           content='And this code?')
        await files.attach(session, user_id=alice, attachment_ids=[code.id or 0], conversation_id=cid,
                           message_id=follow_up.id or 0)
        assert await files.link_request(session, user_id=alice, attachment_ids=[report.id or 0, picture.id or 0],
                                        request_id='req-123') == 2
        with pytest.raises(InvalidRequest, match='already sent with another message'):
            await files.attach(session, user_id=alice, attachment_ids=[code.id or 0], conversation_id=cid,
                               message_id=question.id or 0)
        assert await files.list_unsent(session, user_id=alice) == []

    async with database.session() as session:
        context = await chat.context_for(session, user_id=alice, conversation_id=cid, settings=settings)
        stored = await files.list_attachments(session, user_id=alice, conversation_id=cid)
    assert {(a.id, a.message_id, a.request_id) for a in stored} == {
        (report.id, question.id, 'req-123'), (picture.id, question.id, 'req-123'), (code.id, follow_up.id, None)}
    assert context[0] == {'role': 'system', 'content': 'You are terse.'}
    first = context[1]
    assert first['role'] == 'user' and isinstance(first['content'], list)
    text_part, image_part = first['content']
    assert text_part['type'] == 'text'
    assert text_part['text'].startswith('[file: report.pdf]\n')
    assert 'Revenue grew 12 percent' in text_part['text']
    assert text_part['text'].endswith('\n[end of file]\n\nSummarise these.')
    assert image_part == {'type': 'image_url',
                          'image_url': {'url': 'data:image/png;base64,' + base64.b64encode(image).decode()}}
    assert context[2] == {'role': 'assistant', 'content': 'Up 12%.'}
    assert context[3] == {'role': 'user', 'content': '[file: main.py]\nprint(1)\n\n[end of file]\n\nAnd this code?'}

    # a file gone from disk is named, not a crash
    on_disk(settings, picture).unlink()
    async with database.session() as session:
        context = await chat.context_for(session, user_id=alice, conversation_id=cid, settings=settings)
    assert isinstance(context[1]['content'], str)
    assert '[image: chart.png is no longer available]' in context[1]['content']


async def test_deleting_a_conversation_removes_its_messages_rows_and_files(database: Database) -> None:
    alice, _ = await make_users(database)
    settings = get_settings()
    async with database.session() as session:
        keep = await chat.create_conversation(session, user_id=alice, title='keep')
        gone = await chat.create_conversation(session, user_id=alice, title='gone')
        uploads = []
        for conversation, name in ((keep, 'keep.md'), (gone, 'gone.md'), (gone, 'gone.png')):
            data = png() if name.endswith('.png') else b'# notes\n'
            upload = await files.save_upload(session, user_id=alice, filename=name, data=data, settings=settings)
            message = await chat.add_message(session, user_id=alice, conversation_id=conversation.id or 0,
                                             role='user', content=name)
            await files.attach(session, user_id=alice, attachment_ids=[upload.id or 0],
                               conversation_id=conversation.id or 0, message_id=message.id or 0)
            uploads.append(upload)
        text_file = settings.resolved_artifact_path / files.text_path(uploads[1].storage_path)
        assert all(on_disk(settings, u).exists() for u in uploads) and text_file.exists()

        await chat.delete_conversation(session, user_id=alice, conversation_id=gone.id or 0, settings=settings)
    assert on_disk(settings, uploads[0]).exists()
    assert not on_disk(settings, uploads[1]).exists() and not text_file.exists()
    assert not on_disk(settings, uploads[2]).exists()
    async with database.session() as session:
        with pytest.raises(ConversationNotFound):
            await chat.get_conversation(session, user_id=alice, conversation_id=gone.id or 0)
        left_messages = list(await session.exec(select(ChatMessage.content)))
        left_files = list(await session.exec(select(ChatAttachment.filename)))
    assert left_messages == ['keep.md'] and left_files == ['keep.md']


async def test_deleting_the_user_cascades_and_unsent_uploads_are_purged(database: Database) -> None:
    alice, bob = await make_users(database)
    settings = get_settings()
    async with database.session() as session:
        conversation = await chat.create_conversation(session, user_id=alice)
        await chat.add_message(session, user_id=alice, conversation_id=conversation.id or 0, role='user')
        mine = await files.save_upload(session, user_id=alice, filename='a.txt', data=b'a', settings=settings)
        old = await files.save_upload(session, user_id=bob, filename='old.txt', data=b'old', settings=settings)
        fresh = await files.save_upload(session, user_id=bob, filename='new.txt', data=b'new', settings=settings)
        old.created_at = utcnow() - timedelta(days=2)
        session.add(old)
        await session.commit()
        assert await files.purge_unsent(session, older_than=utcnow() - timedelta(days=1), settings=settings) == 1
        assert not on_disk(settings, old).exists() and on_disk(settings, fresh).exists()

        user = await accounts.get_user(session, username='alice')
        await session.delete(user)
        await session.commit()
        await files.delete_user_files(alice, settings=settings)
        assert list(await session.exec(select(Conversation).where(col(Conversation.user_id) == alice))) == []
        assert list(await session.exec(select(ChatMessage))) == []
        assert [a.id for a in await session.exec(select(ChatAttachment))] == [fresh.id]
    assert not on_disk(settings, mine).exists() and not (settings.resolved_artifact_path / 'chat' / str(alice)).exists()


async def test_a_refused_upload_stores_nothing(database: Database) -> None:
    alice, _ = await make_users(database)
    settings = get_settings()
    async with database.session() as session:
        with pytest.raises(InvalidRequest, match='is empty'):
            await files.save_upload(session, user_id=alice, filename='empty.txt', data=b'', settings=settings)
        with pytest.raises(InvalidRequest, match='not a file that can be attached'):
            await files.save_upload(session, user_id=alice, filename='x.bin', data=b'\x00\x01\x02',
                                    settings=settings)
        assert await files.list_unsent(session, user_id=alice) == []
        upload = await files.save_upload(session, user_id=alice, filename='t.txt', data=b'ok', settings=settings)
        await files.delete_attachment(session, user_id=alice, attachment_id=upload.id or 0, settings=settings)
        assert not on_disk(settings, upload).exists()
    chat_dir = settings.resolved_artifact_path / 'chat'
    assert not chat_dir.exists() or not any(p.is_file() for p in chat_dir.rglob('*'))
