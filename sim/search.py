"""Fake web search services for the gateway's POST /v1/search: a SearXNG instance and the Brave Search API.

Both answer deterministically from the query (`fake_results`, and `expected_results` for what a gateway should
make of them), speak their service's wire format, and have the sidecar fake's faults: refuse, hang, error_500,
garbage.

    SearXNG  GET /search?q=...&format=json       results[].title/url/content/engine; 403 unless format=json
                                                 (and always with `json_format` off: JSON disabled in settings.yml)
    Brave    GET /res/v1/web/search?q=...&count=N  X-Subscription-Token required (401 in Brave's error shape);
                                                 web.results[].title/url/description (query words in <strong>)

    async with SearchSim('brave', key='k') as fake:
        r = await client.get(fake.search_url, params={'q': 'moon'}, headers={'X-Subscription-Token': 'k'})
        fake.config.fault = 'hang'   # read on every request

CLI: `python -m sim searxng --port 8888`, `python -m sim brave --port 8889 --key K`. Control routes (no key,
never faulted): GET/POST /_sim/config, GET /_sim/stats.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hmac
import html
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast
from urllib.parse import parse_qs, quote

from sim.fake_server import FakeServer, KnobSet, json_response
from sim.http import AbortConnection, Handler, Request, Response

Kind = Literal['searxng', 'brave']
KINDS: tuple[Kind, ...] = ('searxng', 'brave')
SEARCH_FAULTS: tuple[str, ...] = ('refuse', 'hang', 'error_500', 'garbage')
DEFAULT_PORTS: dict[Kind, int] = {'searxng': 8888, 'brave': 8889}  # 8888: SearXNG's own default
DEFAULT_KEY = 'sim-brave-key'
BRAVE_PATH = '/res/v1/web/search'
BRAVE_MAX_COUNT = 20
BRAVE_MAX_QUERY = 400

# (hostname, site name = Brave's profile.name, SearXNG engine, path): result i comes from SITES[i % 8].
SITES: tuple[tuple[str, str, str, str], ...] = (
    ('en.wikipedia.org', 'Wikipedia', 'wikipedia', 'wiki'),
    ('docs.python.org', 'Python documentation', 'duckduckgo', 'search'),
    ('stackoverflow.com', 'Stack Overflow', 'bing', 'questions'),
    ('github.com', 'GitHub', 'brave', 'topics'),
    ('www.bbc.co.uk', 'BBC News', 'qwant', 'news'),
    ('arxiv.org', 'arXiv', 'google', 'abs'),
    ('developer.mozilla.org', 'MDN Web Docs', 'mojeek', 'docs'),
    ('www.nature.com', 'Nature', 'startpage', 'articles'),
)
NO_PROFILE = 'docs.python.org'  # Brave results from here carry no profile: a client falls back to meta_url.hostname

Json = dict[str, Any]


@dataclasses.dataclass
class SearchSimConfig(KnobSet):
    """Knobs, read on every request."""

    key: str = DEFAULT_KEY  # Brave: the X-Subscription-Token it accepts
    results: int = 10  # results a search finds (Brave answers at most `count` of them)
    json_format: bool = True  # SearXNG: False = an instance whose settings.yml does not list json (403)
    delay_ms: float = 0.0  # before every answer
    fault: str | None = None

    def validate(self) -> None:
        if not self.key:
            raise ValueError('key must not be empty')
        if isinstance(self.results, bool) or not isinstance(self.results, int) or not 0 <= self.results <= 100:
            raise ValueError('results must be an integer from 0 to 100')
        if not isinstance(self.delay_ms, int | float) or self.delay_ms < 0:
            raise ValueError('delay_ms must be >= 0')
        if self.fault is not None and self.fault not in SEARCH_FAULTS:
            raise ValueError(f'fault must be one of {", ".join(SEARCH_FAULTS)} or null')



@dataclasses.dataclass
class SearchSimStats:
    searches: int = 0  # answered with results
    unauthorized: int = 0  # Brave: 401
    forbidden: int = 0  # SearXNG: 403
    invalid: int = 0  # 400 / 422: no query, bad count
    faults: int = 0
    last_params: dict[str, str] | None = None  # the query string of the latest search request

    def to_dict(self) -> Json:
        return dataclasses.asdict(self)


def _words(query: str) -> list[str]:
    return re.findall(r'\w+', query)


def fake_results(query: str, n: int) -> list[Json]:
    """The `n` results both fakes find for `query`: title, url, text, site (hostname, name, engine)."""
    slug = quote('-'.join(word.lower() for word in _words(query)) or 'search')
    found = []
    for i in range(n):
        host, name, engine, path = SITES[i % len(SITES)]
        found.append({'title': f'{query} - {name}', 'url': f'https://{host}/{path}/{slug}-{i + 1}',
                      'text': f"{query}: it's result {i + 1}, found by {engine} on {name}, all about {query}.",
                      'host': host, 'name': name, 'engine': engine})
    return found


def expected_results(kind: Kind, query: str, count: int, *, results: int = 10) -> list[dict[str, str]]:
    """What a gateway should return for `query` from this fake: {title, url, snippet, source}, at most `count`."""
    return [{'title': ' '.join(r['title'].split()), 'url': r['url'], 'snippet': ' '.join(r['text'].split()),
             'source': r['engine'] if kind == 'searxng' else (r['host'] if r['host'] == NO_PROFILE else r['name'])}
            for r in fake_results(query, min(count, results))]


def searxng_body(query: str, n: int) -> Json:
    results = [{'url': r['url'], 'title': r['title'], 'content': r['text'], 'engine': r['engine'],
                'engines': [r['engine']], 'template': 'default.html',
                'parsed_url': ['https', r['host'], r['url'].split(r['host'], 1)[1], '', '', ''],
                'positions': [i + 1], 'score': round(1 / (i + 1), 4), 'category': 'general',
                'publishedDate': None, 'thumbnail': ''}
               for i, r in enumerate(fake_results(query, n))]
    return {'query': query, 'number_of_results': 0, 'results': results, 'answers': [], 'corrections': [],
            'infoboxes': [], 'suggestions': [f'{query} tutorial', f'{query} news'], 'unresponsive_engines': []}


def highlight(text: str, query: str) -> str:
    """Brave's description: HTML-escaped, every query word (of two letters or more) in <strong>."""
    escaped = html.escape(text)
    words = sorted({w for w in _words(query) if len(w) > 1}, key=len, reverse=True)
    if not words:
        return escaped
    pattern = re.compile(r'\b(' + '|'.join(re.escape(w) for w in words) + r')\b', re.IGNORECASE)
    return pattern.sub(r'<strong>\1</strong>', escaped)


