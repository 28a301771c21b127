"""Who is calling: the API key from the request, checked against the cached authenticator.

`Caller` and `require_admin` are FastAPI dependencies for ordinary routes (admin routers declare
`require_admin` once, for all their routes). The hot inference routes call
`require_api_key(request)` themselves instead: FastAPI's dependency solving costs ~170 µs per request,
a sixth of the gateway's whole budget.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.accounts.api_keys import ApiKeyAuthenticator, Principal
from core.errors import PermissionDenied


def presented_api_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer KEY` or `X-API-Key: KEY` (what the Anthropic SDK sends)."""
    authorization = request.headers.get('authorization')
    if authorization:
        scheme, _, credentials = authorization.partition(' ')
        if scheme.lower() == 'bearer' and credentials.strip():
            return credentials.strip()
    return request.headers.get('x-api-key') or None


LOOPBACK_KEY_DIGEST = 'mindrouter.key_digest'  # ASGI scope key: the console's in-process calls
PRINCIPAL_SCOPE_KEY = 'mindrouter.principal'  # ASGI scope key: who called, for the access line (app/access_log.py)


async def require_api_key(request: Request) -> Principal:
    authenticator: ApiKeyAuthenticator = request.app.state.authenticator
    digest = request.scope.get(LOOPBACK_KEY_DIGEST)
    if digest is not None:  # set only by app/loopback.py, in this process: no client can reach the scope
        principal = await authenticator.authenticate_digest(digest)
    else:
        principal = await authenticator.authenticate(presented_api_key(request))
    request.scope[PRINCIPAL_SCOPE_KEY] = principal
    return principal


async def require_admin(principal: Annotated[Principal, Depends(require_api_key)]) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied('This endpoint needs an administrator API key.')
    return principal


Caller = Annotated[Principal, Depends(require_api_key)]
