"""An admin reads the request audit trail at /admin/audit: finds requests, opens one, exports conversations.

The 100,000-row scale test is `test_100k_rows_first_page_and_filtered_page_render_quickly` (`-k 100k`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from nicegui import ui
from nicegui.testing import User
from sqlalchemy import insert
from sqlmodel import select

from core.accounts import service as accounts
from core.audit import search as audit_search
from core.config import reset_settings
from core.db import Database
from core.models import RequestLog, utcnow
from core.models import User as Account
from tests.ui.conftest import ADMIN, STUDENT

CHAT = '/v1/chat/completions'


async def add_requests(database: Database, *rows: dict[str, Any]) -> None:
    """Audit rows as the gateway writes them, `ago` minutes back and owned by `user` (a username)."""
    now = utcnow()
    async with database.session() as session:
        ids = dict(list(await session.exec(select(Account.username, Account.id))))
        values = []
        for row in rows:
            row = dict(row)
            values.append({'endpoint': CHAT, 'model': 'llama3.2:latest', 'status': 'completed', 'http_status': 200,
                           'prompt_tokens': 12, 'completion_tokens': 34, 'total_ms': 850.0, 'backend_name': 'gpu-a',
                           **row, 'user_id': ids[row.pop('user')],
                           'created_at': now - timedelta(minutes=row.pop('ago'))})
        await session.exec(insert(RequestLog), params=values)
        await session.commit()


@pytest.fixture
async def trail(people: Database) -> Database:
    async with people.session() as session:
        await accounts.create_user(session, username='fac', role='faculty', password='facpass123')
    await add_requests(
        people,
        {'request_id': 'r-stu-1', 'user': 'stu', 'ago': 10,
         'prompt': orjson.dumps([{'role': 'system', 'content': 'Be brief.'},
                                 {'role': 'user', 'content': 'Where does the blue whale live?'}]).decode(),
         'response': 'In every ocean.', 'client_ip': '10.0.0.7', 'user_agent': 'openai-python/2.1'},
        {'request_id': 'r-stu-2', 'user': 'stu', 'ago': 120, 'model': 'qwen3:8b', 'status': 'failed',
         'http_status': 502, 'error': 'engine error: out of memory', 'prompt': None, 'response': None},
        {'request_id': 'r-stu-old', 'user': 'stu', 'ago': 3 * 24 * 60},
        {'request_id': 'r-root-1', 'user': 'root', 'ago': 5, 'model': 'qwen3:8b', 'prompt': 'Once upon a time',
         'endpoint': '/v1/completions'},
        {'request_id': 'r-fac-1', 'user': 'fac', 'ago': 20, 'status': 'cancelled', 'http_status': 499,
         'endpoint': '/api/chat'},
    )
    return people


async def test_an_admin_narrows_the_trail_by_user_model_status_endpoint_and_time(trail: Database,
                                                                                 user: User) -> None:
    await open_audit(user)
    await sees_requests(user, 'r-root-1', 'r-stu-1', 'r-fac-1', 'r-stu-2')  # the last 24 hours, newest first
    await user.should_see('1 to 4 of 4')

    user.find(marker='audit-user').type('stu')
    await search(user)
    await sees_requests(user, 'r-stu-1', 'r-stu-2')

    user.find(marker='audit-model').type('llama3.2:latest')
    await search(user)
    await sees_requests(user, 'r-stu-1')

    user.find(marker='audit-model').clear()
    choose(user, 'audit-status', 'failed')
    await search(user)
    await sees_requests(user, 'r-stu-2')

    choose(user, 'audit-status', 'Any status')
    choose(user, 'audit-range', 'All time')
    await search(user)
    await sees_requests(user, 'r-stu-1', 'r-stu-2', 'r-stu-old')

    user.find(marker='audit-user').clear()
    choose(user, 'audit-range', 'Last hour')
    await search(user)
    await sees_requests(user, 'r-root-1', 'r-stu-1', 'r-fac-1')

    user.find(marker='audit-endpoint').type('/api/chat')
    await search(user)
    await sees_requests(user, 'r-fac-1')


async def test_a_custom_range_and_free_text_search(trail: Database, user: User) -> None:
    await open_audit(user)
    choose(user, 'audit-range', 'Custom (UTC)')
    user.find(marker='audit-from').type('yesterday')
    await search(user)
    await user.should_see('From: use a time like 2026-01-31 08:00 (UTC)')

    since = (utcnow() - timedelta(days=4)).strftime('%Y-%m-%d %H:%M')
    until = (utcnow() - timedelta(days=2)).strftime('%Y-%m-%d %H:%M')
    user.find(marker='audit-from').clear().type(since)
    user.find(marker='audit-to').type(until)
    await search(user)
    await sees_requests(user, 'r-stu-old')

    choose(user, 'audit-range', 'All time')
    user.find(marker='audit-text').type('blue whale')
    await search(user)
    await user.should_see('searching prompts and responses needs a time range of at most 7 days')

    choose(user, 'audit-range', 'Last 24 hours')
    await search(user)
    await sees_requests(user, 'r-stu-1')


async def test_an_unknown_user_is_told_inline(trail: Database, user: User) -> None:
    await open_audit(user)
    user.find(marker='audit-user').type('nobody')
    await search(user)
    await user.should_see("no user named 'nobody'")


async def test_opening_a_request_shows_its_conversation_and_everything_recorded(trail: Database, user: User) -> None:
    await open_audit(user)
    await sees_requests(user, 'r-root-1', 'r-stu-1', 'r-fac-1', 'r-stu-2')
    click_row(user, 'r-stu-1')
    await user.should_see('Where does the blue whale live?')
    await user.should_see('Be brief.')
    await user.should_see('In every ocean.')
    await user.should_see('10.0.0.7')
    await user.should_see('openai-python/2.1')

    click_row(user, 'r-stu-2')  # failed, recorded without prompt or response
    await user.should_see('engine error: out of memory')
    await user.should_see('Not recorded: AUDIT_LOG_PROMPTS was off when this request was served.')
    await user.should_see('No response: the request failed.')

    click_row(user, 'r-root-1')  # a completion: the prompt is plain text
    await user.should_see('Once upon a time')


async def test_speech_requests_show_what_their_budgets_count(people: Database, user: User) -> None:
    """Text to speech is counted in characters, speech to text in seconds of audio (docs/voice.md): the trail says
    so in the list and in the request, with whether the recording was kept."""
    await add_requests(
        people,
        {'request_id': 'r-tts', 'user': 'stu', 'ago': 1, 'endpoint': '/v1/audio/speech', 'model': 'kokoro',
         'prompt_tokens': 0, 'completion_tokens': 0, 'speech_chars': 1234},
        {'request_id': 'r-stt', 'user': 'stu', 'ago': 2, 'endpoint': '/v1/audio/transcriptions',
         'model': 'whisper-1', 'prompt_tokens': 0, 'completion_tokens': 0, 'audio_seconds': 12.34,
         'audio_path': 'audio/r-stt.wav'},
        {'request_id': 'r-chat', 'user': 'stu', 'ago': 3})
    await open_audit(user)
    await sees_requests(user, 'r-tts', 'r-stt', 'r-chat')
    assert [row['tokens'] for row in table(user).rows] == \
        ['1,234 characters spoken', '12.3 s of audio heard', '12 / 34']

    click_row(user, 'r-stt')
    await user.should_see('12.3 s of audio heard')
    await user.should_see('kept (AUDIT_LOG_AUDIO was on)')
    click_row(user, 'r-tts')
    await user.should_see('not kept')


async def test_export_downloads_the_filters_conversations_as_json(trail: Database, user: User) -> None:
    await open_audit(user)
    user.find(marker='audit-user').type('stu')
    choose(user, 'audit-range', 'All time')
    user.find(marker='audit-export').click()
    response = await user.download.next(timeout=5)
    assert response.status_code == 200
    exported = orjson.loads(response.content)
    assert [entry['request_id'] for entry in exported] == ['r-stu-old', 'r-stu-2', 'r-stu-1']  # oldest first
    whale = exported[2]
    assert whale['user'] == 'stu' and whale['model'] == 'llama3.2:latest'
    assert whale['prompt'][1] == {'role': 'user', 'content': 'Where does the blue whale live?'}
    assert whale['response'] == 'In every ocean.'
    assert (whale['prompt_tokens'], whale['completion_tokens']) == (12, 34)


async def test_an_export_past_the_limit_is_refused_with_a_reason(trail: Database, monkeypatch: pytest.MonkeyPatch,
                                                                  user: User) -> None:
    monkeypatch.setattr(audit_search, 'EXPORT_MAX_ROWS', 2)
    await open_audit(user)
    user.find(marker='audit-export').click()
    await user.should_see('More than 2 requests match; an export holds at most 2.')


async def test_the_page_says_when_prompts_are_not_recorded(trail: Database, monkeypatch: pytest.MonkeyPatch,
                                                          user: User) -> None:
    monkeypatch.setenv('AUDIT_LOG_PROMPTS', 'false')
    reset_settings()
    await open_audit(user)
    await user.should_see('Recording of prompts is off')


async def test_a_student_cannot_download_an_export(trail: Database, user: User) -> None:
    await user.open('/login?redirect_to=/')
    user.find(marker='login-username').type(STUDENT[0])
    user.find(marker='login-password').type(STUDENT[1])
    user.find(marker='login-submit').click()
    await user.should_see(marker='nav-logout', retries=100)
    response = await user.http_client.get('/admin/audit/export.json')
    assert response.status_code == 403


async def test_the_page_and_the_admin_api_list_the_same_requests(trail: Database, admin_api: httpx.AsyncClient,
                                                                 user: User) -> None:
    await open_audit(user)
    user.find(marker='audit-user').type('stu')
    await search(user)
    await sees_requests(user, 'r-stu-1', 'r-stu-2')
    since = (utcnow() - timedelta(days=1)).isoformat()
    listed = (await admin_api.get('/api/admin/audit', params={'user': 'stu', 'since': since})).json()
    assert [row['request_id'] for row in listed['rows']] == [row['request_id'] for row in table(user).rows]


async def test_100k_rows_first_page_and_filtered_page_render_quickly(people: Database, user: User) -> None:
    """SCALE: 100,000 audit rows over ~30 days; the page and its filters stay fast (timings printed, -s)."""
    async with people.session() as session:
        ids = [(await accounts.get_user(session, username=name)).id for name in ('root', 'stu')]
    now = utcnow()
    rows = [{'request_id': f'bulk-{i:06d}', 'user_id': ids[i % 2], 'endpoint': CHAT, 'model': f'model-{i % 7}',
             'status': 'failed' if i % 50 == 1 else 'completed', 'http_status': 200, 'prompt_tokens': i % 900,
             'completion_tokens': i % 300, 'total_ms': float(i % 4000),
             'prompt': '[{"role":"user","content":"hello"}]', 'response': 'hi',
             # 26 s apart, 13 s off the minute: no row sits on the edge of a preset while the test runs
             'created_at': now - timedelta(seconds=26 * i + 13)} for i in range(100_000)]
    started = time.perf_counter()
    async with people.session() as session:
        await session.exec(insert(RequestLog), params=rows)  # one transaction, executemany
        await session.commit()
    inserted = time.perf_counter() - started

    await open_audit(user)
    started = time.perf_counter()
    await user.open('/admin/audit')
    await user.should_see(f'1 to 50 of {86_400 // 26:,}')  # the default: the last 24 hours
    first_page = time.perf_counter() - started

    choose(user, 'audit-range', 'Last 30 days')
    started = time.perf_counter()
    await search(user)
    await user.should_see('1 to 50 of 10,000+')  # counting stops at 10,000
    month = time.perf_counter() - started

    user.find(marker='audit-user').type('stu')  # odd rows
    choose(user, 'audit-status', 'failed')  # every 50th, from row 1
    choose(user, 'audit-range', 'Last 7 days')
    week = len(range(1, 604_800 // 26 + 1, 50))
    started = time.perf_counter()
    await search(user)
    await user.should_see(f'1 to 50 of {week}')
    filtered = time.perf_counter() - started

    started = time.perf_counter()
    user.find(marker='audit-older').click()
    await user.should_see(f'51 to 100 of {week}')
    turned = time.perf_counter() - started
    print(f'\n100k rows: insert {inserted:.2f} s, first page {first_page:.2f} s, 30 days {month:.2f} s, '
          f'user+status {filtered:.2f} s, next page {turned:.2f} s')
    assert max(first_page, month, filtered, turned) < 5.0


# --- the admin's steps -------------------------------------------------------------------------------------------

async def open_audit(user: User) -> None:
    """Go to the audit page; the gate asks to sign in first, then brings the admin back to it."""
    await user.open('/admin/audit')
    user.find(marker='login-username').type(ADMIN[0])
    user.find(marker='login-password').type(ADMIN[1])
    user.find(marker='login-submit').click()
    await user.should_see(marker='audit-table', retries=100)  # a password check takes a moment
    await user.should_not_see('Loading…', retries=50)


async def search(user: User) -> None:
    user.find(marker='audit-search').click()
    await asyncio.sleep(0)  # let the click's handler start


def choose(user: User, marker: str, option: str) -> None:
    user.find(marker=marker).click()
    user.find(option).click()


def click_row(user: User, request_id: str) -> None:
    user.find(marker='audit-table').trigger('rowClick', [{}, {'request_id': request_id}, 0])


def table(user: User) -> ui.table:
    element = next(iter(user.find(marker='audit-table').elements))
    assert isinstance(element, ui.table)
    return element


async def sees_requests(user: User, *request_ids: str) -> None:
    """The table lists exactly these requests, in this order (waiting a little for the search to land)."""
    for _ in range(40):
        if [row['request_id'] for row in table(user).rows] == list(request_ids):
            return
        await asyncio.sleep(0.05)
    assert [row['request_id'] for row in table(user).rows] == list(request_ids)
