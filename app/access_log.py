"""ACCESS_LOG=true: one line per HTTP request, written when its response is done.

`GET /v1/models 200 1.8 ms user=alice key=12 [request id]`: the method, the path without its query string,
the status, the time to the last byte and, when known, who called (the name and key id that app/deps.py found)
and the inference request's id. Never a header, a query string, a body: keys travel in headers, some clients
put secrets in query strings, and prompts are the audit trail's business (and only when it keeps them).

Off by default: the audit trail already records every inference request, and a line per request is work on the
hot path. uvicorn's own access line stays off either way: it logs the query string.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.deps import PRINCIPAL_SCOPE_KEY
from core.accounts.api_keys import Principal

log = logging.getLogger('mindrouter.access')

CLIENT_CLOSED = 499  # no response was sent: the client went away first


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method, path = scope['method'], scope['path']  # as the client sent them, before any routing
        status = CLIENT_CLOSED

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message['type'] == 'http.response.start':
                status = message['status']
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            if status == CLIENT_CLOSED:  # nothing was sent: the server error handler's 500
                status = 500
            raise
        finally:
            _write(method, path, status, (time.perf_counter() - started) * 1000, scope.get(PRINCIPAL_SCOPE_KEY))


def _write(method: str, path: str, status: int, duration_ms: float, principal: Principal | None) -> None:
    """The line; its request id (of an inference request) is the formatter's to add (app/logs.py)."""
    fields: dict[str, object] = {'method': method, 'path': path, 'status': status,
                                 'duration_ms': round(duration_ms, 1)}
    caller = ''
    if principal is not None:
        fields.update(user=principal.username, key_id=principal.key_id)
        caller = f' user={principal.username} key={principal.key_id}'
    log.info('%s %s %d %.1f ms%s', method, path, status, duration_ms, caller, extra={'http': fields})
