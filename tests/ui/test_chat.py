"""The chat page (simulated user): a student's messages go through the API (as the student's web-console key) to
a simulated vLLM; answers stream in, can be stopped, show their reasoning, use files and web search; everything is
the student's own and still there after a reload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nicegui import ElementFilter, ui
from nicegui.elements.upload_files import LargeFileUpload, SmallFileUpload
from nicegui.testing import User
from sqlmodel import col, select

from components.chat_message import split_blocks
from core.accounts import service as accounts
from core.chat import conversations
from core.config import reset_settings
from core.db import Database
from core.models import ChatAttachment, ChatMessage
from pages.chat_stream import Reply, SseData, refusal
from sim.config import SimConfig
from sim.search import SearchSim, expected_results
from sim.server import SimServer
from sim.text import expected_text, expected_thinking
from tests.ui.conftest import ADMIN, STUDENT, log_in

SLOW = 50  # retries of 0.1 s
LLAMA = 'meta-llama/Llama-3.2-1B-Instruct'
QWEN = 'Qwen/Qwen3-8B'
TOKENS = 12
PNG = b'\x89PNG\r\n\x1a\n' + b'\x00\x00\x00\rIHDR' + b'\x00' * 64


@pytest.fixture
async def engine(admin_api: httpx.AsyncClient) -> AsyncIterator[SimServer]:
    """A simulated vLLM serving a normal and a thinking model, registered as an operator would."""
    async with SimServer('vllm', SimConfig(models=[LLAMA, QWEN], tokens=TOKENS, token_delay_ms=2)) as sim:
        registered = await admin_api.post('/api/admin/backends/register',
                                          json={'name': 'sim', 'url': sim.url, 'engine': 'vllm'})
        assert registered.status_code in (200, 201), registered.text
        yield sim


@pytest.fixture
async def searxng(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SearchSim]:
    """A fake SearXNG, configured before the app starts (list it before `live`)."""
    async with SearchSim('searxng') as fake:
        monkeypatch.setenv('SEARCH_PROVIDER', 'searxng')
        monkeypatch.setenv('SEARXNG_URL', fake.search_url)
        reset_settings()
        yield fake


async def eventually(condition: Callable[[], bool], *, seconds: float = 10.0) -> bool:
    for _ in range(int(seconds * 20)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def open_chat(user: User, path: str = '/chat', who: tuple[str, str] = STUDENT) -> None:
    await log_in(user, *who)
    await user.should_see(marker='nav-logout', retries=SLOW)
    await user.open(path)
    await user.should_see(marker='chat-input', retries=SLOW)


def found(user: User, marker: str) -> list[ui.element]:
    """The elements with `marker` now (none is no error)."""
    with user:
        return list(ElementFilter(marker=marker))


def answers(user: User) -> list[str]:
    """The text of each answer on the page (its markdown parts joined)."""
    out = []
    for bubble in found(user, 'assistant-message'):
        parts = [e for e in bubble.descendants() if isinstance(e, ui.markdown) and 'answer' in e._markers]
        out.append('\n'.join(p.content for p in parts))
    return out


def reasoning(user: User) -> list[str]:
    return [e.content for e in found(user, 'reasoning-text') if isinstance(e, ui.markdown)]


def pick_model(user: User, name: str) -> None:
    user.find(marker='model-picker').elements.pop().value = name


def switch(user: User, marker: str) -> ui.switch:
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.switch)
    return element


async def send(user: User, text: str) -> None:
    user.find(marker='chat-input').type(text)
    user.find(marker='send').click()


async def upload(user: User, name: str, data: bytes, media_type: str) -> None:
    uploader = user.find(marker='chat-upload').elements.pop()
    assert isinstance(uploader, ui.upload)
    await uploader.handle_uploads([SmallFileUpload(name, media_type, data)])


async def saved_answers(database: Database) -> list[ChatMessage]:
    async with database.session() as session:
        return list(await session.exec(select(ChatMessage).where(col(ChatMessage.role) == 'assistant')
                                       .order_by(col(ChatMessage.id))))


async def audited_prompt(admin_api: httpx.AsyncClient, request_id: str) -> list[dict[str, Any]]:
    """The messages the gateway recorded for a request (AUDIT_LOG_PROMPTS is on by default)."""
    for _ in range(50):  # the audit writer flushes about every second
        response = await admin_api.get(f'/api/admin/audit/{request_id}')
        if response.status_code == 200:
            record = response.json()
            assert record['user'] == STUDENT[0] and record['api_key'].startswith('web console')
            prompt = record['prompt']
            return prompt['messages'] if isinstance(prompt, dict) else prompt
        await asyncio.sleep(0.1)
    raise AssertionError(f'request {request_id} never reached the audit trail')


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica and a correct cross-reference table."""
    content = f'BT /F1 18 Tf 72 720 Td ({text}) Tj ET'.encode('latin-1')
    objects = [b'<< /Type /Catalog /Pages 2 0 R >>', b'<< /Type /Pages /Kids [4 0 R] /Count 1 >>',
               b'<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
               b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R '
               b'/Resources << /Font << /F1 3 0 R >> >> >>',
               b'<< /Length %d >>\nstream\n' % len(content) + content + b'\nendstream']
    out = bytearray(b'%PDF-1.4\n')
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b'%d 0 obj\n' % number + body + b'\nendobj\n'
    xref = len(out)
    out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(objects) + 1)
    out += b''.join(b'%010d 00000 n \n' % offset for offset in offsets)
    out += b'trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n' % (len(objects) + 1, xref)
    return bytes(out)


