"""The front door for the inference routes: an exact (method, path) lookup that calls the route's handler
directly, ahead of FastAPI's and NiceGUI's middleware and routing.

Measured here, that stack costs ~0.2 ms per request (middleware layers, route matching, dependency
solving) — a fifth of the gateway's whole budget — and the inference routes use none of it: they read
their own body, authenticate with the cached key check and render errors in their dialect. Every other
path (admin, probes, docs, the web UI) goes through the full application unchanged. The same handlers
stay registered on the FastAPI app, so /docs lists them and in-process tests can drive them either way.
Skipping the app's middleware, it bounds their bodies itself, by the same rule (app/body_limit.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.body_limit import bounded_receive, content_length
from app.errors import domain_error_response, unexpected_error_response
from app.security_headers import NOSNIFF
from core.errors import MindRouterError

Handler = Callable[[Request], Awaitable[Response]]


class HotPaths:
    def __init__(self, app: FastAPI, routes: Mapping[tuple[str, str], Handler], *, max_body: int) -> None:
        self.app = app
        self._routes = dict(routes)
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._routes.get((scope['method'], scope['path'])) if scope['type'] == 'http' else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope['app'] = self.app  # handlers reach app.state through request.app
        receive = bounded_receive(receive, content_length(scope), self._max_body)
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except MindRouterError as exc:
            response = domain_error_response(scope['path'], exc)
        except Exception as exc:
            response = unexpected_error_response(scope['method'], scope['path'], exc)
        response.raw_headers.append(NOSNIFF)  # what app/security_headers.py gives the rest, once per response
        await response(scope, receive, send)
