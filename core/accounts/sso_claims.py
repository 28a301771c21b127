"""What an ID token's claims mean for us: who it is, which role it gets, what to call them. Pure functions.

Claims come from the identity provider and are treated as hostile input: every string is bounded and cleaned
of control characters before it is stored or shown (pages escape it too), lists are cut short, and nothing but
the stable subject decides who someone is (MicrosoftDocs id-token-claims-reference: `preferred_username`,
`email` and `name` are mutable and "can't be used to make authorization decisions").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.accounts.service import EMAIL_PATTERN
from core.accounts.sso_config import ProviderConfig
from core.errors import PermissionDenied

MAX_TEXT = 255  # a stored name, email, issuer or subject
MAX_CLAIM_VALUES = 1000  # role or group values read from one token
MAX_VALUE_LENGTH = 256
USERNAME_LENGTH = 56  # leaves room for a "-NNNN" suffix within the 64 a username may have
_CONTROL = re.compile(r'[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]')
_NOT_IN_USERNAME = re.compile(r'[^A-Za-z0-9._@-]+')
_KEPT_CLAIMS = ('iss', 'sub', 'tid', 'oid', 'name', 'preferred_username', 'email')


class SignInRefused(PermissionDenied):
    """A single sign-on that ends on the error page: `message` for the person, `reason` for the log."""

    code = 'sign_in_refused'

    def __init__(self, message: str, *, reason: str, status: int = 403) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status  # of the error page: 404 for a provider that does not exist


@dataclass(frozen=True, slots=True)
class Profile:
    """What the claims say about the person: display fields, refreshed at every sign-in."""

    issuer: str  # with `subject`, the identity's key
    subject: str
    full_name: str
    email: str | None
    preferred_username: str


def clean(value: object, limit: int = MAX_TEXT) -> str:
    """A claim as a bounded single line of text ('' for anything but a string or number)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ''
    return _CONTROL.sub('', str(value)).strip()[:limit]


def profile(claims: Mapping[str, Any], config: ProviderConfig) -> Profile:
    """The identity (refused when the tenant is wrong or a key claim is missing) and the display fields."""
    issuer, subject = identity_key(claims, config)
    email = clean(claims.get('email'))
    if not email or not EMAIL_PATTERN.fullmatch(email):
        email = ''
    preferred = clean(claims.get('preferred_username'))
    return Profile(issuer=issuer, subject=subject, full_name=clean(claims.get('name')), email=email or None,
                   preferred_username=preferred)


def identity_key(claims: Mapping[str, Any], config: ProviderConfig) -> tuple[str, str]:
    """`(entra:<tid>, oid)` for Entra ID, `(iss, sub)` otherwise. With a tenant configured, a token of any other
    tenant is refused."""
    tid, oid = clean(claims.get('tid')), clean(claims.get('oid'))
    if config.tenant_id:
        if tid.lower() != config.tenant_id.lower():
            raise SignInRefused('This sign-in belongs to another organisation than the one this gateway accepts.',
                                reason=f'tenant {tid or "(none)"!r} is not the configured {config.tenant_id!r}')
        if not oid:
            raise SignInRefused('The identity provider did not say who you are (no object id).',
                                reason='Entra ID token without an oid claim (the profile scope is needed)')
        return f'entra:{tid.lower()}', oid
    if tid and oid:  # Entra ID without a pinned tenant (multi-tenant): oid is only unique within its tenant
        return f'entra:{tid.lower()}', oid
    issuer, subject = clean(claims.get('iss'), 10 * MAX_TEXT), clean(claims.get('sub'), 10 * MAX_TEXT)
    if not issuer or not subject or len(issuer) > MAX_TEXT or len(subject) > MAX_TEXT:
        raise SignInRefused('The identity provider did not say who you are.',
                            reason='ID token without a usable iss and sub (missing, or over 255 characters)')
    return issuer, subject


def claim_values(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The values of a role or group claim: a list of strings (or one string), bounded."""
    raw = claims.get(claim)
    values = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    return [v for v in values[:MAX_CLAIM_VALUES] if isinstance(v, str) and 0 < len(v) <= MAX_VALUE_LENGTH]


def groups_overage(claims: Mapping[str, Any], claim: str) -> bool:
    """Entra ID leaves `groups` out for members of more than 200 groups and names a Graph call instead."""
    names = claims.get('_claim_names')
    return claim == 'groups' and 'groups' not in claims and isinstance(names, dict) and 'groups' in names


def mapped_roles(claims: Mapping[str, Any], config: ProviderConfig) -> set[str]:
    """The role names the role map gives this token's claim values (empty: none matched)."""
    return {config.role_map[value] for value in claim_values(claims, config.role_claim) if value in config.role_map}


def username_base(found: Profile) -> str:
    """A username from preferred_username, else the email, else 'user': only the characters usernames may
    have, starting with a letter or digit, short enough for a uniqueness suffix."""
    for source in (found.preferred_username, found.email or ''):
        name = _NOT_IN_USERNAME.sub('-', source).lstrip('._@-')[:USERNAME_LENGTH].rstrip('._@-')
        if name:
            return name
    return 'user'


def kept_claims(claims: Mapping[str, Any], config: ProviderConfig) -> dict[str, Any]:
    """The few claims stored with an identity (for an admin to see what the provider said), bounded."""
    kept: dict[str, Any] = {name: clean(claims[name]) for name in _KEPT_CLAIMS if name in claims}
    values = claim_values(claims, config.role_claim)
    if values:
        kept[config.role_claim] = values[:50]
    return kept
