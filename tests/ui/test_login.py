"""Signing in and out, and who may open what (NiceGUI's simulated user)."""

from __future__ import annotations

import asyncio

import pytest
from nicegui.testing import User

from core.accounts import security
from core.config import reset_settings
from core.db import Database
from tests.ui.conftest import ADMIN, STUDENT, log_in


async def test_a_logged_out_visitor_is_sent_to_the_login_page(people: Database, user: User) -> None:
    await user.open('/dashboard')
    await user.should_see(marker='login-username')
    await user.open('/admin/users')
    await user.should_see(marker='login-username')


async def test_a_wrong_password_is_told_inline_and_the_right_one_signs_in(people: Database, user: User) -> None:
    await log_in(user, STUDENT[0], 'not-it')
    await user.should_see('Wrong username or password', retries=30)
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=30)
    await user.should_see(STUDENT[0])


async def test_a_student_cannot_open_admin_pages(people: Database, user: User) -> None:
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=30)
    response = await user.http_client.get('/admin')
    assert response.status_code == 403
    await user.should_not_see(marker='nav-admin')


async def test_an_admin_sees_the_admin_menu_and_logging_out_ends_the_session(people: Database, user: User) -> None:
    await log_in(user, *ADMIN)
    await user.should_see(marker='nav-admin', retries=30)
    await user.open('/logout')
    await user.should_see(marker='login-username')
    await user.open('/dashboard')
    await user.should_see(marker='login-username')


async def test_a_deactivated_account_cannot_sign_in(people: Database, user: User) -> None:
    from core.accounts.service import get_user
    async with people.session() as session:
        account = await get_user(session, username=STUDENT[0])
        account.is_active = False
        await session.commit()
    await log_in(user, *STUDENT)
    await user.should_see('Wrong username or password, or the account is deactivated.', retries=30)


async def test_the_sixth_wrong_password_is_refused_unchecked_and_the_right_one_works_after_the_lock(
        people: Database, user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('LOGIN_LOCKOUT_SECONDS', '3')
    reset_settings()
    checked: list[str] = []
    real = security.verify_password
    monkeypatch.setattr(security, 'verify_password', lambda password, stored: checked.append(password) or
                        real(password, stored))
    for n in range(5):
        await log_in(user, STUDENT[0], f'guess-{n}')
        await user.should_see('Wrong username or password', retries=30)
    await log_in(user, STUDENT[0], 'guess-5')
    await user.should_see('Too many failed sign-ins; try again in 3 s.', retries=30)
    assert checked == [f'guess-{n}' for n in range(5)]  # the sixth never reached argon2
    await asyncio.sleep(3)
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=30)
