"""/login and /logout: the single sign-on providers' buttons (pages/sso.py) above the local form (username and
password), which LOCAL_LOGIN=false (or the console, or `mindrouter local-login off`) takes away."""

from __future__ import annotations

from nicegui import app as nicegui_app
from nicegui import ui
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse

from components.frame import frame
from components.session import same_site_path, session_user, sign_in, sign_out, sso_session
from core.accounts.local_login import local_login_enabled
from core.accounts.sign_in import get_sign_in_guard
from core.config import get_settings
from core.db import get_database
from core.errors import LimitExceeded
from core.models import Role, utcnow
from pages import sso

LOCAL_LOGIN_OFF = 'Password sign-in is turned off here: use single sign-on.'


def register() -> None:
    @ui.page('/login')
    async def login_page(redirect_to: str = '') -> RedirectResponse | None:
        if session_user() is not None:
            return RedirectResponse(_safe(redirect_to) or '/dashboard')
        providers = await sso.providers()
        local = await _local_login()

        async def attempt() -> None:
            if not await _local_login():  # turned off since the page was drawn
                error.text = LOCAL_LOGIN_OFF
                return
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
                user.last_login_at, user.last_login_method = utcnow(), 'password'
                await session.commit()
                then = _safe(redirect_to) or ('/admin' if role.is_admin else '/dashboard')
            ui.navigate.to(sign_in(user, then=then))  # through a new session id (components/session.py)

        with frame('Log in'), ui.card().classes('w-96 self-center'):
            if providers:
                sso.provider_buttons(providers, redirect_to=redirect_to)
            if local:
                if providers:
                    ui.separator()
                username = ui.input('Username').props('autofocus autocomplete=username').classes('w-full') \
                    .mark('login-username')
                password = ui.input('Password', password=True).props('autocomplete=current-password') \
                    .classes('w-full').on('keydown.enter', attempt).mark('login-password')
                error = ui.label('').classes('text-red-600 text-sm').mark('login-error')
                ui.button('Log in', on_click=attempt).classes('w-full').mark('login-submit')
            elif not providers:
                ui.label('Sign-in is turned off here: ask your administrator.').mark('login-off')
            else:
                ui.label(LOCAL_LOGIN_OFF).classes('text-sm opacity-70').mark('login-local-off')
        return None

    @ui.page('/logout')
    async def logout_page(request: Request) -> RedirectResponse:
        came_through = sso_session()
        sign_out()
        if came_through is not None:  # sign out at the provider too, when it offers that
            url = await sso.logout_url(request, *came_through)
            if url:
                return RedirectResponse(url)
        return RedirectResponse('/login')

    # after the page: NiceGUI's ui.page replaces any route already on its path
    nicegui_app.add_api_route('/login', _refuse_post, methods=['POST'], include_in_schema=False)


async def _local_login() -> bool:
    async with get_database().session() as session:
        return await local_login_enabled(session, get_settings())


async def _refuse_post() -> PlainTextResponse:
    """The login form signs in over the page's websocket, never by POST; with local sign-in off, say so."""
    if not await _local_login():
        return PlainTextResponse(LOCAL_LOGIN_OFF, status_code=403)
    return PlainTextResponse('Sign in on the login page.', status_code=405, headers={'Allow': 'GET'})


def _safe(target: str) -> str:
    """Only paths on this site: a redirect_to of https://elsewhere (or /\\elsewhere, which browsers read as
    //elsewhere) must not take a fresh login with it."""
    return same_site_path(target)
