"""Account services: users, roles and API keys. Keyword-only, one session in, domain errors out."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import bindparam, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.accounts.api_keys import Principal, PrincipalLoader
from core.accounts.security import digests_match, generate_api_key, hash_password_async, verify_password_async
from core.db import Database
from core.errors import ApiKeyNotFound, DuplicateUser, InvalidRequest, UnknownRole, UserNotFound
from core.models import ApiKey, ApiKeyStatus, QuotaOverride, Role, RoleName, User, utcnow

USERNAME_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9._@-]{0,63}')
EMAIL_PATTERN = re.compile(r'[^@\s]+@[^@\s]+\.[^@\s]+')

# The demo accounts `mindrouter seed` creates (documented in the README; never for production).
DEMO_USERS: tuple[tuple[str, str, RoleName], ...] = (
    ('admin', 'admin123', RoleName.admin),
    ('faculty1', 'faculty123', RoleName.faculty),
    ('staff1', 'staff123', RoleName.staff),
    ('student1', 'student123', RoleName.student),
)


async def list_roles(session: AsyncSession) -> list[Role]:
    return list(await session.exec(select(Role).order_by(col(Role.scheduler_weight).desc())))


async def get_role(session: AsyncSession, *, name: str) -> Role:
    role = (await session.exec(select(Role).where(Role.name == name))).first()
    if role is None:
        known = ', '.join(r.name for r in await list_roles(session))
        raise UnknownRole(f'unknown role {name!r} (known roles: {known})', param='role')
    return role


async def get_user(session: AsyncSession, *, username: str) -> User:
    user = (await session.exec(select(User).where(User.username == username))).first()
    if user is None:
        raise UserNotFound(f'no user named {username!r}', param='username')
    return user


async def create_user(session: AsyncSession, *, username: str, role: str, password: str | None = None,
                      email: str | None = None, full_name: str = '') -> User:
    """Create a user; with no password the account can use API keys but not the web login."""
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidRequest(f'invalid username {username!r}: use 1-64 letters, digits, ".", "_", "-" or "@"',
                             param='username')
    if email is not None and not EMAIL_PATTERN.fullmatch(email):
        raise InvalidRequest(f'invalid email address {email!r}', param='email')
    role_row = await get_role(session, name=role)
    clash = (await session.exec(select(User).where(
        or_(User.username == username, User.email == email) if email else User.username == username))).first()
    if clash is not None:
        what = f'username {username!r}' if clash.username == username else f'email {email!r}'
        raise DuplicateUser(f'a user with {what} already exists', param='username')
    assert role_row.id is not None
    user = User(username=username, email=email, full_name=full_name, role_id=role_row.id,
                password_hash=await hash_password_async(password) if password else None)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:  # lost a race with another writer
        await session.rollback()
        raise DuplicateUser(f'a user with username {username!r} or that email already exists') from exc
    await session.refresh(user)
    return user


async def authenticate_password(session: AsyncSession, *, username: str, password: str) -> User | None:
    """The active user with this password, else None. Always costs one argon2 verify (no timing oracle)."""
    user = (await session.exec(select(User).where(User.username == username))).first()
    ok = await verify_password_async(password, user.password_hash if user else None)
    return user if ok and user is not None and user.is_active else None


async def create_api_key(session: AsyncSession, *, username: str, name: str = 'default',
                         expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key for the user: the row, and the plaintext (shown once, never stored)."""
    user = await get_user(session, username=username)
    assert user.id is not None
    new_key = generate_api_key()
    row = ApiKey(user_id=user.id, name=name, prefix=new_key.prefix, digest=new_key.digest, expires_at=expires_at)
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row, new_key.plaintext


async def list_api_keys(session: AsyncSession, *, username: str | None = None) -> list[tuple[ApiKey, str]]:
    """Keys with their owners' usernames, newest first."""
    query = select(ApiKey, User.username).join(User).order_by(col(ApiKey.id).desc())
    if username is not None:
        query = query.where(User.username == username)
    return [(key, owner) for key, owner in await session.exec(query)]


