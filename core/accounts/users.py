"""User administration: find users (server-side paging and search), create them, change their role and
profile, activate or deactivate them, and see or revoke their API keys.

Every change is recorded in the admin log (core.audit.admin_log) with what it was before and after, whether it
came from the console or the admin API; `Actor` says who made it and through which. Account rules
(username and email formats, uniqueness, known roles) are core.accounts.service', the single place they live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, func
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.accounts import service as accounts
from core.accounts.service import (  # the account rules, so that forms can say what is wrong inline
    EMAIL_PATTERN,
    USERNAME_PATTERN,
)
from core.admin.cluster_actions import Actor  # who acts, through which door: one notion for every admin change
from core.audit import admin_log
from core.errors import DuplicateUser, InvalidRequest
from core.models import ApiKey, ApiKeyStatus, ExternalIdentity, Role, User, utcnow

PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
MIN_PASSWORD = 8


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    email: str | None
    full_name: str
    role: str
    is_admin: bool
    is_active: bool
    has_password: bool  # False: API keys only (or single sign-on), no web login
    created_at: datetime
    last_login_at: datetime | None
    last_login_method: str | None = None  # 'password' or 'sso:<provider>'
    sso_providers: tuple[str, ...] = ()  # the single sign-on providers the user has signed in through

    @property
    def sign_in(self) -> str:
        """How the user signs in, in words: 'password', 'sso: oidc', 'password, sso: oidc', or 'API keys only'."""
        ways = (['password'] if self.has_password else []) + ([f'sso: {", ".join(self.sso_providers)}']
                                                             if self.sso_providers else [])
        return ', '.join(ways) or 'API keys only'

    def to_json(self) -> dict[str, Any]:
        return {'id': self.id, 'username': self.username, 'email': self.email, 'full_name': self.full_name,
                'role': self.role, 'is_admin': self.is_admin, 'is_active': self.is_active,
                'has_password': self.has_password, 'created_at': self.created_at.isoformat(),
                'last_login_at': self.last_login_at.isoformat() if self.last_login_at else None,
                'last_login_method': self.last_login_method, 'sso_providers': list(self.sso_providers)}


@dataclass(frozen=True, slots=True)
class UserPage:
    rows: list[UserRow]
    total: int  # how many match the filters in all
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: int
    name: str
    prefix: str
    owner: str
    status: str  # active, revoked, or expired (also when its expiry date has passed)
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None
    rpm_limit: int | None

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None
        return {'id': self.id, 'name': self.name, 'prefix': self.prefix, 'owner': self.owner, 'status': self.status,
                'created_at': iso(self.created_at), 'last_used_at': iso(self.last_used_at),
                'revoked_at': iso(self.revoked_at), 'expires_at': iso(self.expires_at), 'rpm_limit': self.rpm_limit}


class UserCreate(BaseModel):
    """POST /api/admin/users. With no password the account can use API keys but not the web login."""

    model_config = ConfigDict(extra='forbid')
    username: str
    role: str = 'student'
    email: str | None = None
    full_name: str = Field(default='', max_length=255)
    password: str | None = None


class UserChanges(BaseModel):
    """PATCH /api/admin/users/{username}: only the fields sent change; an empty email clears it."""

    model_config = ConfigDict(extra='forbid')
    role: str | None = None
    is_active: bool | None = None
    full_name: str | None = Field(default=None, max_length=255)
    email: str | None = None


def username_problem(username: str) -> str | None:
    """What is wrong with a new username (for a form's inline message), or None."""
    if not USERNAME_PATTERN.fullmatch(username):
        return 'Use 1-64 letters, digits, ".", "_", "-" or "@", starting with a letter or digit.'
    return None


def email_problem(email: str) -> str | None:
    return None if not email or EMAIL_PATTERN.fullmatch(email) else 'Not an email address.'


def password_problem(password: str) -> str | None:
    return None if not password or len(password) >= MIN_PASSWORD else f'At least {MIN_PASSWORD} characters.'


async def list_users(session: AsyncSession, *, q: str | None = None, role: str | None = None,
                     active: bool | None = None, offset: int = 0, limit: int = PAGE_SIZE) -> UserPage:
    """One page of users by username, matching `q` (in username, email or full name), role and status."""
    offset, limit = max(0, offset), min(max(1, limit), MAX_PAGE_SIZE)
    conditions = _conditions(q=q, role=role, active=active)
    total = int((await session.exec(select(func.count()).select_from(User).join(Role).where(*conditions))).one())
    query = select(User, Role).join(Role).where(*conditions).order_by(col(User.username))
    found = list(await session.exec(query.offset(offset).limit(limit)))
    providers = await _sso_providers(session, [user.id for user, _ in found if user.id is not None])
    return UserPage(rows=[_row(user, role_row, providers.get(user.id or 0, ())) for user, role_row in found],
                    total=total, offset=offset, limit=limit)


async def get_user_row(session: AsyncSession, *, username: str) -> UserRow:
    user = await accounts.get_user(session, username=username)
    role = await session.get(Role, user.role_id)
    assert role is not None  # the foreign key restricts deletes
    assert user.id is not None
    return _row(user, role, (await _sso_providers(session, [user.id])).get(user.id, ()))


async def create_user(session: AsyncSession, *, actor: Actor, data: UserCreate) -> UserRow:
    """Create an account (core.accounts.service' rules) and record it."""
    problem = password_problem(data.password or '')
    if problem:
        raise InvalidRequest(f'password: {problem}', param='password')
    user = await accounts.create_user(session, username=data.username.strip(), role=data.role,
                                      password=data.password or None, email=data.email or None,
                                      full_name=data.full_name.strip())
    row = await get_user_row(session, username=user.username)
    await admin_log.record(session, actor_id=actor.id, actor=actor.name, action='user.create',
                           target=f'user {row.username}', after=_public(row), via=actor.via)
    return row


async def update_user(session: AsyncSession, *, actor: Actor, username: str, changes: UserChanges) -> UserRow:
    """Change a user's role, status, name or email; the last active administrator stays one, and an admin
    cannot lock themselves out. Nothing is written (or recorded) when nothing changes."""
    user = await accounts.get_user(session, username=username)
    role = await session.get(Role, user.role_id)
    assert role is not None and user.id is not None
    before = _public(_row(user, role))
    sent = changes.model_dump(exclude_unset=True)
    new_role = role
    if sent.get('role') is not None and sent['role'] != role.name:
        new_role = await accounts.get_role(session, name=sent['role'])
    active = user.is_active if sent.get('is_active') is None else bool(sent['is_active'])
    if role.is_admin and user.is_active and (not new_role.is_admin or not active):
        await _keep_an_admin(session, user=user, actor=actor)
    if 'email' in sent:
        email = (sent['email'] or '').strip() or None
        if email and (problem := email_problem(email)):
            raise InvalidRequest(f'email: {problem}', param='email')
        if email and email != user.email:
            clash = (await session.exec(select(User.id).where(User.email == email, col(User.id) != user.id))).first()
            if clash is not None:
                raise DuplicateUser(f'another user already has the email {email!r}', param='email')
        user.email = email
    if sent.get('full_name') is not None:
        user.full_name = sent['full_name'].strip()
    assert new_role.id is not None
    user.role_id, user.is_active = new_role.id, active
    after = _public(_row(user, new_role))
    changed = {key for key in before if before[key] != after[key]}
    if not changed:
        return _row(user, new_role)
    user.updated_at = utcnow()
    session.add(user)
    await admin_log.record(session, actor_id=actor.id, actor=actor.name, action=_action(changed, active),
                           target=f'user {user.username}', before={k: before[k] for k in sorted(changed)},
                           after={k: after[k] for k in sorted(changed)}, via=actor.via, commit=False)
    await session.commit()  # the change and its record together
    return _row(user, new_role)


async def list_keys(session: AsyncSession, *, username: str) -> list[KeyRow]:
    """The user's API keys, newest first (a 404 for an unknown user, not an empty list)."""
    await accounts.get_user(session, username=username)
    return [_key_row(key, owner) for key, owner in await accounts.list_api_keys(session, username=username)]


async def revoke_key(session: AsyncSession, *, actor: Actor, key_ref: str) -> tuple[KeyRow, str]:
    """Revoke a key by id or prefix (core.accounts.service) and record it; returns the key and its digest, so the
    caller can drop it from the key cache at once. Revoking a revoked key changes (and records) nothing."""
    by_id = col(ApiKey.id) == (int(key_ref) if key_ref.isdigit() else -1)
    was = {key.id: str(key.status) for key in await session.exec(select(ApiKey).where(
        or_(by_id, col(ApiKey.prefix) == key_ref)))}
    key = await accounts.revoke_api_key(session, key_ref=key_ref)  # its rules: which key a reference means
    owner = await session.get(User, key.user_id)
    assert owner is not None
    row = _key_row(key, owner.username)
    if was.get(key.id) != key.status:
        await admin_log.record(session, actor_id=actor.id, actor=actor.name, action='api_key.revoke',
                               target=f'key {key.id} ({key.prefix}) of {owner.username}',
                               before={'status': was.get(key.id)}, after={'status': key.status}, via=actor.via)
    return row, key.digest


def _conditions(*, q: str | None, role: str | None, active: bool | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if q and q.strip():
        needle = q.strip().lower()
        conditions.append(or_(*(func.lower(column).contains(needle, autoescape=True)
                                for column in (col(User.username), col(User.email), col(User.full_name)))))
    if role:
        conditions.append(col(Role.name) == role)
    if active is not None:
        conditions.append(col(User.is_active).is_(active))
    return conditions


async def _keep_an_admin(session: AsyncSession, *, user: User, actor: Actor) -> None:
    if user.id == actor.id:
        raise InvalidRequest('you cannot deactivate or demote your own account; ask another administrator',
                             param='username')
    admins = (await session.exec(select(func.count()).select_from(User).join(Role).where(
        col(Role.is_admin).is_(True), col(User.is_active).is_(True)))).one()
    if int(admins) <= 1:
        raise InvalidRequest(f'{user.username} is the last active administrator', param='username')


def _action(changed: set[str], active: bool) -> str:
    if 'is_active' in changed:
        return 'user.activate' if active else 'user.deactivate'
    return 'user.role' if changed == {'role'} else 'user.update'


def _public(row: UserRow) -> dict[str, Any]:
    """What the admin log keeps of a user: what an admin can change, never the password hash."""
    return {'role': row.role, 'is_active': row.is_active, 'email': row.email, 'full_name': row.full_name}


def _row(user: User, role: Role, sso_providers: tuple[str, ...] = ()) -> UserRow:
    assert user.id is not None
    return UserRow(id=user.id, username=user.username, email=user.email, full_name=user.full_name, role=role.name,
                   is_admin=role.is_admin, is_active=user.is_active, has_password=user.password_hash is not None,
                   created_at=user.created_at, last_login_at=user.last_login_at,
                   last_login_method=user.last_login_method, sso_providers=sso_providers)


async def _sso_providers(session: AsyncSession, user_ids: list[int]) -> dict[int, tuple[str, ...]]:
    """user id -> the single sign-on providers of its identities (core.models.sso), for one page of users."""
    if not user_ids:
        return {}
    found: dict[int, tuple[str, ...]] = {}
    rows = await session.exec(select(ExternalIdentity.user_id, ExternalIdentity.provider)
                              .where(col(ExternalIdentity.user_id).in_(user_ids)).distinct())
    for user_id, provider in sorted(rows, key=lambda row: (row[0] or 0, row[1])):
        if user_id is not None:
            found[user_id] = (*found.get(user_id, ()), provider)
    return found


def _key_row(key: ApiKey, owner: str) -> KeyRow:
    assert key.id is not None
    status = key.status
    if status == ApiKeyStatus.active and key.expires_at is not None and key.expires_at <= utcnow():
        status = ApiKeyStatus.expired
    return KeyRow(id=key.id, name=key.name, prefix=key.prefix, owner=owner, status=str(status),
                  created_at=key.created_at, last_used_at=key.last_used_at, revoked_at=key.revoked_at,
                  expires_at=key.expires_at, rpm_limit=key.rpm_limit)
