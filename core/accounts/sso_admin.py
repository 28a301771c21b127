"""Single sign-on in the console: the providers admins add (secret sealed, never shown), and identities waiting
to be linked to an existing account. Every change is written to the admin log, never a secret."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.accounts.service import get_role, get_user
from core.accounts.sso_config import (
    ENV_PROVIDER,
    NAME_PATTERN,
    ProviderConfig,
    check_metadata_url,
    check_role_map,
    env_provider,
    secret_box,
)
from core.accounts.sso_flow import forget_clients
from core.admin.cluster_actions import Actor
from core.audit import admin_log
from core.config import Settings
from core.errors import Conflict, InvalidRequest, NotFound
from core.models import ExternalIdentity, SsoProvider, User, utcnow


class ProviderInput(BaseModel):
    """A provider as the console's form sends it. An empty client_secret on an update keeps the stored one."""

    model_config = ConfigDict(extra='forbid')
    name: str = Field(max_length=32)
    display_name: str = Field(min_length=1, max_length=100)
    metadata_url: str = Field(max_length=500)
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: str = Field(default='', max_length=500)
    tenant_id: str = Field(default='', max_length=64)
    role_claim: str = Field(default='roles', min_length=1, max_length=100)
    role_map: dict[str, str] = Field(default_factory=dict)
    default_role: str = Field(default='student', max_length=32)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ProviderRow:
    name: str
    display_name: str
    metadata_url: str
    client_id: str
    has_secret: bool
    tenant_id: str
    role_claim: str
    role_map: dict[str, str]
    default_role: str
    enabled: bool
    source: str  # environment (read-only) or console


@dataclass(frozen=True, slots=True)
class PendingIdentity:
    id: int
    provider: str
    display_name: str
    email: str | None
    owner: str | None  # the account with that email, the one an admin would link
    created_at: datetime


async def list_providers(session: AsyncSession, settings: Settings) -> list[ProviderRow]:
    rows = [_from_config(config) for config in [env_provider(settings)] if config is not None]
    for row in await session.exec(select(SsoProvider).order_by(col(SsoProvider.name))):
        rows.append(ProviderRow(name=row.name, display_name=row.display_name, metadata_url=row.metadata_url,
                                client_id=row.client_id, has_secret=bool(row.client_secret),
                                tenant_id=row.tenant_id, role_claim=row.role_claim, role_map=dict(row.role_map or {}),
                                default_role=row.default_role, enabled=row.enabled, source='console'))
    return rows


async def save_provider(session: AsyncSession, settings: Settings, *, actor: Actor, data: ProviderInput,
                        create: bool) -> ProviderRow:
    """Add a provider (create) or change the one of that name; the secret is sealed before it is stored."""
    name = data.name.strip().lower()
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest('name: 1-32 lower-case letters, digits or "-", starting with a letter or digit '
                             '(it is part of the sign-in URL)', param='name')
    if name == ENV_PROVIDER:
        raise InvalidRequest(f'name: {ENV_PROVIDER!r} is the provider of the OIDC_* settings', param='name')
    metadata_url = check_metadata_url(data.metadata_url)
    role_map = check_role_map(data.role_map)
    for role in {*role_map.values(), *([data.default_role] if data.default_role else [])}:
        await get_role(session, name=role)  # UnknownRole, naming the known ones
    row = (await session.exec(select(SsoProvider).where(SsoProvider.name == name))).first()
    if create and row is not None:
        raise Conflict(f'a provider named {name!r} already exists', param='name')
    if not create and row is None:
        raise NotFound(f'no provider named {name!r}', param='name')
    if create and not data.client_secret:
        raise InvalidRequest('client_secret: the client secret is required', param='client_secret')
    row = row or SsoProvider(name=name, display_name='', metadata_url='', client_id='')
    before = None if create else _logged(row)
    row.display_name, row.metadata_url, row.client_id = data.display_name.strip(), metadata_url, data.client_id.strip()
    row.tenant_id, row.role_claim = data.tenant_id.strip(), data.role_claim.strip()
    row.role_map, row.default_role, row.enabled = role_map, data.default_role.strip(), data.enabled
    if data.client_secret:
        row.client_secret = (await asyncio.to_thread(secret_box, settings)).seal(data.client_secret)
    row.updated_at = utcnow()
    session.add(row)
    after = _logged(row) | ({'client_secret': 'changed'} if data.client_secret and not create else {})
    await admin_log.record(session, actor_id=actor.id, actor=actor.name,
                           action='sso.provider.create' if create else 'sso.provider.update',
                           target=f'sso provider {name}', before=before, after=after, via=actor.via, commit=False)
    await session.commit()
    forget_clients()
    return next(p for p in await list_providers(session, settings) if p.name == name and p.source == 'console')


async def delete_provider(session: AsyncSession, *, actor: Actor, name: str) -> None:
    row = (await session.exec(select(SsoProvider).where(SsoProvider.name == name))).first()
    if row is None:
        raise NotFound(f'no provider named {name!r}', param='name')
    await session.delete(row)
    await admin_log.record(session, actor_id=actor.id, actor=actor.name, action='sso.provider.delete',
                           target=f'sso provider {name}', before=_logged(row), via=actor.via, commit=False)
    await session.commit()
    forget_clients()


async def pending_identities(session: AsyncSession) -> list[PendingIdentity]:
    """Identities that signed in with the email of an existing account, waiting for an admin to link them."""
    rows = list(await session.exec(select(ExternalIdentity).where(col(ExternalIdentity.user_id).is_(None))
                                   .order_by(col(ExternalIdentity.created_at).desc()).limit(200)))
    emails = {row.email for row in rows if row.email}
    owners = {user.email: user.username for user in await session.exec(
        select(User).where(col(User.email).in_(sorted(emails))))} if emails else {}
    return [PendingIdentity(id=row.id or 0, provider=row.provider, display_name=row.display_name, email=row.email,
                            owner=owners.get(row.email) if row.email else None, created_at=row.created_at)
            for row in rows]


async def link_identity(session: AsyncSession, *, actor: Actor, identity_id: int, username: str) -> None:
    """Let this identity sign in as `username` from now on (an existing account, usually a local one)."""
    identity = await session.get(ExternalIdentity, identity_id)
    if identity is None:
        raise NotFound(f'no identity {identity_id}', param='identity')
    if identity.user_id is not None:
        raise Conflict('this identity is already linked to an account', param='identity')
    user = await get_user(session, username=username)
    identity.user_id = user.id
    session.add(identity)
    await admin_log.record(session, actor_id=actor.id, actor=actor.name, action='sso.identity.link',
                           target=f'user {user.username}',
                           after={'provider': identity.provider, 'email': identity.email,
                                  'name': identity.display_name}, via=actor.via, commit=False)
    await session.commit()


def _from_config(config: ProviderConfig) -> ProviderRow:
    return ProviderRow(name=config.name, display_name=config.display_name, metadata_url=config.metadata_url,
                       client_id=config.client_id, has_secret=bool(config.client_secret), tenant_id=config.tenant_id,
                       role_claim=config.role_claim, role_map=config.role_map, default_role=config.default_role,
                       enabled=True, source=config.source)


def _logged(row: SsoProvider) -> dict[str, object]:
    """What the admin log keeps of a provider: everything but the secret."""
    return {'display_name': row.display_name, 'metadata_url': row.metadata_url, 'client_id': row.client_id,
            'tenant_id': row.tenant_id, 'role_claim': row.role_claim, 'role_map': row.role_map,
            'default_role': row.default_role, 'enabled': row.enabled}
