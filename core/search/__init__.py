"""Web search for POST /v1/search: pluggable providers (SearXNG, Brave Search), one result shape.

    providers.py   SearchProvider protocol, SearchResult, SearxngProvider, BraveProvider
    service.py     the request's parameters (400s), the configured provider (503s), the shared HTTP client

docs/search.md describes the API and its settings; sim/search.py fakes both providers for tests.
"""

from core.search.providers import (
    LABELS,
    PROVIDERS,
    BraveProvider,
    SearchProvider,
    SearchResult,
    SearxngProvider,
    strip_highlighting,
)
from core.search.service import (
    MAX_QUERY_CHARS,
    SearchQuery,
    SearchUnavailable,
    new_client,
    parse_request,
    provider_for,
)

__all__ = [
    'LABELS',
    'MAX_QUERY_CHARS',
    'PROVIDERS',
    'BraveProvider',
    'SearchProvider',
    'SearchQuery',
    'SearchResult',
    'SearchUnavailable',
    'SearxngProvider',
    'new_client',
    'parse_request',
    'provider_for',
    'strip_highlighting',
]