def brave_body(query: str, n: int) -> Json:
    results = []
    for r in fake_results(query, n):
        item: Json = {'title': html.escape(r['title']), 'url': r['url'], 'is_source_local': False,
                      'is_source_both': False, 'description': highlight(r['text'], query), 'language': 'en',
                      'family_friendly': True, 'type': 'search_result', 'subtype': 'generic',
                      'meta_url': {'scheme': 'https', 'netloc': r['host'], 'hostname': r['host'],
                                   'favicon': f'https://imgs.search.brave.com/{r["host"]}.png',
                                   'path': _brave_path(r['url'].split(r['host'], 1)[1])}}
        if r['host'] != NO_PROFILE:
            item['profile'] = {'name': r['name'], 'url': f'https://{r["host"]}/', 'long_name': r['host'],
                               'img': f'https://imgs.search.brave.com/{r["host"]}.png'}
        results.append(item)
    body: Json = {'type': 'search', 'query': {'original': query, 'show_strict_warning': False,
                                              'is_navigational': False, 'spellcheck_off': True, 'country': 'us'},
                  'mixed': {'type': 'mixed', 'main': [{'type': 'web', 'index': i, 'all': False}
                                                      for i in range(len(results))], 'top': [], 'side': []}}
    if results:  # Brave leaves `web` out when nothing matched
        body['web'] = {'type': 'search', 'results': results, 'family_friendly': True}
    return body


def _brave_path(path: str) -> str:
    """Brave's breadcrumb of a URL path: '/wiki/moon-1' -> '\u203a wiki \u203a moon-1'."""
    crumb = '\u203a'  # single right-pointing angle quotation mark
    return f'{crumb} ' + f' {crumb} '.join(path.strip('/').split('/'))


def brave_error(status: int, code: str, detail: str, meta: Json | None = None) -> Response:
    error = {'id': str(uuid.uuid4()), 'status': status, 'code': code, 'detail': detail, 'meta': meta or {}}
    return _json(status, {'type': 'ErrorResponse', 'error': error, 'time': int(time.time())})


_json = json_response


