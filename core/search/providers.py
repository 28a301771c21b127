"""Web search providers: one call to a search service, its answer normalised to `SearchResult`s.

    SearxngProvider   GET {base}/search?q=...&format=json     a SearXNG instance (json format enabled)
    BraveProvider     GET {url}?q=...&count=N                 the Brave Search API (X-Subscription-Token)

Every failure is an `UpstreamError` that names the provider and the reason, never the API key: 502 when the
service refuses, errs, cannot be reached or answers something unreadable; 504 when it does not answer within
`timeout` seconds (the whole call, however slowly the bytes drip). The providers share the caller's
`httpx.AsyncClient`; they hold no connection of their own.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from core.errors import UpstreamError

log = logging.getLogger('mindrouter.search')

PROVIDERS: tuple[str, ...] = ('searxng', 'brave')
LABELS = {'searxng': 'SearXNG', 'brave': 'Brave Search'}
MAX_ERROR_DETAIL = 200  # characters of a provider's own error message passed on

_HIGHLIGHT = re.compile(r'</?(?:strong|b|em)\s*>', re.IGNORECASE)
_SPACES = re.compile(r'\s+')


@dataclass(frozen=True, slots=True)
class SearchResult:
    title: str
    url: str
    snippet: str
    source: str  # the engine (SearXNG) or site (Brave) the result came from

    def as_dict(self) -> dict[str, str]:
        return {'title': self.title, 'url': self.url, 'snippet': self.snippet, 'source': self.source}


class SearchProvider(Protocol):
    name: str  # 'searxng' | 'brave'

    async def search(self, query: str, *, count: int) -> list[SearchResult]: ...


class SearxngProvider:
    """A SearXNG instance's JSON API. Instances serve only `html` unless their settings.yml lists `json` under
    `search.formats`; without it they answer 403, which this provider explains."""

    name = 'searxng'

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, timeout: float = 10.0) -> None:
        self.endpoint = f'{base_url.rstrip("/")}/search'
        self.client = client
        self.timeout = timeout

    async def search(self, query: str, *, count: int) -> list[SearchResult]:
        params = {'q': query, 'format': 'json'}
        body = await _call(self.name, self.client, self.endpoint, params=params, headers={'Accept': 'application/json'},
                           timeout=self.timeout, explain=_searxng_refusal)
        if not isinstance(body, dict) or not isinstance(body.get('results'), list):
            _fail(self.name, 'the answer has no results list (is SEARXNG_URL a SearXNG instance?)')
        results = []
        for item in body['results']:
            if not isinstance(item, dict) or not _text(item.get('url')):
                continue
            engines = item.get('engines')
            source = _text(item.get('engine')) or (_text(engines[0]) if isinstance(engines, list) and engines else '')
            results.append(SearchResult(title=_clean(_text(item.get('title'))) or _text(item['url']),
                                        url=_text(item['url']), snippet=_clean(_text(item.get('content'))),
                                        source=source or _hostname(_text(item['url']))))
            if len(results) == count:
                break
        return results


class BraveProvider:
    """The Brave Search API's web search: results in `web.results` (absent when nothing was found), the query
    words in each description highlighted with <strong>, which is taken out."""

    name = 'brave'

    def __init__(self, api_key: str, url: str, client: httpx.AsyncClient, *, timeout: float = 10.0) -> None:
        self.api_key = api_key
        self.url = url
        self.client = client
        self.timeout = timeout

    async def search(self, query: str, *, count: int) -> list[SearchResult]:
        headers = {'X-Subscription-Token': self.api_key, 'Accept': 'application/json'}
        body = await _call(self.name, self.client, self.url, params={'q': query, 'count': str(count)},
                           headers=headers, timeout=self.timeout, explain=_brave_refusal, secret=self.api_key)
        if not isinstance(body, dict):
            _fail(self.name, 'the answer is not a JSON object')
        web = body.get('web')
        if web is None:  # Brave leaves `web` out when nothing matched
            return []
        items = web.get('results') if isinstance(web, dict) else None
        if not isinstance(items, list):
            _fail(self.name, 'the answer has no web.results list')
        results = []
        for item in items:
            if not isinstance(item, dict) or not _text(item.get('url')):
                continue
            url = _text(item['url'])
            profile, meta = item.get('profile'), item.get('meta_url')
            source = (_text(profile.get('name')) if isinstance(profile, dict) else '') or \
                (_text(meta.get('hostname')) if isinstance(meta, dict) else '') or _hostname(url)
            results.append(SearchResult(title=_clean(_text(item.get('title'))) or url, url=url,
                                        snippet=_clean(_text(item.get('description'))), source=source))
            if len(results) == count:
                break
        return results


def strip_highlighting(text: str) -> str:
    """Brave's snippet markup out (<strong>, and <b>/<em> should it ever use them), HTML entities decoded."""
    return html.unescape(_HIGHLIGHT.sub('', text))


