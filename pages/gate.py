"""The gate in front of every console page: a session for anything not public, an admin for /admin.

Who is signed in is components/session.py; this module only decides, per request, whether a page may be
served, and where to send the browser if not.
"""

from __future__ import annotations

from urllib.parse import quote

from nicegui import app as nicegui_app
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from components.session import SESSION_START_PATH, signed_in

# Pages anyone may open; everything else needs a session, and /admin an admin's.
PUBLIC_PATHS = frozenset({'/', '/models', '/login', '/logout', SESSION_START_PATH})
PUBLIC_PREFIXES = ('/_nicegui', '/favicon', '/static', '/auth/')  # /auth/: single sign-on (pages/sso.py)
FORBIDDEN = '<h1>403 Forbidden</h1><p>This page is for administrators. <a href="/dashboard">Your dashboard</a></p>'


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
