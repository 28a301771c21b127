"""Every request body bounded by MAX_REQUEST_BYTES before any route reads it, and before authentication.

One rule for every HTTP route, applied in one place: `BodyLimit` is the API app's outermost middleware (every
FastAPI route and the NiceGUI pages mounted on the app), and the inference routes' fast front door
(app/hotpath.py), which bypasses that middleware by design, applies the same `bounded_receive` to its routes.

- A declared Content-Length over the limit is refused with 413 at once, in the caller's dialect, without
  reading a byte of the body. The inference routes (`audited`) are the exception: they authenticate first
  (headers only) and then refuse the body, so that the refusal is the caller's and leaves its audit row
  (app/intake.py); their body is not read either.
- A body without Content-Length (chunked) is counted as it arrives and cut off with 413 as soon as it passes
  the limit; the rest is never read.
- A declared length within the limit costs nothing more: the server never delivers more body than declared.

Starlette's own RequestBodyLimitMiddleware answers in plain text and wraps every message sent (a cost per
streamed chunk), hence this one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import dialect_for, error_response


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body passes the limit. An HTTPException, because FastAPI passes those on
    from its own body parsing (anything else would become a 400); app/intake.py turns it into the domain's
    RequestTooLarge for the inference routes."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int, audited: Collection[str] = (),
                 larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.audited = frozenset(audited)
        self.larger = dict(larger or {})  # path -> its own limit: routes that take files (audio uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        declared = content_length(scope)
        limit = self.larger.get(scope['path'], self.limit) if self.larger else self.limit
        if declared is not None and declared > limit and scope['path'] not in self.audited:
            response = error_response(dialect_for(scope['path']), 413, declared_too_large(declared, limit),
                                      code='request_too_large')
            await response(scope, receive, send)
            return
        await self.app(scope, bounded_receive(receive, declared, limit), send)


def bounded_receive(receive: Receive, declared: int | None, limit: int) -> Receive:
    """`receive` as the application should see it: unchanged for a declared length within `limit`; raising
    BodyTooLarge at the first read for one over it; else counting, and raising once the body passes `limit`."""
    if declared is not None:
        if declared <= limit:
            return receive
        message = declared_too_large(declared, limit)

        async def refuse() -> Message:
            raise BodyTooLarge(message)

        return refuse
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message['type'] == 'http.request':
            size += len(message.get('body', b''))
            if size > limit:
                raise BodyTooLarge(f'request body exceeds the limit of {limit} bytes')
        return message

    return counted


def content_length(scope: Scope) -> int | None:
    """The declared body length, or None when there is none (a chunked body) or it is not a number (which the
    server refuses before the application sees the request)."""
    for name, value in scope['headers']:
        if name == b'content-length':
            return int(value) if value.isdigit() else None
    return None


def declared_too_large(declared: int, limit: int) -> str:
    return f'request body is {declared} bytes; the limit is {limit}'