async def _call(provider: str, client: httpx.AsyncClient, url: str, *, params: dict[str, str],
                headers: dict[str, str], timeout: float, explain: Callable[[httpx.Response], str | None],
                secret: str = '') -> Any:
    """GET the provider's JSON; every way it can fail becomes an UpstreamError naming the provider."""
    try:
        async with asyncio.timeout(timeout):  # the whole call, not each read
            response = await client.get(url, params=params, headers=headers, timeout=timeout)
    except (TimeoutError, httpx.TimeoutException) as exc:
        message = f'Web search with {LABELS[provider]} timed out: no answer within {timeout:g} s'
        log.warning('search: %s (%s)', message, type(exc).__name__)
        raise UpstreamError(message, status_code=504) from exc
    except httpx.ConnectError as exc:
        _fail(provider, 'cannot connect to it (refused, unreachable or unknown host)', exc)
    except httpx.RemoteProtocolError as exc:
        _fail(provider, 'it closed the connection without answering', exc)
    except httpx.HTTPError as exc:
        _fail(provider, f'the request failed ({type(exc).__name__})', exc)
    if response.status_code != 200:
        reason = explain(response) or f'it answered HTTP {response.status_code}'
        _fail(provider, _scrub(reason, secret))
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        _fail(provider, 'its answer is not valid JSON', exc)


def _fail(provider: str, reason: str, cause: BaseException | None = None) -> NoReturn:
    message = f'Web search with {LABELS[provider]} failed: {reason}'
    log.warning('search: %s%s', message, f' ({cause!r})' if cause is not None else '')
    raise UpstreamError(message, status_code=502) from cause


def _searxng_refusal(response: httpx.Response) -> str | None:
    if response.status_code == 403:
        return ('the instance refused JSON output (HTTP 403): enable it by adding json to search.formats in '
                "the instance's settings.yml")
    if response.status_code == 429:
        return ("the instance's limiter refused the gateway (HTTP 429): turn server.limiter off or let the "
                "gateway's address pass its bot detection")
    if response.status_code == 404:
        return 'no search page at this address (HTTP 404): is SEARXNG_URL the base URL of a SearXNG instance?'
    return None


def _brave_refusal(response: httpx.Response) -> str | None:
    """Brave's own error: {"type": "ErrorResponse", "error": {"status", "code", "detail"}}."""
    hint = {401: ' (check BRAVE_API_KEY)', 403: ' (check BRAVE_API_KEY and its plan)',
            429: ' (rate limited: the subscription allows no more now)'}.get(response.status_code, '')
    try:
        error = orjson.loads(response.content).get('error')
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return f'it answered HTTP {response.status_code}{hint}'
    code, detail = _text(error.get('code')), _text(error.get('detail'))[:MAX_ERROR_DETAIL]
    said = ': '.join(part for part in (code, detail) if part)
    return f'it answered HTTP {response.status_code}{hint}' + (f': {said}' if said else '')


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, '***') if secret else text


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ''


def _clean(text: str) -> str:
    return _SPACES.sub(' ', strip_highlighting(text)).strip()


def _hostname(url: str) -> str:
    try:
        return urlsplit(url).hostname or ''
    except ValueError:
        return ''
