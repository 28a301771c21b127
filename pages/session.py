"""Who is signed in to the console, and the gate in front of every page.

The session lives in NiceGUI's `app.storage.user` (server-side, keyed by a signed cookie): the user's id,
name and whether they are an admin. Each page re-reads the account from the database once per build
(`signed_in()`), so a deactivated account or a changed role takes effect at the next page, and destructive
handlers check again (`require_admin()`), because event handlers arrive over the websocket, not as requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from nicegui import app as nicegui_app
from nicegui import ui
from sqlmodel import select
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from core.db import get_database
from core.errors import MindRouterError
from core.models import Role, User, utcnow

# Pages anyone may open; everything else needs a session, and /admin an admin's.
PUBLIC_PATHS = frozenset({'/', '/models', '/login', '/logout'})
PUBLIC_PREFIXES = ('/_nicegui', '/favicon', '/static')
FORBIDDEN = '<h1>403 Forbidden</h1><p>This page is for administrators. <a href="/dashboard">Your dashboard</a></p>'


@dataclass(slots=True, frozen=True)
class SignedIn:
    id: int
    username: str
    role: str
    is_admin: bool


def install() -> None:
    """Put the gate in front of NiceGUI's pages. Called from main.py on every app build (never at import:
    NiceGUI's test plugin clears middleware between tests)."""
    nicegui_app.add_middleware(_Gate)


class _Gate(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return await call_next(request)
        if not nicegui_app.storage.user.get('user_id'):
            return RedirectResponse(f'/login?redirect_to={quote(path)}')
        if path == '/admin' or path.startswith('/admin/'):
            # the account as it is now (one indexed read): an admin demoted or deactivated since signing in
            # is refused at once, not when the session ends
            user = await signed_in()
            if user is None:
                return RedirectResponse(f'/login?redirect_to={quote(path)}')
            if not user.is_admin:
                return HTMLResponse(FORBIDDEN, status_code=403)
        return await call_next(request)


def sign_in(user: User, role: Role) -> None:
    assert user.id is not None
    nicegui_app.storage.user.update(user_id=user.id, username=user.username, role=role.name,
                                    is_admin=role.is_admin, dark_mode=user.dark_mode)


def sign_out() -> None:
    for key in ('user_id', 'username', 'role', 'is_admin'):
        nicegui_app.storage.user.pop(key, None)


def session_user() -> SignedIn | None:
    """The signed-in user as the session remembers it (no database read: for the page shell)."""
    store = nicegui_app.storage.user
    if not store.get('user_id'):
        return None
    return SignedIn(id=int(store['user_id']), username=str(store['username']), role=str(store.get('role', '')),
                    is_admin=bool(store.get('is_admin')))


async def signed_in() -> SignedIn | None:
    """The signed-in user as the database says now; signs out an account that was deactivated or removed."""
    remembered = session_user()
    if remembered is None:
        return None
    async with get_database().session() as session:
        row = (await session.exec(select(User, Role).join(Role).where(User.id == remembered.id))).first()
    if row is None or not row[0].is_active:
        sign_out()
        return None
    user, role = row
    sign_in(user, role)  # a changed role applies from this page on
    return SignedIn(id=remembered.id, username=user.username, role=role.name, is_admin=role.is_admin)


async def still_signed_in(user_id: int) -> SignedIn | None:
    """For a user's own actions: the same account still signed in, else None (and the user is told)."""
    me = await signed_in()
    if me is None or me.id != user_id:
        ui.notify('Your session ended; sign in again.', type='warning')
        return None
    return me


async def require_admin() -> SignedIn:
    """For event handlers that change things: the acting admin, or a refusal the page shows."""
    user = await signed_in()
    if user is None or not user.is_admin:
        raise PermissionError('Only administrators can do this; sign in again as one.')
    return user


async def save_theme(dark: bool | None) -> None:
    nicegui_app.storage.user['dark_mode'] = dark
    user = session_user()
    if user is None:
        return
    async with get_database().session() as session:
        row = await session.get(User, user.id)
        if row is not None:
            row.dark_mode = dark
            row.updated_at = utcnow()
            await session.commit()


def notify_failure(exc: Exception) -> None:
    """A failed action as the user should see it: the reason, never a stack trace."""
    message = exc.message if isinstance(exc, MindRouterError) else str(exc) or exc.__class__.__name__
    ui.notify(message, type='negative', multi_line=True)
