"""A student's own dashboard: usage this period, recent requests, API keys and quota requests (simulated user)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from nicegui import ui
from nicegui.testing import User

from core.accounts import service as accounts
from core.accounts.security import display_prefix
from core.config import reset_settings
from core.db import Database
from core.models import RequestLog, utcnow
from core.quotas import quota_requests
from core.quotas.quota_requests import QuotaDecision
from tests.ui.conftest import ADMIN, STUDENT, log_in

SLOW = 30  # retries of 0.1 s: the page fills itself after it is sent


@pytest.fixture
def quick_key_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A revoked key stops working after the key cache's TTL; keep the wait short in tests."""
    monkeypatch.setenv('API_KEY_CACHE_TTL', '0.2')
    reset_settings()
    yield


async def requests_in_the_audit_trail(database: Database, username: str, *rows: tuple[str, int, int]) -> None:
    """Requests made a minute ago: (model, prompt tokens, completion tokens)."""
    async with database.session() as session:
        owner = await accounts.get_user(session, username=username)
        for n, (model, prompt, completion) in enumerate(rows):
            session.add(RequestLog(request_id=f'{username}-{n}-{model}', user_id=owner.id, model=model,
                                   endpoint='/v1/chat/completions', status='completed', prompt_tokens=prompt,
                                   completion_tokens=completion, total_ms=1500.0,
                                   created_at=utcnow() - timedelta(minutes=1, seconds=n)))
        await session.commit()


async def open_my_dashboard(user: User) -> None:
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=SLOW)
    await user.open('/dashboard')
    await user.should_see(marker='dashboard-who', retries=SLOW)


def table_rows(user: User, marker: str) -> list[dict[str, object]]:
    [table] = user.find(marker=marker).elements
    assert isinstance(table, ui.table)
    return table.rows


async def test_a_student_sees_their_own_usage_and_never_anyone_elses(people: Database, user: User) -> None:
    await open_my_dashboard(user)
    await user.should_see('0 of 2,000,000 tokens (0.0%)', retries=SLOW)
    await user.should_see('0 requests in all', retries=SLOW)
    assert table_rows(user, 'recent-requests') == []

    await requests_in_the_audit_trail(people, STUDENT[0], ('llama3', 1000, 500), ('qwen', 200, 300))
    await requests_in_the_audit_trail(people, ADMIN[0], ('root-only-model', 40_000, 50_000))
    await user.open('/dashboard')
    await user.should_see('2,000 of 2,000,000 tokens (0.1%)', retries=SLOW)
    await user.should_see('2 requests in all', retries=SLOW)
    await user.should_see('2 requests and 2,000 tokens in the last 30 days', retries=SLOW)
    rows = table_rows(user, 'recent-requests')
    assert [(r['model'], r['tokens'], r['status'], r['latency']) for r in rows] == [
        ('llama3', '1,000 / 500', 'completed', '1.5 s'), ('qwen', '200 / 300', 'completed', '1.5 s')]
    [pie] = user.find(marker='usage-model-chart').elements
    assert isinstance(pie, ui.plotly)
    assert isinstance(pie.figure, dict) and pie.figure['data'][0]['labels'] == ['llama3', 'qwen']
    await user.should_not_see('root-only-model')
    await user.should_not_see('90,000')


async def test_recent_requests_are_paged_on_the_server(people: Database, user: User) -> None:
    await requests_in_the_audit_trail(people, STUDENT[0], *[(f'model-{n}', 1, 1) for n in range(25)])
    await open_my_dashboard(user)
    await user.should_see('25 requests in all', retries=SLOW)
    assert len(table_rows(user, 'recent-requests')) == 20
    [pager] = user.find(marker='recent-pager').elements
    assert isinstance(pager, ui.pagination) and pager.max == 2
    pager.value = 2
    for _ in range(SLOW):
        if len(table_rows(user, 'recent-requests')) == 5:
            break
        await asyncio.sleep(0.1)  # the page's handler runs in the background
    assert [r['model'] for r in table_rows(user, 'recent-requests')] == [f'model-{n}' for n in range(20, 25)]


