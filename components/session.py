"""Who is signed in to the console: the session the pages and the page shell share.

The session lives in NiceGUI's `app.storage.user` (server-side, keyed by a signed cookie): the user's id,
name and whether they are an admin. Each page re-reads the account from the database once per build
(`signed_in()`), so a deactivated account or a changed role takes effect at the next page, and handlers
check again (`require_admin()`), because event handlers arrive over the websocket, not as requests.
The gate in front of the pages is pages/gate.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from nicegui import app as nicegui_app
from nicegui import ui
from sqlmodel import select

from core.db import get_database
from core.models import Role, User, utcnow

_CONTROL_CHARACTERS = re.compile(r'[\x00-\x1f\x7f]')
_DECODING_ROUNDS = 3  # layers of percent-encoding undone when checking a redirect target


@dataclass(slots=True, frozen=True)
class SignedIn:
    id: int
    username: str
    role: str
    is_admin: bool


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
