"""Roles, users and API keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, String
from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow


class RoleName(StrEnum):
    admin = 'admin'
    faculty = 'faculty'
    staff = 'staff'
    student = 'student'


class RoleBase(SQLModel):
    name: str = Field(max_length=32, unique=True)
    display_name: str = Field(max_length=64)
    description: str = Field(default='', max_length=255)
    scheduler_weight: int = Field(default=1, ge=1)
    token_budget: int = Field(default=0, ge=0, sa_type=BigInteger)  # tokens per budget period; 0 = unlimited
    rpm_limit: int = Field(default=60, ge=0)  # requests per minute; 0 = unlimited
    max_concurrent: int = Field(default=4, ge=0)  # requests in flight at once; 0 = unlimited
    tts_char_budget: int = Field(default=0, ge=0, sa_type=BigInteger)  # characters spoken per period; 0 = unlimited
    stt_seconds_budget: int = Field(default=0, ge=0, sa_type=BigInteger)  # audio seconds per period; 0 = unlimited
    is_admin: bool = False


class Role(RoleBase, table=True):
    __tablename__ = 'roles'
    id: int | None = Field(default=None, primary_key=True)


class RolePublic(RoleBase):
    id: int


class ApiKeyStatus(StrEnum):
    active = 'active'
    revoked = 'revoked'
    expired = 'expired'


class UserBase(SQLModel):
    username: str = Field(max_length=64, unique=True)
    email: str | None = Field(default=None, max_length=255, unique=True)
    full_name: str = Field(default='', max_length=255)
    is_active: bool = True


class User(UserBase, table=True):
    __tablename__ = 'users'

    id: int | None = Field(default=None, primary_key=True)
    role_id: int = Field(foreign_key='roles.id', ondelete='RESTRICT', index=True)
    password_hash: str | None = Field(default=None, max_length=255)  # None: SSO-only account (core.models.sso)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_login_method: str | None = Field(default=None, max_length=40)  # 'password' or 'sso:<provider>'
    dark_mode: bool | None = None  # the web console's theme; None: follow the browser


class UserPublic(UserBase):
    id: int
    role_id: int
    created_at: datetime
    last_login_at: datetime | None


class ApiKeyBase(SQLModel):
    name: str = Field(default='default', max_length=100)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    rpm_limit: int | None = Field(default=None, ge=1)  # this key's own requests per minute (the user's apply too)


class ApiKey(ApiKeyBase, table=True):
    __tablename__ = 'api_keys'

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key='users.id', ondelete='CASCADE', index=True)
    prefix: str = Field(max_length=16)  # shown in lists so people can tell keys apart
    digest: str = Field(max_length=64, unique=True)  # SHA-256 hex of the key; the key itself is never stored
    status: str = Field(default=ApiKeyStatus.active, sa_type=String(16))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ApiKeyPublic(ApiKeyBase):
    id: int
    user_id: int
    prefix: str
    status: str
    created_at: datetime
    last_used_at: datetime | None
