"""The ID token checks of a single sign-on, offline: a provider whose metadata and keys sit in memory, and ID
tokens signed here with whatever is wrong with them. Each one ends in SignInRefused, whose reason is logged."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.base_client import FrameworkIntegration
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from core.accounts import sso_flow
from core.accounts.sso_claims import SignInRefused
from core.accounts.sso_config import ProviderConfig
from core.accounts.sso_flow import OidcClient

ISSUER = 'https://idp.example'
ENTRA = 'https://login.microsoftonline.com/{tenantid}/v2.0'
TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad'
CLIENT_ID = 'mindrouter'
KEY = RSAKey.generate_key(2048, parameters={'kid': 'k1'})
OTHER_KEY = RSAKey.generate_key(2048, parameters={'kid': 'k1'})  # same kid, not the provider's key


def config(tenant_id: str = '') -> ProviderConfig:
    return ProviderConfig(name='idp', display_name='IdP', metadata_url=f'{ISSUER}/.well-known/openid-configuration',
                          client_id=CLIENT_ID, client_secret='s', tenant_id=tenant_id, source='console')


def install(provider: ProviderConfig, issuer: str = ISSUER) -> OidcClient:
    """The provider's client, its metadata and keys already loaded (nothing is fetched)."""
    client = OidcClient(FrameworkIntegration(provider.name), name=provider.name, client_id=CLIENT_ID,
                        client_secret='s', client_kwargs={'scope': sso_flow.SCOPES, 'code_challenge_method': 'S256'},
                        issuer=issuer, authorization_endpoint=f'{ISSUER}/authorize', token_endpoint=f'{ISSUER}/token',
                        jwks=KeySet([KEY]).as_dict(), id_token_signing_alg_values_supported=['RS256'], _loaded_at=1.0)
    sso_flow._clients[provider.name] = (provider.fingerprint(), client)
    return client


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    sso_flow.forget_clients()
    sso_flow.pending_logins().clear()
    yield
    sso_flow.forget_clients()
    sso_flow.pending_logins().clear()


def signed(claims: dict[str, Any], key: RSAKey = KEY) -> str:
    return jwt.encode({'alg': 'RS256', 'kid': 'k1'}, claims, key)


async def sign_in(provider: ProviderConfig, client: OidcClient, monkeypatch: pytest.MonkeyPatch,
                  make_token: Any) -> dict[str, Any]:
    """Start a sign-in, have the provider answer with the token `make_token(nonce)` makes, complete it."""
    url = await sso_flow.begin(provider, browser='browser-1', redirect_uri='https://gw.example/auth/idp/callback',
                               then='')
    query = parse_qs(urlsplit(url).query)
    assert query['code_challenge_method'] == ['S256'] and query['code_challenge'][0]  # PKCE
    id_token = make_token(query['nonce'][0])

    async def token_endpoint(**kwargs: Any) -> dict[str, Any]:
        assert kwargs['code_verifier']  # the PKCE verifier goes with the code
        return {'access_token': 'at', 'token_type': 'Bearer', 'id_token': id_token}

    monkeypatch.setattr(client, 'fetch_access_token', token_endpoint)
    done = await sso_flow.complete(provider, params={'state': query['state'][0], 'code': 'the-code'},
                                   browser='browser-1')
    return done.claims


