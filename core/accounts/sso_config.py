"""Which single sign-on providers exist, and how each is set up.

Two sources: the OIDC_* settings (the provider named `oidc`, read-only in the console) and the providers admins
add in the console (table `sso_providers`, client secret sealed with core.secretbox). Both become a
`ProviderConfig`, the one shape the login routes and the claim rules read.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.config import Settings
from core.errors import InvalidRequest
from core.models import SsoProvider
from core.secretbox import SecretBox, SecretBoxError

ENV_PROVIDER = 'oidc'  # the provider OIDC_METADATA_URL configures
NAME_PATTERN = re.compile(r'[a-z0-9][a-z0-9-]{0,31}')
MAX_ROLE_MAP_ENTRIES = 200
_SECRET_INFO = b'mindrouter sso client secrets v1'
_LOOPBACK_NAMES = {'localhost', 'localhost.localdomain'}


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    display_name: str
    metadata_url: str
    client_id: str
    client_secret: str
    tenant_id: str = ''  # Entra ID: set, tokens must carry this tid; identities are keyed on (tid, oid)
    role_claim: str = 'roles'
    role_map: dict[str, str] = field(default_factory=dict)
    default_role: str = 'student'  # '': users no mapped claim value names are refused
    redirect_uri: str = ''  # '': built from the request
    source: Literal['environment', 'console'] = 'environment'

    def fingerprint(self) -> tuple[str, ...]:
        """What the protocol client depends on: a change means a new client (and fresh metadata)."""
        return (self.metadata_url, self.client_id, self.client_secret)


def parse_role_map(text: str, *, setting: str = 'OIDC_ROLE_MAP') -> dict[str, str]:
    """A JSON object of claim value -> role name; '' is the empty map."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(f'{setting} is not JSON: {exc}', param='role_map') from None
    return check_role_map(value, setting=setting)


def check_role_map(value: object, *, setting: str = 'role_map') -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidRequest(f'{setting} must be a JSON object of claim value -> role name, '
                             'e.g. {"MindRouter.Admin": "admin"}', param='role_map')
    if len(value) > MAX_ROLE_MAP_ENTRIES:
        raise InvalidRequest(f'{setting} has more than {MAX_ROLE_MAP_ENTRIES} entries', param='role_map')
    return {str(k): str(v) for k, v in value.items()}


def check_metadata_url(url: str) -> str:
    """An https URL (http only on loopback, for a provider under test): tokens and secrets travel through it."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ('https', 'http') or not parts.hostname:
        raise InvalidRequest('the metadata URL must be an https URL (.../.well-known/openid-configuration)',
                             param='metadata_url')
    if parts.scheme == 'http' and not _is_loopback(parts.hostname):
        raise InvalidRequest('the metadata URL must use https (http only for a provider on this machine)',
                             param='metadata_url')
    return url


def env_provider(settings: Settings) -> ProviderConfig | None:
    """The provider the OIDC_* settings describe, or None when OIDC_METADATA_URL is empty."""
    if not settings.oidc_metadata_url:
        return None
    return ProviderConfig(
        name=ENV_PROVIDER, display_name=settings.oidc_display_name or 'Sign in with your institution',
        metadata_url=settings.oidc_metadata_url, client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret, tenant_id=settings.oidc_tenant_id.strip(),
        role_claim=settings.oidc_role_claim or 'roles', role_map=parse_role_map(settings.oidc_role_map),
        default_role=settings.oidc_default_role.strip(), redirect_uri=settings.oidc_redirect_uri.strip())


def secret_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.resolved_secret_key(), info=_SECRET_INFO)


def from_row(row: SsoProvider, box: SecretBox) -> ProviderConfig:
    """A console provider; its secret opened with SECRET_KEY (SecretBoxError after a key rotation)."""
    return ProviderConfig(
        name=row.name, display_name=row.display_name, metadata_url=row.metadata_url, client_id=row.client_id,
        client_secret=box.open(row.client_secret) if row.client_secret else '', tenant_id=row.tenant_id,
        role_claim=row.role_claim, role_map=dict(row.role_map or {}), default_role=row.default_role,
        source='console')


async def enabled_providers(session: AsyncSession, settings: Settings) -> list[ProviderConfig]:
    """Every provider people may sign in with, the environment's first, for the login page's buttons."""
    providers = [p for p in [env_provider(settings)] if p is not None]
    rows = list(await session.exec(select(SsoProvider).where(col(SsoProvider.enabled).is_(True))
                                   .order_by(col(SsoProvider.name))))
    box = secret_box(settings) if rows else None
    for row in rows:
        if row.name == ENV_PROVIDER:
            continue  # the environment's own name; the console refuses it
        try:
            assert box is not None
            providers.append(from_row(row, box))
        except SecretBoxError:
            continue  # said when the provider is used (find_provider); the button goes
    return providers


async def find_provider(session: AsyncSession, settings: Settings, name: str) -> ProviderConfig | None:
    """The enabled provider called `name`, or None. Raises SecretBoxError when its secret cannot be opened."""
    if name == ENV_PROVIDER:
        return env_provider(settings)
    if not NAME_PATTERN.fullmatch(name):
        return None
    row = (await session.exec(select(SsoProvider).where(SsoProvider.name == name))).first()
    if row is None or not row.enabled:
        return None
    return from_row(row, secret_box(settings))


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