# ------------------------------------------------------------------------------------------- the page


async def test_a_message_streams_in_is_audited_and_still_there_after_a_reload(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    await open_chat(user)
    pick_model(user, LLAMA)
    await user.should_see(marker='badge-tools')
    await user.should_see('8k context')
    await send(user, 'Tell me about the sea.')
    await user.should_see('Tell me about the sea.', retries=SLOW)
    expected = expected_text('Tell me about the sea.', TOKENS)
    assert await eventually(lambda: answers(user) == [expected])
    await user.should_see(marker='answer-usage', retries=SLOW)
    await user.should_see(f'{TOKENS} completion tokens')
    await user.should_see(marker='copy-answer')
    [saved] = await saved_answers(people)
    assert (saved.content, saved.completion_tokens, saved.stopped, saved.error) == (expected, TOKENS, False, None)
    assert saved.request_id
    assert (await audited_prompt(admin_api, saved.request_id))[-1] == {'role': 'user',
                                                                       'content': 'Tell me about the sea.'}

    await user.open(f'/chat/{saved.conversation_id}')
    await user.should_see(marker='chat-input', retries=SLOW)
    assert answers(user) == [expected]
    await user.should_see(kind=ui.label, content='Tell me about the sea.')
    await user.should_see(marker=f'conversation-{saved.conversation_id}')
    await user.should_see(f'{TOKENS} completion tokens')


async def test_settings_go_with_the_conversation(people: Database, live: FastAPI, admin_api: httpx.AsyncClient,
                                                engine: SimServer, user: User) -> None:
    await open_chat(user)
    pick_model(user, LLAMA)
    user.find(marker='open-settings').click()
    user.find(marker='system-prompt').type('Answer like a pirate.')
    user.find(marker='temperature').elements.pop().value = 0.3
    user.find(marker='save-settings').click()
    await user.should_see('Settings kept for the new conversation.')
    await send(user, 'Hello')
    assert await eventually(lambda: answers(user) == [expected_text('Hello', TOKENS)])
    [saved] = await saved_answers(people)
    assert saved.request_id is not None
    prompt = await audited_prompt(admin_api, saved.request_id)
    assert prompt[0] == {'role': 'system', 'content': 'Answer like a pirate.'}
    async with people.session() as session:
        owner = await accounts.get_user(session, username=STUDENT[0])
        assert owner.id is not None
        conversation = await conversations.get_conversation(session, user_id=owner.id,
                                                            conversation_id=saved.conversation_id)
    assert (conversation.system_prompt, conversation.temperature, conversation.model) == (
        'Answer like a pirate.', 0.3, LLAMA)


async def test_stop_keeps_what_arrived_and_cancels_the_engine_request(
        people: Database, live: FastAPI, engine: SimServer, user: User) -> None:
    engine.config.tokens, engine.config.token_delay_ms = 3000, 20
    await open_chat(user)
    pick_model(user, LLAMA)
    await send(user, 'Write a very long story.')
    assert await eventually(lambda: len((answers(user) or [''])[0].split()) >= 5)
    await user.should_see(marker='stop')
    user.find(marker='stop').click()
    await user.should_see(marker='answer-stopped', retries=SLOW)
    stopped_at = answers(user)[0]
    await asyncio.sleep(0.5)
    assert answers(user)[0] == stopped_at  # it stopped growing
    assert expected_text('Write a very long story.', 3000).startswith(stopped_at)
    assert await eventually(lambda: engine.stats.cancelled == 1 and engine.stats.in_flight == 0)
    [saved] = await saved_answers(people)
    assert saved.stopped and saved.content == stopped_at and saved.error is None
    await user.should_see(marker='send')  # ready for the next message

    await user.open(f'/chat/{saved.conversation_id}')
    await user.should_see(marker='answer-stopped', retries=SLOW)


async def test_thinking_shows_the_reasoning_apart_for_a_model_that_can(
        people: Database, live: FastAPI, engine: SimServer, user: User) -> None:
    await open_chat(user)
    pick_model(user, LLAMA)
    assert not switch(user, 'thinking-toggle').enabled  # this model cannot think
    pick_model(user, QWEN)
    await user.should_see(marker='badge-thinking')
    assert switch(user, 'thinking-toggle').enabled
    switch(user, 'thinking-toggle').value = True
    await send(user, 'Why is the sky blue?')
    seed = 'Why is the sky blue?'
    assert await eventually(lambda: answers(user) == [expected_text(seed, TOKENS)])
    assert reasoning(user) == [expected_thinking(seed, 8)]
    await user.should_see(marker='reasoning')

    switch(user, 'thinking-toggle').value = False  # "reasoning_effort": "none": the model answers at once
    await send(user, 'And the sea?')
    assert await eventually(lambda: answers(user)[1:] == [expected_text('And the sea?', TOKENS)])
    assert reasoning(user) == [expected_thinking(seed, 8), '']
    saved = await saved_answers(people)
    assert [m.reasoning for m in saved] == [expected_thinking(seed, 8), None]


async def test_a_pdf_goes_to_the_model_as_text_and_unsupported_files_are_refused(
        people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer, user: User) -> None:
    await open_chat(user)
    pick_model(user, LLAMA)
    await upload(user, 'tool.exe', b'MZ\x90\x00\x03\x00\x00\x00' + bytes(range(256)) * 4, 'application/x-msdownload')
    await user.should_see('Not attached: tool.exe', retries=SLOW)
    await upload(user, 'huge.txt', b'a' * (10 * 1024 * 1024 + 1), 'text/plain')
    await user.should_see('files up to 10 MiB can be attached', retries=SLOW)
    await upload(user, 'notes.pdf', minimal_pdf('The secret word is pomegranate'), 'application/pdf')
    await user.should_see('notes.pdf', retries=SLOW)
    await upload(user, 'extra.txt', b'not needed', 'text/plain')
    await user.should_see('extra.txt', retries=SLOW)
    [extra] = [e for e in found(user, 'pending-files')[0].descendants() if 'extra.txt' in str(getattr(e, 'text', ''))]
    assert isinstance(extra, ui.chip)
    extra.value = False  # removed before sending
    await user.should_not_see('extra.txt', retries=SLOW)

    await send(user, 'What is the secret word?')
    assert await eventually(lambda: len(answers(user)) == 1 and bool(answers(user)[0]))
    await user.should_see(marker='message-file')
    [saved] = await saved_answers(people)
    assert saved.request_id is not None and saved.error is None
    prompt = await audited_prompt(admin_api, saved.request_id)
    assert 'The secret word is pomegranate' in prompt[-1]['content']
    assert '[file: notes.pdf]' in prompt[-1]['content'] and 'not needed' not in prompt[-1]['content']
    assert answers(user) == [expected_text(prompt[-1]['content'], TOKENS)]
    async with people.session() as session:
        attached = list(await session.exec(select(ChatAttachment)))
    assert [(a.filename, a.request_id) for a in attached] == [('notes.pdf', saved.request_id)]

    await user.open(f'/chat/{saved.conversation_id}')
    await user.should_see(marker='message-file', retries=SLOW)


class SpooledUpload(LargeFileUpload):
    """A file NiceGUI spooled to disk, as it does for anything over 1 MB, remembering whether it was read."""

    reads = 0

    async def read(self) -> bytes:
        self.reads += 1
        return await super().read()


async def test_an_upload_over_the_limit_is_refused_before_it_is_read(
        people: Database, live: FastAPI, engine: SimServer, user: User, tmp_path: Path) -> None:
    spooled = tmp_path / 'spooled'
    with spooled.open('wb') as sparse:  # 11 MiB on paper, nothing on disk
        sparse.truncate(11 * 1024 * 1024)
    huge = SpooledUpload('huge.log', 'text/plain', spooled)
    await open_chat(user)
    uploader = user.find(marker='chat-upload').elements.pop()
    assert isinstance(uploader, ui.upload)
    await uploader.handle_uploads([huge])

    await user.should_see('huge.log is 11.0 MiB: files up to 10 MiB can be attached', retries=SLOW)
    assert huge.reads == 0
    await user.should_not_see(marker='pending-file-1')


async def test_images_are_refused_for_a_text_model_before_anything_is_sent(
        people: Database, live: FastAPI, engine: SimServer, user: User) -> None:
    await open_chat(user)
    pick_model(user, LLAMA)
    await upload(user, 'cat.png', PNG, 'image/png')
    await user.should_see('cannot see images', retries=SLOW)
    await send(user, 'What is in the picture?')
    await user.should_see('cannot see images (cat.png)', retries=SLOW)
    assert engine.stats.requests_total == 0 and answers(user) == []
    await user.should_see('cat.png')  # still pending: pick another model or remove it


async def test_web_search_results_are_given_to_the_model_and_cited(
        searxng: SearchSim, people: Database, live: FastAPI, admin_api: httpx.AsyncClient, engine: SimServer,
        user: User) -> None:
    await open_chat(user)
    pick_model(user, LLAMA)
    switch(user, 'search-toggle').value = True
    await send(user, 'tides of the moon')
    assert await eventually(lambda: answers(user) == [expected_text('tides of the moon', TOKENS)])
    results = expected_results('searxng', 'tides of the moon', 5)
    await user.should_see(marker='citations', retries=SLOW)
    links = [e for e in found(user, 'citation') if isinstance(e, ui.link)]
    assert [(link.text, link.props['href']) for link in links] == [
        (f'[{n}] {r["title"]}', r['url']) for n, r in enumerate(results, 1)]
    [saved] = await saved_answers(people)
    assert saved.request_id is not None
    assert [c['url'] for c in saved.citations or []] == [r['url'] for r in results]
    prompt = await audited_prompt(admin_api, saved.request_id)
    assert prompt[0]['role'] == 'system' and 'cite them' in prompt[0]['content']
    assert f'[1] {results[0]["title"]} — {results[0]["url"]}\n{results[0]["snippet"]}' in prompt[0]['content']
    assert prompt[-1] == {'role': 'user', 'content': 'tides of the moon'}

    searxng.config.fault = 'error_500'
    await send(user, 'and the sun?')
    await user.should_see(marker='search-failed', retries=SLOW)
    assert await eventually(lambda: answers(user)[1:] == [expected_text('and the sun?', TOKENS)])
    await user.should_see('sent without search results')

    await user.open(f'/chat/{saved.conversation_id}')
    await user.should_see(marker='citations', retries=SLOW)
    assert switch(user, 'search-toggle').value is True


async def test_errors_show_in_the_answer_never_a_traceback(people: Database, live: FastAPI, engine: SimServer,
                                                          user: User) -> None:
    await open_chat(user)
    pick_model(user, LLAMA)
    engine.config.fault, engine.config.fault_after_tokens = 'die_mid_stream', 3
    await send(user, 'First question')
    await user.should_see(marker='answer-error', retries=SLOW)
    assert answers(user) == [expected_text('First question', 3)]
    await user.should_not_see('Traceback')

    engine.config.fault = 'error_500'
    await send(user, 'Second question')
    assert await eventually(lambda: len(found(user, 'answer-error')) == 2)
    saved = await saved_answers(people)
    assert all(m.error for m in saved) and saved[1].content == ''
    await user.should_not_see('Traceback')


async def test_a_limit_reached_is_explained_in_the_answer(people: Database, live: FastAPI,
                                                          admin_api: httpx.AsyncClient, engine: SimServer,
                                                          user: User) -> None:
    limited = await admin_api.put(f'/api/admin/users/{STUDENT[0]}/quota',
                                  json={'rpm_limit': 1, 'note': 'one a minute'})
    assert limited.status_code == 200, limited.text
    await open_chat(user)
    pick_model(user, LLAMA)
    await send(user, 'One')
    assert await eventually(lambda: answers(user) == [expected_text('One', TOKENS)])
    await send(user, 'Two')
    await user.should_see(marker='answer-error', retries=SLOW)
    await user.should_see('Limit reached:')
    [error] = found(user, 'answer-error')
    assert isinstance(error, ui.label) and error.text.lower().count('try again in') == 1
    assert engine.stats.requests_total == 1


async def test_conversations_are_listed_searched_renamed_and_deleted(people: Database, live: FastAPI,
                                                                     user: User) -> None:
    async with people.session() as session:
        owner = await accounts.get_user(session, username=STUDENT[0])
        assert owner.id is not None
        for n in range(25):
            await conversations.create_conversation(session, user_id=owner.id, title=f'Topic {n:02d}')
    await open_chat(user)
    await user.should_see('Topic 24', retries=SLOW)
    await user.should_not_see('Topic 04')  # on the second page
    user.find(marker='conversation-pager').elements.pop().value = 2
    await user.should_see('Topic 04', retries=SLOW)

    user.find(marker='conversation-search').type('Topic 1')
    await user.should_see('Topic 13', retries=SLOW)
    await user.should_not_see('Topic 24', retries=SLOW)

    async with people.session() as session:
        rows, _ = await conversations.list_conversations(session, user_id=owner.id, q='Topic 13')
    [topic] = rows
    user.find(marker=f'rename-{topic.id}').click()
    user.find(marker='rename-title').clear().type('Oceanography notes')
    user.find(marker='confirm-rename').click()
    await user.should_not_see('Topic 13', retries=SLOW)  # renamed: no longer a match for "Topic 1"
    user.find(marker='conversation-search').clear().type('Ocean')
    await user.should_see(kind=ui.label, marker='conversation-title-item', content='Oceanography notes', retries=SLOW)

    user.find(marker=f'conversation-{topic.id}').click()
    await user.should_see(kind=ui.label, marker='conversation-title', content='Oceanography notes', retries=SLOW)
    user.find(marker=f'delete-{topic.id}').click()
    await user.should_see('Delete "Oceanography notes"?')
    user.find(marker='confirm-ok').click()
    await user.should_see('No conversations match.', retries=SLOW)
    await user.should_see(marker='chat-empty')
    async with people.session() as session:
        assert (await conversations.list_conversations(session, user_id=owner.id))[1] == 24


async def test_another_users_conversations_stay_invisible(people: Database, live: FastAPI, user: User) -> None:
    async with people.session() as session:
        root = await accounts.get_user(session, username=ADMIN[0])
        assert root.id is not None
        secret = await conversations.create_conversation(session, user_id=root.id, title='Root budget plans')
        assert secret.id is not None
        await conversations.add_message(session, user_id=root.id, conversation_id=secret.id, role='user',
                                        content='The password is swordfish')
    await open_chat(user)
    await user.should_see('No conversations yet.', retries=SLOW)
    await user.should_not_see('Root budget plans')
    await user.open(f'/chat/{secret.id}')
    await user.should_see(marker='chat-not-found', retries=SLOW)
    await user.should_not_see('Root budget plans')
    await user.should_not_see('swordfish')


CODE_ANSWER = 'Here is a function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nIt adds numbers [1].'


async def test_a_saved_answer_shows_code_reasoning_usage_and_safe_citations(people: Database, live: FastAPI,
                                                                             user: User) -> None:
    async with people.session() as session:
        owner = await accounts.get_user(session, username=STUDENT[0])
        assert owner.id is not None
        chat = await conversations.create_conversation(session, user_id=owner.id, title='Adding')
        assert chat.id is not None
        await conversations.add_message(session, user_id=owner.id, conversation_id=chat.id, role='user',
                                        content='Write add()')
        await conversations.add_message(
            session, user_id=owner.id, conversation_id=chat.id, role='assistant', content=CODE_ANSWER,
            reasoning='Keep it short.', model=QWEN, prompt_tokens=7, completion_tokens=30,
            citations=[{'n': 1, 'title': 'Python docs', 'url': 'https://docs.python.org/3/'},
                       {'n': 2, 'title': 'Sneaky', 'url': 'javascript:alert(1)'}])
        await conversations.add_message(session, user_id=owner.id, conversation_id=chat.id, role='user',
                                        content='Again')
        await conversations.add_message(session, user_id=owner.id, conversation_id=chat.id, role='assistant',
                                        content='', model=QWEN, error='Limit reached: 5 requests per minute.')
    await open_chat(user, f'/chat/{chat.id}')
    await user.should_see(marker='code-block')
    [copy_code] = user.find(marker='copy-code').elements
    assert copy_code.props['data-copy'] == 'def add(a, b):\n    return a + b'
    [copy_answer] = user.find(marker='copy-answer').elements
    assert copy_answer.props['data-copy'] == CODE_ANSWER
    user.find(marker='copy-code').click()
    await user.should_see('Copied to the clipboard.')
    assert reasoning(user) == ['Keep it short.', '']
    await user.should_see('7 prompt · 30 completion tokens')
    links = [(e.text, e.props['href']) for e in found(user, 'citation') if isinstance(e, ui.link)]
    assert links == [('[1] Python docs', 'https://docs.python.org/3/')]
    await user.should_see(kind=ui.label, marker='citation', content='[2] Sneaky')  # shown, never a link
    await user.should_see('Limit reached: 5 requests per minute.')
    await user.should_see(kind=ui.label, marker='conversation-title', content='Adding')


async def test_without_a_model_the_page_says_so(people: Database, live: FastAPI, user: User) -> None:
    await open_chat(user)
    await user.should_see(marker='no-models', retries=SLOW)
    await send(user, 'Anyone there?')
    await user.should_see('Pick a model first', retries=SLOW)


# ------------------------------------------------------------------------------------------- the parts


def test_code_blocks_are_split_from_the_prose() -> None:
    text = 'Intro\n\n```python\nprint(1)\n```\nAfter\n~~~\nraw\n~~~\n```js\nunclosed'
    assert [(b.kind, b.language, b.text) for b in split_blocks(text)] == [
        ('prose', '', 'Intro\n'), ('code', 'python', 'print(1)'), ('prose', '', 'After'), ('code', '', 'raw'),
        ('code', 'js', 'unclosed')]


def test_stream_events_split_anywhere_are_read_whole() -> None:
    wire = (b'data: {"choices":[{"delta":{"role":"assistant","reasoning_content":"hm"}}]}\n\n'
            b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\ndata: {"choices":[{"delta":{"content":"lo"},'
            b'"finish_reason":"stop"}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}'
            b'\n\ndata: [DONE]\n\n')
    reply, events = Reply(), SseData()
    for start in range(0, len(wire), 7):
        for payload in events.feed(wire[start:start + 7]):
            reply.take(payload)
    assert (reply.content, reply.reasoning, reply.prompt_tokens, reply.completion_tokens, reply.done) == (
        'Hello', 'hm', 3, 2, True)
    failed = Reply()
    failed.take(b'{"error":{"message":"engine died","type":"server_error"}}')
    assert failed.error == 'The answer failed: engine died'


def test_refusals_read_the_openai_error_envelope() -> None:
    body = b'{"error":{"message":"Rate limit: 60 requests per minute","type":"rate_limit_error"}}'
    assert refusal(429, body, {'retry-after': '12'}) == (
        'Limit reached: Rate limit: 60 requests per minute. Try again in 12 s.')
    assert refusal(404, b'{"error":{"message":"The model x does not exist"}}', {}) == (
        'Not found: The model x does not exist')
    assert refusal(502, b'<html>bad gateway</html>', {}).startswith('The gateway could not answer (HTTP 502)')