def claims(expected_nonce: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {'iss': ISSUER, 'sub': 'alice', 'aud': CLIENT_ID, 'iat': now, 'exp': now + 600,
                            'nonce': expected_nonce, 'name': 'Alice'}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


async def test_a_good_token_gives_its_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = config()
    client = install(provider)
    found = await sign_in(provider, client, monkeypatch, lambda nonce: signed(claims(nonce)))
    assert (found['sub'], found['name']) == ('alice', 'Alice')


@pytest.mark.parametrize(('problem', 'make', 'reason'), [
    ('another audience', lambda n: signed(claims(n, aud='someone-else')), "'aud'"),
    ('another audience, our azp', lambda n: signed(claims(n, aud='someone-else', azp=CLIENT_ID)), "'aud'"),
    ('another issuer', lambda n: signed(claims(n, iss='https://evil.example')), "'iss'"),
    ('expired', lambda n: signed(claims(n, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)), 'expired'),
    ('another nonce', lambda n: signed(claims('not-' + n)), "'nonce'"),
    ('no nonce', lambda n: signed(claims(n, nonce=None)), 'nonce'),
    ('signed by another key', lambda n: signed(claims(n), OTHER_KEY), 'BadSignatureError'),
    ('tampered', lambda n: _tampered(signed(claims(n))), 'BadSignatureError'),
    ('unsigned', lambda n: _unsigned(claims(n)), 'ID token refused'),
])
async def test_a_bad_token_is_refused_and_the_log_says_why(monkeypatch: pytest.MonkeyPatch, problem: str,
                                                           make: Any, reason: str) -> None:
    provider = config()
    client = install(provider)
    with pytest.raises(SignInRefused) as refused:
        await sign_in(provider, client, monkeypatch, make)
    assert refused.value.message == 'The sign-in could not be verified. Please start again.', problem
    assert reason in refused.value.reason, (problem, refused.value.reason)


async def test_entra_multi_tenant_metadata_checks_the_issuer_against_the_tokens_tenant(
        monkeypatch: pytest.MonkeyPatch) -> None:
    provider = config()  # no tenant pinned: /organizations metadata, issuer templated
    client = install(provider, issuer=ENTRA)
    own = ENTRA.replace('{tenantid}', TENANT)
    found = await sign_in(provider, client, monkeypatch, lambda n: signed(claims(n, iss=own, tid=TENANT)))
    assert found['tid'] == TENANT
    with pytest.raises(SignInRefused, match='could not be verified') as refused:
        await sign_in(provider, client, monkeypatch,
                      lambda n: signed(claims(n, iss=ENTRA.replace('{tenantid}', 'other'), tid=TENANT)))
    assert 'is not its tenant' in refused.value.reason


async def test_entra_templated_metadata_with_a_pinned_tenant_accepts_only_that_tenants_issuer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    provider = config(tenant_id=TENANT)
    client = install(provider, issuer=ENTRA)
    other = '00000000-0000-0000-0000-000000000001'
    with pytest.raises(SignInRefused) as refused:
        await sign_in(provider, client, monkeypatch,
                      lambda n: signed(claims(n, iss=ENTRA.replace('{tenantid}', other), tid=other)))
    assert "'iss'" in refused.value.reason


async def test_a_provider_error_is_said_and_the_state_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = config()
    install(provider)
    url = await sso_flow.begin(provider, browser='b', redirect_uri='https://gw.example/cb', then='')
    state = parse_qs(urlsplit(url).query)['state'][0]
    with pytest.raises(SignInRefused, match='did not sign you in: User cancelled'):
        await sso_flow.complete(provider, params={'state': state, 'error': 'access_denied',
                                                  'error_description': 'User cancelled\x00<b>'}, browser='b')
    with pytest.raises(SignInRefused) as replay:
        await sso_flow.complete(provider, params={'state': state, 'code': 'c'}, browser='b')
    assert 'replayed' in replay.value.reason


def test_pending_sign_ins_are_bounded() -> None:
    pending = sso_flow.PendingLogins(limit=2)
    entry = sso_flow.PendingLogin(provider='p', browser='b', nonce='n', code_verifier='v', redirect_uri='r', then='',
                                  expires=pending.expires_at())
    pending.add('s1', entry)
    pending.add('s2', entry)
    with pytest.raises(SignInRefused, match='Too many sign-ins'):
        pending.add('s3', entry)
    pending.take('s1', provider='p', browser='b')
    pending.add('s3', entry)  # room again once one is used


def _tampered(token: str) -> str:
    header, payload, signature = token.split('.')
    data = json.loads(base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)))
    data['sub'] = 'admin'
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b'=').decode()
    return f'{header}.{forged}.{signature}'


def _unsigned(payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b'=').decode()
    return f'{part({"alg": "none"})}.{part(payload)}.'


async def test_logout_at_the_provider_only_when_it_has_an_end_session_endpoint() -> None:
    provider = config()
    client = install(provider)
    assert await sso_flow.end_session_url(provider, id_token='t.o.k', post_logout_redirect_uri='https://gw/login') \
        is None  # a local sign-out only
    client.server_metadata['end_session_endpoint'] = f'{ISSUER}/logout'
    url = await sso_flow.end_session_url(provider, id_token='t.o.k', post_logout_redirect_uri='https://gw/login')
    assert url is not None
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f'{ISSUER}/logout?') and query['id_token_hint'] == ['t.o.k']
    assert query['post_logout_redirect_uri'] == ['https://gw/login'] and query['client_id'] == [CLIENT_ID]
