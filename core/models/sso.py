"""Single sign-on: the providers admins add in the console, and the identities people sign in with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow


class SsoProvider(SQLModel, table=True):
    """An OpenID Connect provider added at run time (the one from OIDC_* settings is not stored)."""

    __tablename__ = 'sso_providers'

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=32, unique=True)  # in the URLs: /auth/{name}/login
    display_name: str = Field(max_length=100)  # the button's text
    metadata_url: str = Field(max_length=500)
    client_id: str = Field(max_length=255)
    client_secret: str = Field(default='', max_length=1000)  # sealed (core.secretbox), never in the clear
    tenant_id: str = Field(default='', max_length=64)  # Entra ID: tokens of other tenants are refused
    role_claim: str = Field(default='roles', max_length=100)
    role_map: dict[str, str] = Field(default_factory=dict, sa_type=JSON)  # claim value -> role name
    default_role: str = Field(default='student', max_length=32)  # '': unmapped users are refused
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ExternalIdentity(SQLModel, table=True):
    """Who someone is at a provider, keyed on the provider's stable subject: `(tid, oid)` for Entra ID (issuer
    `entra:<tid>`), `(iss, sub)` otherwise. Never on an email or a preferred_username, which people can change.

    `user_id` is None while the identity waits for an admin to link it: its email belongs to a local account,
    which a sign-in does not take over on its own."""

    __tablename__ = 'external_identities'
    __table_args__ = (UniqueConstraint('issuer', 'subject'),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(default=None, foreign_key='users.id', ondelete='CASCADE', index=True)
    provider: str = Field(max_length=32)  # the provider it last signed in through
    issuer: str = Field(max_length=255)
    subject: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=255)  # as the last token said (display only)
    display_name: str = Field(default='', max_length=255)
    claims: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # a bounded copy of the last ID token's
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