class SearchSim(FakeServer):
    """A fake SearXNG (`kind='searxng'`) or Brave Search API (`kind='brave'`) on a TCP port. `config` is live."""

    def __init__(self, kind: Kind, config: SearchSimConfig | None = None, **knobs: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f'kind must be one of {", ".join(KINDS)}')
        super().__init__()
        self.kind = kind
        self.config: SearchSimConfig = dataclasses.replace(config) if config is not None else SearchSimConfig()
        self.config.update(knobs)
        self.stats: SearchSimStats = SearchSimStats()
        if kind == 'searxng':
            self.router.add('GET', '/search', self._faulty(self._searxng))
            self.router.add('POST', '/search', self._faulty(self._searxng))
        else:
            self.router.add('GET', BRAVE_PATH, self._faulty(self._brave))
        self.listen(server_header='granian' if kind == 'searxng' else None)

    @property
    def search_url(self) -> str:
        """SearXNG: the base URL (SEARXNG_URL); Brave: the web search endpoint (BRAVE_API_URL)."""
        return self.url if self.kind == 'searxng' else f'{self.url}{BRAVE_PATH}'

    # -- routes ---------------------------------------------------------------------------------------------------
    def _faulty(self, handler: Callable[[Request, dict[str, str]], Response]) -> Handler:
        """Transport faults first (a broken server fails whatever the request), then the delay, then the handler."""

        async def faulty(request: Request) -> Response:
            fault = self.config.fault
            if fault is not None:
                self.stats.faults += 1
                if fault == 'refuse':
                    raise AbortConnection
                if fault == 'hang':
                    await asyncio.get_running_loop().create_future()  # cancelled when the client or server goes
                if fault == 'error_500':
                    if self.kind == 'brave':
                        return brave_error(500, 'INTERNAL_ERROR', 'An internal error occurred.')
                    return Response(500, b'<!doctype html><title>500 Internal Server Error</title>',
                                    'text/html; charset=utf-8')
                return Response(200, b'{"results": [{"title": <garbage', 'application/json')
            if self.config.delay_ms:
                await asyncio.sleep(self.config.delay_ms / 1000)
            params = {name: values[-1] for name, values in parse_qs(request.query, keep_blank_values=True).items()}
            if request.method == 'POST':  # SearXNG takes its form as a POST body too
                form = parse_qs(request.body.decode('utf-8', 'replace'), keep_blank_values=True)
                params.update({name: values[-1] for name, values in form.items()})
            return handler(request, params)

        return faulty

    def _searxng(self, request: Request, params: dict[str, str]) -> Response:
        if params.get('format', 'html') != 'json' or not self.config.json_format:
            self.stats.forbidden += 1  # what Flask's abort(403) sends
            return Response(403, b'<!doctype html>\n<html lang=en>\n<title>403 Forbidden</title>\n<h1>Forbidden</h1>\n'
                                 b"<p>You don't have the permission to access the requested resource.</p>\n",
                            'text/html; charset=utf-8')
        query = params.get('q', '').strip()
        if not query:
            self.stats.invalid += 1
            return _json(400, {'error': 'No query'})
        self.stats.searches += 1
        self.stats.last_params = params
        return _json(200, searxng_body(query, self.config.results))

    def _brave(self, request: Request, params: dict[str, str]) -> Response:
        presented = request.headers.get('x-subscription-token')
        if presented is None or not hmac.compare_digest(presented.encode('utf-8', 'surrogateescape'),
                                                        self.config.key.encode()):
            self.stats.unauthorized += 1
            return brave_error(401, 'SUBSCRIPTION_TOKEN_INVALID', 'The provided subscription token is invalid.',
                               {'component': 'authentication'})
        query = params.get('q', '')
        count_text = params.get('count', str(BRAVE_MAX_COUNT))
        problems = []
        if not query.strip():
            problems.append({'type': 'missing', 'loc': ['query', 'q'], 'msg': 'Field required'})
        elif len(query) > BRAVE_MAX_QUERY:
            problems.append({'type': 'string_too_long', 'loc': ['query', 'q'],
                             'msg': f'String should have at most {BRAVE_MAX_QUERY} characters'})
        if not count_text.isdigit() or not 1 <= int(count_text) <= BRAVE_MAX_COUNT:
            problems.append({'type': 'less_than_equal', 'loc': ['query', 'count'],
                             'msg': f'Input should be a valid integer from 1 to {BRAVE_MAX_COUNT}'})
        if problems:
            self.stats.invalid += 1
            return brave_error(422, 'VALIDATION', 'Unable to validate request parameter(s)', {'errors': problems})
        self.stats.searches += 1
        self.stats.last_params = params
        headers = [('X-RateLimit-Limit', '1, 15000'), ('X-RateLimit-Policy', '1;w=1, 15000;w=2592000'),
                   ('X-RateLimit-Remaining', f'0, {max(0, 15000 - self.stats.searches)}')]
        return _json(200, brave_body(query, min(int(count_text), self.config.results)), headers)


# -- CLI: python -m sim searxng|brave ... -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m sim', description='Run a fake SearXNG or Brave Search API.')
    p.add_argument('kind', choices=KINDS)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, help='TCP port (default 8888 for searxng, 8889 for brave; 0 = any free port)')
    p.add_argument('--key', default=DEFAULT_KEY, help='brave: the X-Subscription-Token clients must send')
    p.add_argument('--results', type=int, default=10, help='results a search finds')
    p.add_argument('--delay-ms', type=float, default=0.0, help='delay before every answer')
    p.add_argument('--no-json', dest='json_format', action='store_false',
                   help='searxng: answer 403 to format=json too, as an instance with JSON disabled does')
    p.add_argument('--fault', choices=SEARCH_FAULTS)
    return p


async def serve(kind: Kind, config: SearchSimConfig, host: str, port: int) -> None:
    await SearchSim(kind, config).serve_until_signalled(kind, host, port)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kind = cast(Kind, args.kind)
    try:
        config = SearchSimConfig(key=args.key, results=args.results, json_format=args.json_format,
                                 delay_ms=args.delay_ms, fault=args.fault)
        config.validate()
    except ValueError as e:
        print(f'python -m sim {kind}: {e}', file=sys.stderr)
        return 2
    asyncio.run(serve(kind, config, args.host, DEFAULT_PORTS[kind] if args.port is None else args.port))
    return 0
