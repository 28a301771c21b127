"""A student asks for more; the admin reviews it on /admin/quota-requests, approves with an edited amount or
denies, and the student's limits follow."""

from __future__ import annotations

from nicegui.testing import User
from sqlmodel import col, select

from core.accounts import service as accounts
from core.db import Database
from core.models import AdminAction
from core.quotas import limits
from core.quotas.quota_requests import QuotaDecision, QuotaRequestCreate, decide, file_request
from tests.ui.conftest import ADMIN, STUDENT


async def ask(database: Database, **amounts: int) -> int:
    async with database.session() as session:
        student = await accounts.get_user(session, username=STUDENT[0])
        assert student.id is not None
        request = await file_request(session, user_id=student.id, data=QuotaRequestCreate(
            justification='my thesis experiments need far more tokens', **amounts))
        assert request.id is not None
        return request.id


async def effective_limits(database: Database) -> dict[str, int]:
    async with database.session() as session:
        student = await accounts.get_user(session, username=STUDENT[0])
        return (await limits.limits_of(session, user=student)).effective


async def open_as_admin(user: User) -> None:
    await user.open('/login?redirect_to=/admin/quota-requests')
    user.find(marker='login-username').type(ADMIN[0])
    user.find(marker='login-password').type(ADMIN[1])
    user.find(marker='login-submit').click()
    await user.should_see(marker='pending-count', retries=50)


async def test_an_admin_approves_a_request_with_an_edited_amount_and_the_limits_rise(
        people: Database, user: User) -> None:
    request_id = await ask(people, requested_tokens=9_000_000, requested_rpm=300)
    await open_as_admin(user)
    await user.should_see('1 pending')
    await user.should_see('my thesis experiments need far more tokens')
    await user.should_see(marker=f'now-grant-tokens-{request_id}')
    await user.should_see('now 2,000,000')  # the student role's budget, before

    user.find(marker=f'grant-tokens-{request_id}').clear().type('5000000')
    user.find(marker=f'note-{request_id}').type('half of it, for the semester')
    user.find(marker=f'approve-{request_id}').click()
    await user.should_see(f'Request of {STUDENT[0]} approved')
    await user.should_see('Nothing pending')
    await user.should_see(f'Approved by {ADMIN[0]}')
    await user.should_see('half of it, for the semester')

    now = await effective_limits(people)
    assert (now['token_budget'], now['rpm_limit']) == (5_000_000, 300)
    async with people.session() as session:
        [entry] = await session.exec(select(AdminAction).where(col(AdminAction.action) == 'quota_request.approve'))
    assert entry.via == 'console' and entry.after is not None and entry.after['token_budget'] == 5_000_000


async def test_a_denied_request_leaves_the_limits_and_pending_ones_come_first(people: Database, user: User) -> None:
    before = await effective_limits(people)
    first = await ask(people, requested_max_concurrent=40)
    await open_as_admin(user)
    await user.should_see(marker=f'note-{first}')
    user.find(marker=f'note-{first}').type('use the batch queue instead')
    user.find(marker=f'deny-{first}').click()
    await user.should_see(f'Request of {STUDENT[0]} denied')
    assert await effective_limits(people) == before

    second = await ask(people, requested_rpm=120)  # filed while the page is open
    user.find(marker='quota-refresh').click()  # the page's timer would point at it within seconds
    await user.should_see(marker=f'approve-{second}')
    await user.should_see('1 pending')
    cards = [marker for element in user.find(marker='quota-requests').elements.pop().default_slot.children
             for marker in element._markers]
    assert cards == [f'request-{second}', f'request-{first}']  # pending first, then the decided one
    async with people.session() as session:
        logged = list(await session.exec(select(AdminAction.action)))
    assert logged == ['quota_request.deny']


async def test_a_speech_request_shows_the_speech_budgets_and_an_approval_raises_them(
        people: Database, user: User) -> None:
    tokens_only = await ask(people, requested_tokens=3_000_000)
    async with people.session() as session:  # decided, so that the student may file the speech one
        admin = await accounts.get_user(session, username=ADMIN[0])
        assert admin.id is not None
        await decide(session, request_id=tokens_only, reviewer_id=admin.id, approve=False,
                     decision=QuotaDecision(note='not now'))
    speech = await ask(people, requested_tts_chars=100_000, requested_stt_seconds=1_800)
    await open_as_admin(user)
    await user.should_see(marker=f'grant-tts-{speech}')
    await user.should_see(marker=f'grant-stt-{speech}')
    await user.should_see(marker=f'now-grant-tokens-{speech}')  # the general limits, always
    await user.should_not_see(marker=f'now-grant-tts-{tokens_only}')  # speech only where it was asked for

    user.find(marker=f'grant-stt-{speech}').clear().type('900')
    user.find(marker=f'approve-{speech}').click()
    await user.should_see(f'Request of {STUDENT[0]} approved')
    now = await effective_limits(people)
    assert (now['tts_char_budget'], now['stt_seconds_budget']) == (100_000, 900)