async def revoke_api_key(session: AsyncSession, *, key_ref: str) -> ApiKey:
    """Revoke a key by its id or its display prefix (what `list-keys` shows)."""
    condition = ApiKey.id == int(key_ref) if key_ref.isdigit() else ApiKey.prefix == key_ref
    matches = list(await session.exec(select(ApiKey).where(condition)))
    if not matches:
        raise ApiKeyNotFound(f'no API key with id or prefix {key_ref!r}', param='key')
    if len(matches) > 1:
        raise InvalidRequest(f'prefix {key_ref!r} matches {len(matches)} keys; revoke by id', param='key')
    key = matches[0]
    if key.status != ApiKeyStatus.revoked:
        key.status = ApiKeyStatus.revoked
        key.revoked_at = utcnow()
        session.add(key)
        await session.commit()
        await session.refresh(key)
    return key


def principal_loader(database: Database) -> PrincipalLoader:
    """The authenticator's lookup: everything the request path needs about a key, in one indexed query.

    A bare connection and plain columns rather than an ORM session: this runs on a request's critical
    path whenever the key cache misses.
    """
    query = (
        sa_select(col(ApiKey.digest), col(ApiKey.id), col(ApiKey.status), col(ApiKey.expires_at), col(User.id),
                  col(User.username), col(User.is_active), col(Role.name), col(Role.is_admin),
                  func.coalesce(col(QuotaOverride.scheduler_weight), col(Role.scheduler_weight)),
                  func.coalesce(col(QuotaOverride.token_budget), col(Role.token_budget)),
                  func.coalesce(col(QuotaOverride.rpm_limit), col(Role.rpm_limit)),
                  func.coalesce(col(QuotaOverride.max_concurrent), col(Role.max_concurrent)), col(ApiKey.rpm_limit),
                  func.coalesce(col(QuotaOverride.tts_char_budget), col(Role.tts_char_budget)),
                  func.coalesce(col(QuotaOverride.stt_seconds_budget), col(Role.stt_seconds_budget)))
        .join(User, col(ApiKey.user_id) == col(User.id))
        .join(Role, col(User.role_id) == col(Role.id))
        .outerjoin(QuotaOverride, col(QuotaOverride.user_id) == col(User.id))
        .where(col(ApiKey.digest) == bindparam('digest'))
    )

    async def load(digest: str) -> Principal | None:
        async with database.connect() as conn:
            row = (await conn.execute(query, {'digest': digest})).first()
        if row is None:
            return None
        stored, key_id, status, expires_at, user_id, username, active, role, is_admin, *limits = row
        weight, budget, rpm, concurrent, key_rpm, tts_chars, stt_seconds = limits
        # MariaDB's default collations compare case-insensitively and ignore trailing spaces: insist on
        # the exact bytes, in constant time.
        if not digests_match(stored, digest):
            return None
        assert key_id is not None and user_id is not None  # primary keys
        expires = expires_at.timestamp() if expires_at else None
        return Principal(key_id=key_id, key_status=status, key_expires_at=expires, user_id=user_id, username=username,
                         user_active=active, role=role, is_admin=is_admin, scheduler_weight=weight,
                         token_budget=budget, rpm_limit=rpm, max_concurrent=concurrent, key_rpm_limit=key_rpm,
                         tts_char_budget=tts_chars, stt_seconds_budget=stt_seconds)
    return load


async def record_key_usage(session: AsyncSession, *, last_used: Mapping[int, datetime]) -> None:
    """Write last-used times collected in memory; one statement per key, one transaction."""
    for key_id, when in last_used.items():
        await session.exec(update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=when))
    await session.commit()


async def seed_demo_users(session: AsyncSession) -> list[str]:
    """Create the demo accounts that are missing; returns the usernames created."""
    created = []
    for username, password, role in DEMO_USERS:
        exists = (await session.exec(select(User.id).where(User.username == username))).first()
        if exists is None:
            await create_user(session, username=username, role=role, password=password,
                              email=f'{username}@example.edu', full_name=username.capitalize())
            created.append(username)
    return created


def generate_password() -> str:
    return secrets.token_urlsafe(12)

