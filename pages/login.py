"""/login and /logout: local accounts (username and password); room for a single sign-on button later."""

from __future__ import annotations

from nicegui import ui
from starlette.responses import RedirectResponse

from components.frame import frame
from components.session import same_site_path, session_user, sign_in, sign_out
from core.accounts.sign_in import get_sign_in_guard
from core.db import get_database
from core.errors import LimitExceeded
from core.models import Role, utcnow


def register() -> None:
    @ui.page('/login')
    async def login_page(redirect_to: str = '') -> RedirectResponse | None:
        if session_user() is not None:
            return RedirectResponse(_safe(redirect_to) or '/dashboard')

        async def attempt() -> None:
            if not username.value or not password.value:
                error.text = 'Enter your username and password.'
                return
            async with get_database().session() as session:
                try:  # throttled per account and per address (docs/security.md#sign-in)
                    user = await get_sign_in_guard().authenticate(
                        session, username=username.value.strip(), password=password.value,
                        address=ui.context.client.ip or 'unknown')  # the peer, or what a trusted proxy says
                except LimitExceeded as exc:
                    error.text = exc.message
                    password.value = ''
                    return
                if user is None:
                    error.text = 'Wrong username or password, or the account is deactivated.'
                    password.value = ''
                    return
                role = await session.get(Role, user.role_id)
                assert role is not None
                user.last_login_at = utcnow()
                await session.commit()
                then = _safe(redirect_to) or ('/admin' if role.is_admin else '/dashboard')
            ui.navigate.to(sign_in(user, then=then))  # through a new session id (components/session.py)

        with frame('Log in'), ui.card().classes('w-96 self-center'):
            username = ui.input('Username').props('autofocus autocomplete=username').classes('w-full') \
                .mark('login-username')
            password = ui.input('Password', password=True).props('autocomplete=current-password') \
                .classes('w-full').on('keydown.enter', attempt).mark('login-password')
            error = ui.label('').classes('text-red-600 text-sm').mark('login-error')
            ui.button('Log in', on_click=attempt).classes('w-full').mark('login-submit')
            # a single sign-on button (Entra ID) goes here when SSO is configured
        return None

    @ui.page('/logout')
    def logout_page() -> RedirectResponse:
        sign_out()
        return RedirectResponse('/login')


def _safe(target: str) -> str:
    """Only paths on this site: a redirect_to of https://elsewhere (or /\\elsewhere, which browsers read as
    //elsewhere) must not take a fresh login with it."""
    return same_site_path(target)
