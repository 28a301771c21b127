"""The OpenID Connect authorization code flow, with state, nonce and PKCE (S256), through Authlib.

`begin` gives the address that sends the browser to the provider; `complete` takes the provider's answer back
to the ID token's verified claims. Authlib does the protocol (metadata, PKCE, the code exchange, the ID token's
signature through the JWKS with one forced refresh on an unknown key, `iss`, `aud`, `exp`, `nonce` with 120 s of
leeway); this module keeps what must survive between the two steps.

Why not Authlib's Starlette helper: it keeps state, nonce and verifier in the session, which here is a signed
cookie, so a replayed callback with a copy of the old cookie finds its state again, and the entry's expiry is
never checked. Here each pending sign-in sits in this process (the console runs in one), is bound to the browser
that started it, is good for PENDING_SECONDS and is taken out when used: a replay finds nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx2  # Authlib's HTTP client (its maintained httpx fork): its errors are its own classes
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import BaseApp, FrameworkIntegration
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc.errors import JoseError

from core.accounts.sso_claims import SignInRefused, clean
from core.accounts.sso_config import ProviderConfig

log = logging.getLogger('mindrouter.sso')

PENDING_SECONDS = 600.0  # from the button to the provider's answer: time to type a password and an MFA code
MAX_PENDING = 10_000  # sign-ins under way at once; beyond, new ones wait (anyone may start one)
SCOPES = 'openid profile email'
HTTP_TIMEOUT = 15.0
_SPENT_REMEMBERED = 10_000  # used states kept to tell a replay from a made-up state in the log
_TENANT_TEMPLATE = '{tenantid}'


class OidcClient(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    """Authlib's OpenID Connect client without a web framework (the state lives in `PendingLogins`)."""

    client_cls = AsyncOAuth2Client


@dataclass(frozen=True, slots=True)
class PendingLogin:
    provider: str
    browser: str  # the session id of the browser that pressed the button
    nonce: str
    code_verifier: str
    redirect_uri: str
    then: str  # where to go once signed in (a path on this site)
    expires: float


@dataclass(frozen=True, slots=True)
class Completed:
    claims: dict[str, Any]
    id_token: str  # kept for RP-initiated logout (id_token_hint)
    then: str


class PendingLogins:
    """State -> pending sign-in, oldest first; taken out once used."""

    def __init__(self, *, ttl: float = PENDING_SECONDS, limit: int = MAX_PENDING) -> None:
        self._ttl, self._limit = ttl, limit
        self._pending: OrderedDict[str, PendingLogin] = OrderedDict()
        self._spent: OrderedDict[str, None] = OrderedDict()

    def add(self, state: str, pending: PendingLogin) -> None:
        self._purge()
        if len(self._pending) >= self._limit:
            raise SignInRefused('Too many sign-ins are under way; try again in a few minutes.',
                                reason=f'{self._limit} sign-ins pending at once')
        self._pending[state] = pending

    def take(self, state: str, *, provider: str, browser: str) -> PendingLogin:
        """The pending sign-in this state names, once; SignInRefused (saying why) otherwise."""
        pending = self._pending.pop(state, None)
        if pending is None:
            spent = state in self._spent
            raise SignInRefused('This sign-in link was already used or has expired. Please start again.',
                                reason='state already used (a replayed callback)' if spent else
                                'unknown state (expired, from before a restart, or made up)')
        self._spend(state)
        if pending.provider != provider:
            raise SignInRefused('This sign-in did not start here. Please start again.',
                                reason=f'state issued for provider {pending.provider!r}, came back to {provider!r}')
        if pending.expires < time.monotonic():
            raise SignInRefused('This sign-in took too long and has expired. Please start again.',
                                reason='state expired')
        if pending.browser != browser:
            raise SignInRefused('This sign-in was started in another browser. Please start again here.',
                                reason='state issued to another browser session')
        return pending

    def expires_at(self) -> float:
        return time.monotonic() + self._ttl

    def clear(self) -> None:
        self._pending.clear()
        self._spent.clear()

    def _purge(self) -> None:
        now = time.monotonic()
        while self._pending:
            state, oldest = next(iter(self._pending.items()))
            if oldest.expires >= now:
                break
            del self._pending[state]

    def _spend(self, state: str) -> None:
        self._spent[state] = None
        while len(self._spent) > _SPENT_REMEMBERED:
            self._spent.popitem(last=False)


_pending = PendingLogins()
_clients: dict[str, tuple[tuple[str, ...], OidcClient]] = {}


def pending_logins() -> PendingLogins:
    return _pending


def client_for(config: ProviderConfig) -> OidcClient:
    """The provider's client, kept while its settings stand (its metadata and keys are fetched once)."""
    known = _clients.get(config.name)
    if known is not None and known[0] == config.fingerprint():
        return known[1]
    client = OidcClient(FrameworkIntegration(config.name), name=config.name, client_id=config.client_id,
                        client_secret=config.client_secret, server_metadata_url=config.metadata_url,
                        client_kwargs={'scope': SCOPES, 'code_challenge_method': 'S256', 'timeout': HTTP_TIMEOUT})
    _clients[config.name] = (config.fingerprint(), client)
    return client