async def test_a_new_key_is_shown_once_then_works_until_it_is_revoked(
        quick_key_cache: None, people: Database, live: FastAPI, user: User) -> None:
    async with people.session() as session:
        _, roots_key = await accounts.create_api_key(session, username=ADMIN[0], name='root-key')
    await open_my_dashboard(user)
    await user.should_see(marker='no-keys', retries=SLOW)

    user.find(marker='new-key').click()
    user.find(marker='create-key').click()
    await user.should_see('Give the key a name')  # inline, and nothing created
    user.find(marker='key-name').type('laptop')
    user.find(marker='key-expiry').type('2001-01-01')
    await user.should_see('Pick a day after today')
    user.find(marker='key-expiry').clear()
    user.find(marker='create-key').click()
    await user.should_see(marker='new-key-value', retries=SLOW)
    await user.should_see('it will not be shown again')
    [shown] = user.find(marker='new-key-value').elements
    assert isinstance(shown, ui.label)
    plaintext = shown.text
    user.find(marker='copy-key').click()
    await user.should_see('Copied to the clipboard.')
    user.find(marker='close-new-key').click()
    await user.should_not_see(plaintext)
    prefix = display_prefix(plaintext)
    await user.should_see(marker=f'key-status-{prefix}', retries=SLOW)
    await user.should_see('laptop')
    await user.should_not_see('root-key')
    await user.should_not_see(display_prefix(roots_key))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(live), base_url='http://mindrouter.test') as api:
        assert (await api.get('/v1/models', headers={'Authorization': f'Bearer {plaintext}'})).status_code == 200
        user.find(marker=f'revoke-{prefix}').click()
        await user.should_see(f'Revoke the key "laptop" ({prefix}…)?')
        user.find(marker='confirm-revoke').click()
        await user.should_see('Key "laptop" revoked.', retries=SLOW)
        await user.should_see(kind=ui.badge, content='revoked')
        await user.should_not_see(marker=f'revoke-{prefix}')
        status = 200
        for _ in range(50):  # the gateway's key cache forgets the old answer within its TTL
            status = (await api.get('/v1/models', headers={'Authorization': f'Bearer {plaintext}'})).status_code
            if status == 401:
                break
            await asyncio.sleep(0.1)
        assert status == 401
        assert (await api.get('/v1/models', headers={'X-API-Key': roots_key})).status_code == 200


async def test_a_student_asks_for_more_quota_and_sees_the_admins_decision(people: Database, user: User) -> None:
    await open_my_dashboard(user)
    await user.should_see('None yet.', retries=SLOW)

    user.find(marker='quota-tokens').type('-5')
    await user.should_see('Enter a whole number of at least 1')
    user.find(marker='quota-tokens').clear().type('5,000,000')
    user.find(marker='quota-reason').type('more pls')
    await user.should_see('Explain in at least 10 characters')
    user.find(marker='quota-submit').click()
    async with people.session() as session:
        assert await quota_requests.list_requests(session) == []  # refused in the form, nothing filed

    user.find(marker='quota-reason').clear().type('My thesis runs long-context evaluations every night.')
    user.find(marker='quota-submit').click()
    await user.should_see('Request sent', retries=SLOW)
    await user.should_see(kind=ui.badge, content='pending', retries=SLOW)
    await user.should_see('5,000,000 tokens')

    async with people.session() as session:
        [filed] = await quota_requests.list_requests(session)
        root = await accounts.get_user(session, username=ADMIN[0])
        assert filed.id is not None and root.id is not None and filed.requested_tokens == 5_000_000
        await quota_requests.decide(session, request_id=filed.id, reviewer_id=root.id, approve=True,
                                    decision=QuotaDecision(note='Good luck with the thesis'))
    await user.open('/dashboard')
    await user.should_see(kind=ui.badge, content='approved', retries=SLOW)
    await user.should_see('Good luck with the thesis')
    await user.should_see('0 of 5,000,000 tokens (0.0%)', retries=SLOW)


async def test_a_student_asks_for_more_speech_with_the_same_form(people: Database, user: User) -> None:
    await open_my_dashboard(user)
    await user.should_see('None yet.', retries=SLOW)
    user.find(marker='quota-tts').type('0')
    await user.should_see('Enter a whole number of at least 1')
    user.find(marker='quota-tts').clear().type('200,000')
    user.find(marker='quota-stt').type('3600')
    user.find(marker='quota-reason').type('I listen to papers read aloud and dictate my notes.')
    user.find(marker='quota-submit').click()
    await user.should_see('Request sent', retries=SLOW)
    await user.should_see('200,000 speech characters · 3,600 transcription seconds')

    async with people.session() as session:
        [filed] = await quota_requests.list_requests(session)
    assert (filed.requested_tts_chars, filed.requested_stt_seconds, filed.requested_tokens) == (200_000, 3_600, None)
