"""Single sign-on routes: /auth/{name}/login sends the browser to the provider, /auth/{name}/callback brings it
back signed in (through the session's new-id handover, components/session.py), and the provider buttons the
login page shows. They sit on NiceGUI's app, where the session cookie lives.

A refusal (a replayed or expired state, a wrong audience, issuer or tenant, a tampered token, a deactivated
account, no role) ends on a short page that says what happened, and the log says why; never a stack trace.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import urlencode, urljoin, urlsplit

from nicegui import app as nicegui_app
from nicegui import ui
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from components.session import same_site_path, sign_in
from core.accounts import sso_config, sso_flow
from core.accounts.sso_claims import SignInRefused
from core.accounts.sso_config import ENV_PROVIDER, ProviderConfig
from core.accounts.sso_users import sign_in_with
from core.config import get_settings
from core.db import get_database
from core.errors import InvalidRequest
from core.models import Role
from core.secretbox import SecretBoxError

log = logging.getLogger('mindrouter.sso')

LOGIN_PATH = '/auth/{name}/login'
CALLBACK_PATH = '/auth/{name}/callback'
_CALLBACK_PARAMS = ('state', 'code', 'error', 'error_description')
_MAX_PARAM = 4096  # characters of one callback parameter (codes are a few hundred)
MAX_ID_TOKEN = 16_384  # characters of an ID token kept for logging out at the provider


def register() -> None:
    nicegui_app.add_api_route(LOGIN_PATH, _login, methods=['GET'], include_in_schema=False)
    nicegui_app.add_api_route(CALLBACK_PATH, _callback, methods=['GET'], include_in_schema=False)


async def providers() -> list[ProviderConfig]:
    """The providers whose buttons the login page shows."""
    async with get_database().session() as session:
        return await sso_config.enabled_providers(session, get_settings())


def provider_buttons(configs: list[ProviderConfig], *, redirect_to: str) -> None:
    """One button (a plain link: it works before the page's websocket connects) per provider."""
    for config in configs:
        query = f'?{urlencode({"redirect_to": redirect_to})}' if same_site_path(redirect_to) else ''
        with ui.link(target=LOGIN_PATH.format(name=config.name) + query) \
                .classes('w-full no-underline').mark(f'sso-{config.name}'):
            ui.button(config.display_name, icon='login').classes('w-full').props('no-caps unelevated')


async def logout_url(request: Request, provider: str, id_token: str) -> str | None:
    """Where to send a browser that signed in through `provider` to sign out there too (RP-initiated logout with
    id_token_hint), or None when the provider has no end_session_endpoint (then the sign-out is local only)."""
    try:
        async with get_database().session() as session:
            config = await sso_config.find_provider(session, get_settings(), provider)
        if config is None:
            return None
        return await sso_flow.end_session_url(config, id_token=id_token,
                                              post_logout_redirect_uri=_site_url(request, config, '/login'))
    except Exception as exc:  # signing out here has happened already; the provider's part is a courtesy
        log.warning('sso %s: logout at the provider skipped: %s', provider, exc)
        return None


async def _login(request: Request, name: str, redirect_to: str = '') -> Response:
    try:
        config = await _provider(name)
        url = await sso_flow.begin(config, browser=_browser(), redirect_uri=_callback_uri(request, config),
                                   then=same_site_path(redirect_to))
    except SignInRefused as exc:
        return _refused(name, exc)
    return RedirectResponse(url, status_code=302)


async def _callback(request: Request, name: str) -> Response:
    try:
        config = await _provider(name)
        query = request.query_params
        params = {key: query[key][:_MAX_PARAM] for key in _CALLBACK_PARAMS if key in query}
        done = await sso_flow.complete(config, params=params, browser=_browser())
        async with get_database().session() as session:
            user = await sign_in_with(session, config, done.claims)
            role = await session.get(Role, user.role_id)
        assert role is not None
    except SignInRefused as exc:
        return _refused(name, exc)
    except Exception:  # a bug or an outage: the person gets a page, the log the traceback
        log.exception('sso %s: sign-in failed', name)
        return _page('Sign-in failed', 'Something went wrong while signing you in. Please try again; if it keeps '
                     'happening, tell your administrator.', status=500)
    log.info('sso %s: %s signed in (%s)', name, user.username, role.name)
    then = done.then or ('/admin' if role.is_admin else '/dashboard')
    kept = (config.name, done.id_token) if len(done.id_token) <= MAX_ID_TOKEN else None
    return RedirectResponse(sign_in(user, then=then, sso=kept), status_code=303)


async def _provider(name: str) -> ProviderConfig:
    try:
        async with get_database().session() as session:
            config = await sso_config.find_provider(session, get_settings(), name[:64])
    except SecretBoxError as exc:
        raise SignInRefused('Single sign-on is misconfigured here; tell your administrator.',
                            reason=f'the client secret cannot be read ({exc}); enter it again in the console') from None
    except InvalidRequest as exc:  # an OIDC_ROLE_MAP changed under a running process
        raise SignInRefused('Single sign-on is misconfigured here; tell your administrator.',
                            reason=exc.message) from None
    if config is None:
        raise SignInRefused('There is no such sign-in provider here.', reason='unknown or disabled provider',
                            status=404)
    return config


def _browser() -> str:
    return str(nicegui_app.storage.browser['id'])


def _callback_uri(request: Request, config: ProviderConfig) -> str:
    """The callback URL registered at the provider: the configured one, else this site's (as the request, or
    OIDC_REDIRECT_URI's origin behind a proxy, says)."""
    if config.redirect_uri:
        return config.redirect_uri
    return _site_url(request, config, CALLBACK_PATH.format(name=config.name))


def _site_url(request: Request, config: ProviderConfig, path: str) -> str:
    explicit = config.redirect_uri or get_settings().oidc_redirect_uri
    if explicit:
        parts = urlsplit(explicit)
        return urljoin(f'{parts.scheme}://{parts.netloc}', path)
    return urljoin(str(request.base_url), path)


def _refused(name: str, exc: SignInRefused) -> HTMLResponse:
    shown = name if name == ENV_PROVIDER or sso_config.NAME_PATTERN.fullmatch(name) else '(invalid name)'
    log.warning('sso %s: sign-in refused: %s', shown, exc.reason)
    return _page('Sign-in refused', exc.message, status=exc.status)


def _page(title: str, message: str, *, status: int) -> HTMLResponse:
    """A small page of its own (no websocket, no script): every text escaped."""
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} · MindRouter'
            '</title><meta name="viewport" content="width=device-width, initial-scale=1"><style>body{font-family:'
            'system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}'
            'h1{font-size:1.4rem}a{color:#2563eb}</style></head><body>'
            f'<h1 data-testid="sso-error-title">{html.escape(title)}</h1>'
            f'<p data-testid="sso-error">{html.escape(message)}</p>'
            '<p><a href="/login">Back to the sign-in page</a></p></body></html>')
    return HTMLResponse(body, status_code=status, headers={'Cache-Control': 'no-store'})
