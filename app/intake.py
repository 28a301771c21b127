"""How an inference request comes in: its caller authenticated from the headers, its id given, its body read as
JSON, and every refusal before the pipeline (app/inference.py) answers it audited and sent back with its id.

    @router.post('/chat/completions')
    @intake.route('/v1/chat/completions')
    async def chat_completions(exchange: Exchange) -> Response: ...

Whatever the handler does, the caller gets `X-Request-ID` and the request leaves exactly one audit row: a bad
parameter (400), an unknown model (404), a body over MAX_REQUEST_BYTES (413, nothing of the body stored), a
malformed body, a client gone while sending it (499), a bug (500). A key that exists but may not be used now
(revoked, expired, its owner disabled) is audited as its owner's; a missing or unknown key names nobody, so it
stays out of the per-user trail. The pipeline records its own outcomes; this only records what it did not.
The success path pays one function call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app.body_limit import BodyTooLarge
from app.deps import require_api_key
from app.errors import domain_error_response, unexpected_error_response
from app.inference import CLIENT_CLOSED, Exchange
from core.accounts.api_keys import OwnerDisabled, RefusedKey
from core.errors import InvalidRequest, MindRouterError, RequestTooLarge

Work = Callable[[Exchange], Awaitable[Response]]
Handler = Callable[[Request], Awaitable[Response]]

_AUDITED: set[str] = set()


def route(endpoint: str) -> Callable[[Work], Handler]:
    """Make `work` an inference route's handler: `endpoint` is its path, as the audit trail names it."""

    def make(work: Work) -> Handler:
        _AUDITED.add(endpoint)

        async def handler(request: Request) -> Response:
            try:
                principal = await require_api_key(request)
            except (RefusedKey, OwnerDisabled) as exc:  # a real key: the refusal is its owner's
                exchange = Exchange(request, exc.principal, endpoint)
                return _refused(exchange, exc)
            exchange = Exchange(request, principal, endpoint)
            try:
                return await work(exchange)
            except MindRouterError as exc:
                return _refused(exchange, exc)
            except ClientDisconnect:  # gone while sending the body
                exchange.record(status='cancelled', http_status=CLIENT_CLOSED)
                return _with_id(Response(status_code=CLIENT_CLOSED), exchange)
            except Exception as exc:
                if not exchange.recorded:
                    exchange.record(status='failed', http_status=500, error=f'internal error: {type(exc).__name__}')
                return _with_id(unexpected_error_response(request.method, request.scope['path'], exc), exchange)

        # What FastAPI reads for /docs (not functools.wraps: FastAPI would then read `work`'s parameters).
        handler.__name__, handler.__qualname__ = work.__name__, work.__qualname__
        handler.__doc__, handler.__module__ = work.__doc__, work.__module__
        return handler

    return make


def audited_paths() -> frozenset[str]:
    """The paths of every route made by `route`: they authenticate before their body is refused (app/body_limit.py),
    so that a body over the limit is the caller's refusal, in the audit trail."""
    return frozenset(_AUDITED)


async def read_json(request: Request) -> Any:
    """The request body as JSON: 400 if it is missing or not JSON; 413 (RequestTooLarge) when app/body_limit.py
    cuts it off past MAX_REQUEST_BYTES, which it does before a byte too many is read."""
    try:
        body = await request.body()
    except BodyTooLarge as exc:
        raise RequestTooLarge(exc.detail) from None
    if not body:
        raise InvalidRequest('missing request body: send a JSON object')
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f'request body is not valid JSON: {exc}') from exc


def _refused(exchange: Exchange, exc: MindRouterError) -> Response:
    """The error in the caller's dialect, with the request's id; audited unless the pipeline already did."""
    if not exchange.recorded:
        exchange.record(status='failed', http_status=exc.status_code, error=exc.message)
    return _with_id(domain_error_response(exchange.request.scope['path'], exc), exchange)


def _with_id(response: Response, exchange: Exchange) -> Response:
    response.headers['X-Request-ID'] = exchange.request_id
    return response
