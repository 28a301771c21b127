"""Just-in-time accounts for single sign-on: the identity finds (or makes) its user, whose display name, email
and role are refreshed from the claims at every sign-in.

- Who someone is comes from the identity's stable key (core.accounts.sso_claims.identity_key), never from an
  email or a preferred_username.
- A first sign-in whose email belongs to an existing account does not take that account over (a provider's
  email is not proof of owning the local account): the identity is kept unlinked and the person is told to ask
  an administrator, who links the two in the console (core.accounts.sso_admin.link_identity).
- A deactivated account is refused here, before any session exists.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.accounts.service import USERNAME_PATTERN
from core.accounts.sso_claims import (
    Profile,
    SignInRefused,
    groups_overage,
    kept_claims,
    mapped_roles,
    profile,
    username_base,
)
from core.accounts.sso_config import ProviderConfig
from core.audit import admin_log
from core.models import ExternalIdentity, Role, User, utcnow

log = logging.getLogger('mindrouter.sso')

_NUMBERED_TRIES = 20  # alice, alice-2, ... alice-20, then a random suffix


async def sign_in_with(session: AsyncSession, config: ProviderConfig, claims: Mapping[str, Any]) -> User:
    """The active user these verified claims sign in, created on first sign-in; SignInRefused otherwise."""
    found = profile(claims, config)
    identity = (await session.exec(select(ExternalIdentity).where(
        ExternalIdentity.issuer == found.issuer, ExternalIdentity.subject == found.subject))).first()
    role = await role_for(session, config, claims)
    if identity is None or identity.user_id is None:
        identity = _refreshed_identity(identity, config, found, claims)
        owner = await _email_owner(session, found.email)
        if owner is not None:
            session.add(identity)
            await session.commit()
            raise SignInRefused(
                'An account with your email address already exists here. For your safety it is not signed in '
                'through single sign-on on its own: ask an administrator to link it to this sign-in.',
                reason=f'email of identity {found.issuer}/{found.subject} belongs to user {owner.username}; '
                       'waiting for an admin to link them')
        user = await _create_user(session, found, role)
        identity.user_id = user.id
    else:
        user = await _existing_user(session, identity.user_id)
        identity = _refreshed_identity(identity, config, found, claims)
        await _refresh_user(session, user, found, role)
    now = utcnow()
    identity.last_login_at = now
    user.last_login_at, user.last_login_method = now, f'sso:{config.name}'
    session.add_all([identity, user])
    await session.commit()
    await session.refresh(user)
    return user


async def role_for(session: AsyncSession, config: ProviderConfig, claims: Mapping[str, Any]) -> Role:
    """The role the claims map to (an admin role first, else the highest scheduler weight), else the default
    role; SignInRefused when neither exists."""
    names = mapped_roles(claims, config)
    if groups_overage(claims, config.role_claim):
        log.warning('sso %s: the token lists no groups (Entra ID group overage: over 200 groups); use app roles '
                    '(OIDC_ROLE_CLAIM=roles) or filter the groups claim to assigned groups', config.name)
    if names:
        roles = list(await session.exec(select(Role).where(col(Role.name).in_(sorted(names)))))
        for missing in names - {role.name for role in roles}:
            log.warning('sso %s: the role map names role %r, which does not exist', config.name, missing)
        if roles:
            return max(roles, key=lambda role: (role.is_admin, role.scheduler_weight))
    if not config.default_role:
        raise SignInRefused('Your account at the identity provider has no role that gives access to this gateway. '
                            'Ask your administrator for access.',
                            reason=f'no value of claim {config.role_claim!r} is in the role map, and there is no '
                                   'default role')
    role = (await session.exec(select(Role).where(Role.name == config.default_role))).first()
    if role is None:
        raise SignInRefused('Single sign-on is misconfigured here; tell your administrator.',
                            reason=f'the default role {config.default_role!r} does not exist')
    return role


def _refreshed_identity(identity: ExternalIdentity | None, config: ProviderConfig, found: Profile,
                        claims: Mapping[str, Any]) -> ExternalIdentity:
    identity = identity or ExternalIdentity(provider=config.name, issuer=found.issuer, subject=found.subject)
    identity.provider, identity.email, identity.display_name = config.name, found.email, found.full_name
    identity.claims = kept_claims(claims, config)
    return identity


async def _existing_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:  # the identity's foreign key cascades: cannot happen, but never sign in nobody
        raise SignInRefused('Your account no longer exists here.', reason=f'identity of missing user {user_id}')
    if not user.is_active:
        raise SignInRefused('Your account here is deactivated. Ask an administrator if you need it back.',
                            reason=f'user {user.username} is deactivated')
    return user


async def _refresh_user(session: AsyncSession, user: User, found: Profile, role: Role) -> None:
    assert role.id is not None
    if found.full_name:
        user.full_name = found.full_name
    if found.email and found.email != user.email:
        owner = await _email_owner(session, found.email)
        if owner is None:
            user.email = found.email
        else:
            log.warning('sso: email of %s not updated: user %s has it', user.username, owner.username)
    if user.role_id != role.id:
        log.info('sso: role of %s is now %s (from the claims)', user.username, role.name)
        user.role_id = role.id
    user.updated_at = utcnow()


async def _create_user(session: AsyncSession, found: Profile, role: Role) -> User:
    assert role.id is not None
    role_id, role_name = role.id, role.name  # a rollback below expires the row: no lazy loads in async code
    base = username_base(found)
    for attempt in range(2):
        username = await _free_username(session, base, random_suffix=attempt > 0)
        user = User(username=username, email=found.email, full_name=found.full_name, role_id=role_id)
        session.add(user)
        try:
            await session.flush()
        except IntegrityError:  # another sign-in took the name (or the email) in the meantime
            await session.rollback()
            if attempt:
                raise SignInRefused('Your account could not be created; please try again.',
                                    reason=f'username or email clash creating {username}') from None
            continue
        await admin_log.record(session, actor_id=user.id, actor=username, action='user.create', via='sso',
                               target=f'user {username}', after={'role': role_name, 'email': found.email,
                                                                 'full_name': found.full_name}, commit=False)
        log.info('sso: created user %s (%s) on first sign-in', username, role_name)
        return user
    raise AssertionError('unreachable')


async def _free_username(session: AsyncSession, base: str, *, random_suffix: bool) -> str:
    candidates = [f'{base}-{secrets.token_hex(3)}'] if random_suffix else \
        [base, *(f'{base}-{n}' for n in range(2, _NUMBERED_TRIES + 1))]
    candidates = [name for name in candidates if USERNAME_PATTERN.fullmatch(name)]
    taken = set(await session.exec(select(User.username).where(col(User.username).in_(candidates))))
    free = [name for name in candidates if name not in taken]
    return free[0] if free else f'{base}-{secrets.token_hex(3)}'


async def _email_owner(session: AsyncSession, email: str | None) -> User | None:
    if not email:
        return None
    return (await session.exec(select(User).where(User.email == email))).first()
