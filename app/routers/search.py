"""Web search (POST /v1/search): a query sent to the configured provider (SearXNG or Brave Search), the results in
one shape whatever the provider. Authenticated and limited like the inference routes, one audit row per request
on every exit path, errors in the OpenAI envelope. core.search does the work; docs/search.md is the contract.

The HTTP client all searches share is made on the first search and kept on `app.state.search_client`; this
router's lifespan (merged into the app's by `include_router`) closes it when the app shuts down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, FastAPI
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app import inference, intake
from app.inference import CLIENT_CLOSED, Exchange
from app.responses import JSONResponse
from core.errors import MindRouterError
from core.search import MAX_QUERY_CHARS, PROVIDERS, new_client, parse_request, provider_for

ENDPOINT = '/v1/search'
CLIENT_STATE = 'search_client'


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's own lifespan: closes the shared search client, if a search ever made one."""
    try:
        yield
    finally:
        client: httpx.AsyncClient | None = getattr(app.state, CLIENT_STATE, None)
        setattr(app.state, CLIENT_STATE, None)
        if client is not None:
            await client.aclose()


router = APIRouter(prefix='/v1', tags=['Search'], lifespan=_lifespan)

_BODY_SCHEMA: dict[str, Any] = {
    'type': 'object', 'required': ['query'],
    'properties': {
        'query': {'type': 'string', 'minLength': 1, 'maxLength': MAX_QUERY_CHARS, 'description': 'what to search for'},
        'max_results': {'type': 'integer', 'minimum': 1, 'maximum': 20,
                        'description': 'results wanted, at most SEARCH_MAX_RESULTS (also the default)'},
        'provider': {'type': 'string', 'enum': list(PROVIDERS),
                     'description': 'a configured provider; the default is SEARCH_PROVIDER'},
    },
}


@router.post('/search', openapi_extra={'requestBody': {
    'required': True, 'content': {'application/json': {'schema': _BODY_SCHEMA}}}})
@intake.route(ENDPOINT)
async def search(exchange: Exchange) -> Response:
    """Search the web: `{"object": "list", "query", "provider", "data": [{"title", "url", "snippet", "source"}]}`.
    400 naming the parameter, 429 past the caller's limits, 503 when search is off or the provider is not
    configured, 502 when the provider fails, 504 when it does not answer within SEARCH_TIMEOUT."""
    request = exchange.request
    settings = exchange.settings
    provider_name: str = settings.search_provider  # until the body says otherwise: what the audit row names
    prompt: str | None = None
    try:
        body = await intake.read_json(request)
        if settings.audit_log_prompts and isinstance(body, dict) and isinstance(body.get('query'), str):
            prompt = body['query'].strip()  # recorded even when another parameter is refused
        wanted = parse_request(body, settings)
        provider_name = wanted.provider
        provider = provider_for(settings, wanted.provider, _client(request.app))
        await exchange.admit()
        began = time.perf_counter()
        results = await inference.until_disconnect(request, provider.search(wanted.query,
                                                                               count=wanted.max_results))
        provider_ms = (time.perf_counter() - began) * 1000
    except (asyncio.CancelledError, ClientDisconnect):
        exchange.record(status='cancelled', http_status=CLIENT_CLOSED, model=f'search:{provider_name}',
                        backend_name=provider_name, prompt=prompt)
        return Response(status_code=CLIENT_CLOSED)
    except MindRouterError as exc:
        exchange.record(status='failed', http_status=exc.status_code, model=f'search:{provider_name}',
                        backend_name=provider_name, error=exc.message, prompt=prompt)
        raise
    except Exception as exc:  # a bug: still one audit row, then the app's 500 in the OpenAI envelope
        exchange.record(status='failed', http_status=500, model=f'search:{provider_name}',
                        backend_name=provider_name, error=f'internal error: {type(exc).__name__}', prompt=prompt)
        raise
    data = [result.as_dict() for result in results]
    response = JSONResponse({'object': 'list', 'query': wanted.query, 'provider': provider_name, 'data': data})
    overhead = max(0.0, exchange.elapsed_ms() - provider_ms)
    response.headers['X-Request-ID'] = exchange.request_id
    response.headers['X-MindRouter-Backend'] = provider_name
    response.headers['X-MindRouter-Queue-Ms'] = '0.00'
    response.headers['X-MindRouter-Overhead-Ms'] = f'{overhead:.3f}'
    exchange.record(status='completed', http_status=200, overhead_ms=overhead, model=f'search:{provider_name}',
                    backend_name=provider_name, prompt=prompt,
                    response=orjson.dumps(data).decode() if settings.audit_log_responses else None)
    return response


def _client(app: FastAPI) -> httpx.AsyncClient:
    """The app's shared search client, made on first use (no await between the check and the assignment)."""
    client: httpx.AsyncClient | None = getattr(app.state, CLIENT_STATE, None)
    if client is None:
        client = new_client()
        setattr(app.state, CLIENT_STATE, client)
    return client
