"""Unknown paths under the API prefixes get a JSON error in the caller's dialect.

Without this they would fall through to the NiceGUI mount and come back as an HTML page, which no
API client can read. Installed after every other route, so it only sees what nothing else matched.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.routing import Match

API_PREFIXES = ('/v1', '/api', '/anthropic')
_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']


def install(app: FastAPI) -> None:
    for prefix in API_PREFIXES:
        app.add_api_route(f'{prefix}/{{path:path}}', unknown_endpoint, methods=_METHODS, include_in_schema=False)


async def unknown_endpoint(request: Request) -> None:
    # A route that matches the path but not the method answers PARTIAL: that is a 405, not a 404.
    if any(route.matches(request.scope)[0] is Match.PARTIAL for route in request.app.router.routes):
        raise HTTPException(405, f'Method {request.method} is not allowed on {request.url.path}')
    raise HTTPException(404, f'Unknown endpoint: {request.method} {request.url.path}')
