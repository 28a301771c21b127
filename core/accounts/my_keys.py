"""A user's own API keys: list, create and revoke, never anyone else's.

core.accounts.service serves the admin and the CLI, where a key is named by id or prefix alone; here every call is
scoped to the signed-in user's id, and a key of another user answers exactly as a key that does not exist
(no hint that the id is taken).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.accounts import service as accounts
from core.errors import ApiKeyNotFound, InvalidRequest, UserNotFound
from core.models import ApiKey, ApiKeyStatus, User, utcnow

NAME_MAX = 100  # api_keys.name


@dataclass(frozen=True, slots=True)
class KeyView:
    id: int
    name: str
    prefix: str
    status: str  # active | revoked | expired (an active key past its expiry reads as expired)
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    digest: str = field(repr=False, default='')  # for forgetting the key in the authenticator's cache


async def list_my_keys(session: AsyncSession, *, user_id: int, now: datetime | None = None) -> list[KeyView]:
    """The user's keys, newest first."""
    moment = now or utcnow()
    rows = await session.exec(select(ApiKey).where(col(ApiKey.user_id) == user_id).order_by(col(ApiKey.id).desc()))
    return [_view(key, moment) for key in rows]


async def create_my_key(session: AsyncSession, *, user_id: int, name: str, expires_on: date | None = None,
                        today: date | None = None) -> tuple[KeyView, str]:
    """A new key for the user: its view and the plaintext, which is shown once and never stored.

    A key with `expires_on` works until that day begins (00:00 UTC), so the day must be after today."""
    name = name.strip()
    if not name:
        raise InvalidRequest('give the key a name, so you can tell your keys apart', param='name')
    if len(name) > NAME_MAX:
        raise InvalidRequest(f'a key name has at most {NAME_MAX} characters', param='name')
    expires_at = None
    if expires_on is not None:
        if expires_on <= (today or utcnow().date()):
            raise InvalidRequest('the expiry date must be after today', param='expires_at')
        expires_at = datetime(expires_on.year, expires_on.month, expires_on.day, tzinfo=UTC)
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound(f'no user with id {user_id}', param='user_id')
    key, plaintext = await accounts.create_api_key(session, username=user.username, name=name, expires_at=expires_at)
    return _view(key, utcnow()), plaintext


async def revoke_my_key(session: AsyncSession, *, user_id: int, key_id: int) -> KeyView:
    """Revoke one of the user's keys (revoking a revoked key changes nothing)."""
    key = await session.get(ApiKey, key_id)
    if key is None or key.user_id != user_id:
        raise ApiKeyNotFound(f'you have no API key with id {key_id}', param='key')
    revoked = await accounts.revoke_api_key(session, key_ref=str(key_id))
    return _view(revoked, utcnow())


def _view(key: ApiKey, now: datetime) -> KeyView:
    assert key.id is not None
    status = key.status
    if status == ApiKeyStatus.active and key.expires_at is not None and key.expires_at <= now:
        status = ApiKeyStatus.expired
    return KeyView(id=key.id, name=key.name, prefix=key.prefix, status=str(status), created_at=key.created_at,
                   last_used_at=key.last_used_at, expires_at=key.expires_at, digest=key.digest)


CONSOLE_KEY_NAME = 'web console'


async def console_key_digest(session: AsyncSession, *, user_id: int) -> str:
    """The digest of the user's web-console key, made on first use: the console's chat calls the API as this
    key (app/loopback.py), so its requests are limited, scheduled and audited like any other, and show in the
    audit trail under their own key. Its plaintext is never kept: nothing outside this process can use it.
    Revoking it stops the chat until the user's next visit makes a new one."""
    now = utcnow()
    keys = await session.exec(select(ApiKey).where(col(ApiKey.user_id) == user_id,
                                                   col(ApiKey.name) == CONSOLE_KEY_NAME,
                                                   col(ApiKey.status) == ApiKeyStatus.active))
    for key in keys:
        if key.expires_at is None or key.expires_at > now:
            return key.digest
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound(f'no user with id {user_id}', param='user_id')
    key, _ = await accounts.create_api_key(session, username=user.username, name=CONSOLE_KEY_NAME)
    return key.digest
