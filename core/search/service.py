"""What a search request asks for, and which configured provider answers it.

The settings are read on every request (an admin may change the provider, its URL or key and the timeout at
run time, core.admin.site_settings), so a provider is built per request around the one shared HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.config import Settings
from core.errors import InvalidRequest, MindRouterError
from core.search.providers import LABELS, PROVIDERS, BraveProvider, SearchProvider, SearxngProvider

MAX_QUERY_CHARS = 1000


class SearchUnavailable(MindRouterError):
    """Web search is turned off, or the provider asked for is not configured: 503."""

    status_code = 503
    error_type = 'server_error'
    code = 'search_unavailable'


@dataclass(frozen=True, slots=True)
class SearchQuery:
    query: str
    max_results: int
    provider: str  # 'searxng' | 'brave'


def parse_request(body: Any, settings: Settings) -> SearchQuery:
    """The request body, checked: 400 naming the parameter when something is wrong."""
    if not isinstance(body, dict):
        raise InvalidRequest('the request body must be a JSON object with a query')
    query = body.get('query')
    if query is None:
        raise InvalidRequest('query is required: the text to search the web for', param='query')
    if not isinstance(query, str):
        raise InvalidRequest('query must be a string', param='query')
    query = query.strip()
    if not query:
        raise InvalidRequest('query must not be empty', param='query')
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(f'query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}', param='query')
    ceiling = settings.search_max_results
    count = body.get('max_results')
    if count is None:
        count = ceiling
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= ceiling:
        raise InvalidRequest(f'max_results must be a whole number from 1 to {ceiling}', param='max_results')
    provider = body.get('provider')
    if provider is None:
        provider = settings.search_provider
    elif provider not in PROVIDERS:
        raise InvalidRequest(f'provider must be one of {", ".join(PROVIDERS)} (or left out for the default)',
                             param='provider')
    return SearchQuery(query=query, max_results=count, provider=provider)


def provider_for(settings: Settings, name: str, client: httpx.AsyncClient) -> SearchProvider:
    """The provider `name`, configured from the live settings; 503 when search is off or it is not configured."""
    if settings.search_provider == 'none':
        raise SearchUnavailable('Web search is not enabled on this gateway: an administrator sets SEARCH_PROVIDER '
                                '(searxng or brave) to turn it on.')
    if name == 'searxng':
        if not _is_http_url(settings.searxng_url):
            raise SearchUnavailable(f'{LABELS[name]} is not configured on this gateway: an administrator sets '
                                    'SEARXNG_URL to the base URL of a SearXNG instance.')
        return SearxngProvider(settings.searxng_url, client, timeout=settings.search_timeout)
    if name == 'brave':
        if not settings.brave_api_key:
            raise SearchUnavailable(f'{LABELS[name]} is not configured on this gateway: an administrator sets '
                                    'BRAVE_API_KEY.')
        if not _is_http_url(settings.brave_api_url):
            raise SearchUnavailable(f'{LABELS[name]} is not configured on this gateway: BRAVE_API_URL is not an '
                                    'http(s) URL.')
        return BraveProvider(settings.brave_api_key, settings.brave_api_url, client, timeout=settings.search_timeout)
    raise SearchUnavailable(f'There is no search provider named {name!r}: SEARCH_PROVIDER must be searxng or brave.')


def new_client() -> httpx.AsyncClient:
    """The HTTP client every search shares (timeouts are set per call, from the live SEARCH_TIMEOUT)."""
    return httpx.AsyncClient(trust_env=False, follow_redirects=True, timeout=httpx.Timeout(10.0),
                             limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ('http', 'https') and bool(parts.hostname)
