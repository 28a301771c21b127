"""Who is signed in to the console: the session the pages and the page shell share.

The session lives in NiceGUI's `app.storage.user` (server-side, keyed by the id in a signed cookie): the user's
id, name and whether they are an admin. Each page re-reads the account from the database once per build
(`signed_in()`), so a deactivated account or a changed role takes effect at the next page, and handlers
check again (`require_admin()`, components/admin_guard.py), because event handlers arrive over the websocket,
not as requests. The gate in front of the pages is pages/gate.py.

Signing in and out gives the browser a new session id (no session fixation: an id known before signing in is
worth nothing after it). The login form's handler runs over the websocket, which cannot set a cookie, so it
only leaves a one-time handover and sends the browser to SESSION_START_PATH; that HTTP route swaps the id in
the cookie, then (one redirect later, under the new id) writes the sign-in into the new id's storage.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from nicegui import app as nicegui_app
from nicegui import ui
from sqlmodel import select
from starlette.responses import RedirectResponse

from core.db import get_database
from core.models import Role, User, utcnow

SESSION_START_PATH = '/session/start'
HANDOVER_SECONDS = 60.0  # from the password check to the browser's arrival at SESSION_START_PATH
_SIGNED_IN_KEYS = ('user_id', 'username', 'role', 'is_admin', 'sso_provider', 'sso_id_token')
_CONTROL_CHARACTERS = re.compile(r'[\x00-\x1f\x7f]')
_DECODING_ROUNDS = 3  # layers of percent-encoding undone when checking a redirect target


@dataclass(slots=True, frozen=True)
class SignedIn:
    id: int
    username: str
    role: str
    is_admin: bool


@dataclass(slots=True)
class _Handover:
    """A sign-in on its way from the login form to a new session id."""

    session_id: str  # the id the browser must present: the old one, then the new one
    user_id: int
    then: str  # a path on this site
    expires: float
    rotated: bool = False
    sso: tuple[str, str] | None = None  # (provider, ID token) of a single sign-on, for logging out there too


# ticket -> handover. In memory: the console runs in one process (docs/architecture.md).
_handovers: dict[str, _Handover] = {}


def install() -> None:
    """The session's own route on NiceGUI's app (it needs the session cookie). Called from pages.register_all()
    on every app build, never at import (NiceGUI's test plugin clears routes between tests)."""
    nicegui_app.add_api_route(SESSION_START_PATH, _start_session, methods=['GET'], include_in_schema=False)


def sign_in(user: User, *, then: str, sso: tuple[str, str] | None = None) -> str:
    """After the password check (or a single sign-on, whose provider and ID token `sso` carries into the new
    session): the address that completes the sign-in under a new session id, then goes to `then` (a path on this
    site). For the login form's handler: `ui.navigate.to(sign_in(user, then=...))`."""
    assert user.id is not None
    _forget()  # whoever this browser was signed in as, it is not any more
    now = time.monotonic()
    for ticket in [t for t, h in _handovers.items() if h.expires < now]:
        del _handovers[ticket]
    ticket = secrets.token_urlsafe(32)
    _handovers[ticket] = _Handover(session_id=str(nicegui_app.storage.browser['id']), user_id=user.id,
                                   then=same_site_path(then) or '/dashboard', expires=now + HANDOVER_SECONDS,
                                   sso=sso)
    return f'{SESSION_START_PATH}?ticket={ticket}'


def sign_out() -> None:
    """Sign out for good (the /logout page): the session is forgotten and the browser gets a new session id.
    Needs an HTTP request (a page or a route), not an event handler: the cookie changes."""
    _forget()
    nicegui_app.storage.browser['id'] = str(uuid.uuid4())


def sso_session() -> tuple[str, str] | None:
    """(provider, ID token) when the signed-in user came through single sign-on, for logging out there too."""
    store = nicegui_app.storage.user
    provider, id_token = store.get('sso_provider'), store.get('sso_id_token')
    return (str(provider), str(id_token)) if provider and id_token else None


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
    row = await _account(remembered.id)
    if row is None:
        _forget()
        return None
    user, role = row
    _remember(user, role)  # a changed role applies from this page on
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


def same_site_path(target: str) -> str:
    """`target` if it is a path on this site, else ''. For "go back there after signing in" links, which anyone
    can craft: browsers read `/\\evil.example` as `//evil.example` (another host) and drop tabs and newlines,
    and a target may be percent-encoded once more than it looks, so every decoded layer must be a plain path.
    Backslashes come back as slashes; control characters are refused."""
    layer = target
    for _ in range(_DECODING_ROUNDS):
        if not _is_local_path(layer):
            return ''
        decoded = unquote(layer)
        if decoded == layer:
            return target.replace('\\', '/')
        layer = decoded
    return ''  # encoded more deeply than any honest link


def _is_local_path(target: str) -> bool:
    if _CONTROL_CHARACTERS.search(target):
        return False
    path = target.replace('\\', '/')
    parts = urlsplit(path)
    return path.startswith('/') and not path.startswith('//') and not parts.scheme and not parts.netloc


async def _start_session(ticket: str = '') -> RedirectResponse:
    """SESSION_START_PATH, in two steps: under the old id, swap the cookie's id for a new one; under the new id,
    write the sign-in into its storage. A ticket is good once, for one browser, for HANDOVER_SECONDS."""
    handover = _handovers.get(ticket)
    browser = nicegui_app.storage.browser
    if handover is None or handover.expires < time.monotonic() or handover.session_id != browser.get('id'):
        return RedirectResponse('/login', status_code=303)
    if not handover.rotated:
        _forget()
        handover.session_id, handover.rotated = str(uuid.uuid4()), True
        browser['id'] = handover.session_id
        return RedirectResponse(f'{SESSION_START_PATH}?ticket={ticket}', status_code=303)
    del _handovers[ticket]
    row = await _account(handover.user_id)
    if row is None:  # deactivated in the meantime
        return RedirectResponse('/login', status_code=303)
    _remember(*row)
    if handover.sso is not None:
        nicegui_app.storage.user.update({'sso_provider': handover.sso[0], 'sso_id_token': handover.sso[1]})
    return RedirectResponse(handover.then, status_code=303)


async def _account(user_id: int) -> tuple[User, Role] | None:
    """The account and its role, if it exists and is active."""
    async with get_database().session() as session:
        row = (await session.exec(select(User, Role).join(Role).where(User.id == user_id))).first()
    if row is None or not row[0].is_active:
        return None
    return row[0], row[1]


def _remember(user: User, role: Role) -> None:
    assert user.id is not None
    facts: dict[str, Any] = {'user_id': user.id, 'username': user.username, 'role': role.name,
                             'is_admin': role.is_admin, 'dark_mode': user.dark_mode}
    store = nicegui_app.storage.user
    changed = {key: value for key, value in facts.items() if store.get(key, ...) != value}
    if changed:  # the storage is written to disk on change: not on every handler's check
        store.update(changed)


def _forget() -> None:
    for key in _SIGNED_IN_KEYS:
        nicegui_app.storage.user.pop(key, None)
