"""Errors in the caller's own API dialect, never FastAPI's bare `{"detail": ...}`.

    OpenAI     {"error": {"message", "type", "param", "code"}}
    Anthropic  {"type": "error", "error": {"type", "message"}}
    Ollama     {"error": "..."}

The dialect follows the path: /anthropic/* and the root alias /v1/messages* speak Anthropic, /api/* (except
/api/admin and /api/account) speaks Ollama, everything else speaks OpenAI.
"""

from __future__ import annotations

import logging
import math
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from app.responses import JSONResponse
from core.errors import DatabaseUnavailable, MindRouterError

log = logging.getLogger('mindrouter.api')


class Dialect(StrEnum):
    openai = 'openai'
    anthropic = 'anthropic'
    ollama = 'ollama'


_ANTHROPIC_TYPES = {
    400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error',
    413: 'request_too_large', 429: 'rate_limit_error', 503: 'overloaded_error', 529: 'overloaded_error',
}
_OPENAI_TYPES = {
    400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error',
    405: 'invalid_request_error', 413: 'invalid_request_error', 429: 'rate_limit_error',
}


def dialect_for(path: str) -> Dialect:
    if path.startswith(('/anthropic/', '/v1/messages/')) or path == '/v1/messages':
        return Dialect.anthropic
    if path.startswith('/api/') and not path.startswith(('/api/admin/', '/api/account/')):
        return Dialect.ollama
    return Dialect.openai


def error_response(dialect: Dialect, status: int, message: str, *, error_type: str | None = None,
                   param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any]
    if dialect is Dialect.anthropic:
        body = {'type': 'error', 'error': {'type': _ANTHROPIC_TYPES.get(status, 'api_error'), 'message': message}}
    elif dialect is Dialect.ollama:
        body = {'error': message}
    else:
        kind = error_type or _OPENAI_TYPES.get(status, 'server_error' if status >= 500 else 'invalid_request_error')
        body = {'error': {'message': message, 'type': kind, 'param': param, 'code': code}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MindRouterError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def domain_error_response(path: str, exc: MindRouterError) -> JSONResponse:
    """A domain error as the caller's dialect expects it (401s say how to authenticate)."""
    headers = {'WWW-Authenticate': 'Bearer'} if exc.status_code == 401 else None
    if exc.retry_after is not None:
        headers = {**(headers or {}), 'Retry-After': str(max(1, math.ceil(exc.retry_after)))}
    message = exc.message
    if isinstance(exc, DatabaseUnavailable):  # names the database's host: for the log and /readyz, not callers
        log.debug('%s: %s', path, exc.message)
        message = 'The service cannot reach its database; try again shortly.'
    return error_response(dialect_for(path), exc.status_code, message, error_type=exc.error_type,
                          param=exc.param, code=exc.code, headers=headers)


def unexpected_error_response(method: str, path: str, exc: BaseException) -> JSONResponse:
    log.error('unhandled error on %s %s', method, path, exc_info=exc)
    return error_response(dialect_for(path), 500, 'Internal server error.', code='internal_error')


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MindRouterError)
    return domain_error_response(request.url.path, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get('loc', ()) if part not in ('body', 'query', 'path', 'header')]
    param = '.'.join(location) or None
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get('msg', 'invalid request'))
    return error_response(dialect_for(request.url.path), 400, message, param=param, code='invalid_value')


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return error_response(dialect_for(request.url.path), exc.status_code, message,
                          headers=dict(exc.headers) if exc.headers else None)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return unexpected_error_response(request.method, request.url.path, exc)
