"""A real OpenID Connect provider on loopback for the single sign-on tests (oidc-provider-mock, a Flask app in a
thread: discovery, JWKS, authorization code with PKCE, signed ID tokens, end_session). Any client id, secret and
redirect URI is accepted; `PUT /users/<sub>` sets the claims a subject's ID token carries (tid, oid, roles, groups,
name, email, ...), and a POST of `sub` to the authorization URL is "the person clicks Authorize".

    provider.set_user('alice', name='Alice', tid=TENANT, oid='…', roles=['Faculty'])
    callback = provider.authorize(location_of_the_redirect, 'alice')   # the path + query of our callback
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from core.accounts import sso_flow
from core.config import reset_settings

TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47'
CLIENT_ID = 'mindrouter-tests'
CLIENT_SECRET = 'not-a-real-secret-0123456789'


@dataclass
class OidcProvider:
    issuer: str

    @property
    def metadata_url(self) -> str:
        return f'{self.issuer}/.well-known/openid-configuration'

    def set_user(self, sub: str, **claims: Any) -> None:
        response = httpx.put(f'{self.issuer}/users/{sub}', json=claims)
        assert response.status_code == 204, response.text

    def authorize(self, location: str, sub: str) -> str:
        """The person signs in as `sub` at the provider: the path and query it sends the browser back to."""
        assert location.startswith(f'{self.issuer}/'), location
        back = httpx.post(location, data={'sub': sub})
        assert back.status_code == 302, back.text
        parts = urlsplit(back.headers['location'])
        return f'{parts.path}?{parts.query}'


@pytest.fixture(scope='session')
def oidc_server() -> Iterator[OidcProvider]:
    """One provider for the session (it starts in well under a second; subjects are unique per test)."""
    # imported here, under the suite's warning filters: at plugin load its deprecated Authlib import would warn
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as server:
        yield OidcProvider(issuer=f'http://localhost:{server.server_port}')


@pytest.fixture
def oidc(oidc_server: OidcProvider, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcProvider]:
    """The provider configured as `oidc` (OIDC_* settings) for an Entra-style tenant, roles mapped."""
    for name, value in {'OIDC_METADATA_URL': oidc_server.metadata_url, 'OIDC_CLIENT_ID': CLIENT_ID,
                        'OIDC_CLIENT_SECRET': CLIENT_SECRET, 'OIDC_DISPLAY_NAME': 'Sign in with Campus ID',
                        'OIDC_TENANT_ID': TENANT,
                        'OIDC_ROLE_MAP': '{"MindRouter.Admin": "admin", "Faculty": "faculty"}'}.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    sso_flow.forget_clients()
    sso_flow.pending_logins().clear()
    yield oidc_server
    sso_flow.forget_clients()
    sso_flow.pending_logins().clear()


def new_subject() -> tuple[str, str]:
    """A fresh (sub, oid) pair: the provider is shared by every test of the session."""
    return f'user-{uuid.uuid4().hex[:8]}', str(uuid.uuid4())