def forget_clients() -> None:
    """Drop every client (a provider changed in the console; tests)."""
    _clients.clear()


async def begin(config: ProviderConfig, *, browser: str, redirect_uri: str, then: str) -> str:
    """The provider's authorization URL for this browser; the state, nonce and PKCE verifier stay here."""
    client = client_for(config)
    try:
        created = await client.create_authorization_url(redirect_uri)
    except (httpx2.HTTPError, ValueError, KeyError, RuntimeError, AuthlibBaseError) as exc:
        _clients.pop(config.name, None)  # fetch the metadata again next time
        raise SignInRefused('The identity provider cannot be reached right now. Please try again later.',
                            reason=f'provider metadata at {config.metadata_url} unusable: {_describe(exc)}') from None
    _pending.add(created['state'], PendingLogin(
        provider=config.name, browser=browser, nonce=created['nonce'], code_verifier=created['code_verifier'],
        redirect_uri=redirect_uri, then=then, expires=_pending.expires_at()))
    return str(created['url'])


async def complete(config: ProviderConfig, *, params: dict[str, str], browser: str) -> Completed:
    """The provider's answer (the callback's query) -> the ID token's verified claims; SignInRefused otherwise."""
    if params.get('error'):
        error, description = clean(params['error'], 100), clean(params.get('error_description'), 300)
        with contextlib.suppress(SignInRefused):  # the provider's refusal is what the person needs to read
            _pending.take(params.get('state', ''), provider=config.name, browser=browser)  # spent, if it was ours
        raise SignInRefused('The identity provider did not sign you in'
                            + (f': {description}' if description else f' ({error}).'),
                            reason=f'provider answered {error}: {description}')
    pending = _pending.take(params.get('state', ''), provider=config.name, browser=browser)
    if not params.get('code'):
        raise SignInRefused('The identity provider sent no sign-in code. Please start again.',
                            reason='callback without a code')
    client = client_for(config)
    try:
        token = await client.fetch_access_token(redirect_uri=pending.redirect_uri, code=params['code'],
                                                code_verifier=pending.code_verifier)
    except (httpx2.HTTPError, ValueError, KeyError, RuntimeError, AuthlibBaseError) as exc:
        raise SignInRefused('The identity provider did not confirm the sign-in. Please start again.',
                            reason=f'code exchange failed: {_describe(exc)}') from None
    id_token = token.get('id_token') if isinstance(token, dict) else None
    if not isinstance(id_token, str) or not id_token:
        raise SignInRefused('The identity provider sent no ID token.', reason='token response without id_token')
    claims = await _verified_claims(client, config, token, nonce=pending.nonce)
    return Completed(claims=claims, id_token=id_token, then=pending.then)


async def end_session_url(config: ProviderConfig, *, id_token: str, post_logout_redirect_uri: str) -> str | None:
    """RP-initiated logout at the provider, when its metadata names an end_session_endpoint; else None."""
    client = client_for(config)
    try:
        metadata = await client.load_server_metadata()
        if not metadata.get('end_session_endpoint'):
            return None
        created = await client.create_logout_url(post_logout_redirect_uri=post_logout_redirect_uri,
                                                 id_token_hint=id_token, client_id=config.client_id)
    except (httpx2.HTTPError, ValueError, KeyError, RuntimeError, AuthlibBaseError) as exc:
        log.warning('sso %s: logout at the provider skipped: %s', config.name, _describe(exc))
        return None
    return str(created['url'])


async def _verified_claims(client: OidcClient, config: ProviderConfig, token: dict[str, Any], *,
                           nonce: str) -> dict[str, Any]:
    metadata = await client.load_server_metadata()
    issuer = str(metadata.get('issuer') or '')
    templated = _TENANT_TEMPLATE in issuer  # Entra's /common and /organizations metadata (authlib#295)
    if templated and config.tenant_id:
        issuer, templated = issuer.replace(_TENANT_TEMPLATE, config.tenant_id), False
    # aud named explicitly: Authlib's own check only asks for an azp when aud is another client's (an azp equal
    # to our client id would then let a token minted for someone else through)
    options: dict[str, Any] = {'aud': {'essential': True, 'values': [config.client_id]},
                               'iss': {'essential': True} if templated else {'essential': True, 'values': [issuer]}}
    try:
        userinfo = await client.parse_id_token(token, nonce=nonce, claims_options=options)
    except (JoseError, AuthlibBaseError, ValueError, KeyError, RuntimeError, httpx2.HTTPError) as exc:
        raise SignInRefused('The sign-in could not be verified. Please start again.',
                            reason=f'ID token refused: {_describe(exc)}') from None
    claims = dict(userinfo)
    if templated and claims.get('iss') != issuer.replace(_TENANT_TEMPLATE, clean(claims.get('tid'))):
        raise SignInRefused('The sign-in could not be verified. Please start again.',
                            reason=f'ID token refused: issuer {clean(claims.get("iss"))!r} is not its tenant\'s')
    return claims


def _describe(exc: BaseException) -> str:
    return clean(f'{type(exc).__name__}: {exc}', 300)
