"""Signing in and out gives the browser a new session id: a session id known before (a fixed or stolen cookie)
signs nobody in afterwards (components/session.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from nicegui.testing import User
from nicegui.testing.user_navigate import UserNavigate

from components.session import SESSION_START_PATH
from core.db import Database
from tests.ui.conftest import STUDENT, log_in


async def reaches_dashboard(user: User, session_cookie: str) -> bool:
    """Whether a browser holding `session_cookie` (and nothing else) opens /dashboard signed in."""
    jar = user.http_client.cookies
    user.http_client.cookies = httpx.Cookies({'session': session_cookie})
    try:
        response = await user.http_client.get('/dashboard')
    finally:
        user.http_client.cookies = jar
    return response.status_code == 200


async def test_the_session_id_before_signing_in_signs_nobody_in_after(people: Database, user: User) -> None:
    await user.open('/login')
    before = user.http_client.cookies['session']
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=30)
    signed_in = user.http_client.cookies['session']

    assert signed_in != before
    assert not await reaches_dashboard(user, before)
    assert await reaches_dashboard(user, signed_in)

    await user.open('/logout')
    assert user.http_client.cookies['session'] not in (before, signed_in)
    assert not await reaches_dashboard(user, signed_in)


async def test_a_sign_in_handover_works_once_and_only_for_its_browser(people: Database, user: User,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    targets: list[str] = []
    navigate = UserNavigate.to

    def recording(self: UserNavigate, target: Any, new_tab: bool = False) -> None:
        targets.append(str(target))
        navigate(self, target, new_tab)

    monkeypatch.setattr(UserNavigate, 'to', recording)
    await user.open('/login')
    fixed = user.http_client.cookies['session']
    await log_in(user, *STUDENT)
    await user.should_see(marker='nav-logout', retries=30)
    handover = next(target for target in targets if target.startswith(SESSION_START_PATH))

    for cookie in (fixed, user.http_client.cookies['session']):  # the id it was issued to, and the new one
        jar = user.http_client.cookies
        user.http_client.cookies = httpx.Cookies({'session': cookie})
        try:
            replayed = await user.http_client.get(handover)
        finally:
            user.http_client.cookies = jar
        assert replayed.headers['location'] == '/login'  # spent: no new session id, no sign-in
    assert not await reaches_dashboard(user, fixed)
