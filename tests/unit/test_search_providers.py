"""Search providers against the fake SearXNG and Brave (sim/search.py): normalised results, counts, snippets
without Brave's highlighting, every failure an UpstreamError naming the provider (never the key); the request's
parameters; which provider is configured; the search settings an admin may change at run time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.admin import site_settings
from core.config import Settings
from core.errors import InvalidRequest, UpstreamError
from core.search import (
    BraveProvider,
    SearchResult,
    SearchUnavailable,
    SearxngProvider,
    parse_request,
    provider_for,
    strip_highlighting,
)
from sim.search import SearchSim, expected_results

KEY = 'brv-unit-test-subscription-token-0042'


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
async def searxng() -> AsyncIterator[SearchSim]:
    async with SearchSim('searxng', results=8) as fake:
        yield fake


@pytest.fixture
async def brave() -> AsyncIterator[SearchSim]:
    async with SearchSim('brave', key=KEY, results=15) as fake:
        yield fake


def as_dicts(results: list[SearchResult]) -> list[dict[str, str]]:
    return [result.as_dict() for result in results]


async def test_searxng_results_are_normalised_and_cut_to_the_count(searxng: SearchSim,
                                                                  http: httpx.AsyncClient) -> None:
    provider = SearxngProvider(searxng.url + '/', http)  # a trailing slash is fine

    three = await provider.search('quantum computing', count=3)
    assert as_dicts(three) == expected_results('searxng', 'quantum computing', 3)
    assert [r.source for r in three] == ['wikipedia', 'duckduckgo', 'bing']  # the engine that found it
    assert searxng.stats.last_params == {'q': 'quantum computing', 'format': 'json'}

    everything = await provider.search('quantum computing', count=20)
    assert len(everything) == 8  # all the instance found


async def test_brave_results_are_normalised_without_highlighting(brave: SearchSim, http: httpx.AsyncClient) -> None:
    provider = BraveProvider(KEY, brave.search_url, http)

    results = await provider.search("Ada's analytical engine", count=4)

    assert as_dicts(results) == expected_results('brave', "Ada's analytical engine", 4)
    assert all('<' not in r.snippet and '&#' not in r.snippet for r in results)
    assert results[0].snippet.startswith("Ada's analytical engine: it's result 1")
    assert results[0].title == "Ada's analytical engine - Wikipedia"
    assert [r.source for r in results] == ['Wikipedia', 'docs.python.org', 'Stack Overflow', 'GitHub']
    assert brave.stats.last_params == {'q': "Ada's analytical engine", 'count': '4'}  # Brave cuts the list itself


async def test_brave_with_nothing_found_is_an_empty_list(brave: SearchSim, http: httpx.AsyncClient) -> None:
    brave.config.results = 0
    assert await BraveProvider(KEY, brave.search_url, http).search('zzzz', count=5) == []


def test_highlighting_is_stripped_and_entities_decoded() -> None:
    assert strip_highlighting('<strong>Moon</strong> landing &amp; the <b>Apollo</b> &#x27;11&#x27;') == \
        "Moon landing & the Apollo '11'"
    assert strip_highlighting('a &lt;strong&gt; tag, as text') == 'a <strong> tag, as text'


@pytest.mark.parametrize(('fault', 'status', 'reason'), [
    ('error_500', 502, 'HTTP 500'),
    ('garbage', 502, 'not valid JSON'),
    ('refuse', 502, 'closed the connection'),
    ('hang', 504, 'timed out: no answer within 0.3 s'),
])
@pytest.mark.parametrize('kind', ['searxng', 'brave'])
async def test_provider_failures_are_upstream_errors_naming_the_provider(
        kind: str, fault: str, status: int, reason: str, http: httpx.AsyncClient,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with SearchSim(kind, key=KEY, fault=fault) as fake:  # type: ignore[arg-type]
        provider = SearxngProvider(fake.url, http, timeout=0.3) if kind == 'searxng' else \
            BraveProvider(KEY, fake.search_url, http, timeout=0.3)
        with pytest.raises(UpstreamError) as caught:
            await provider.search('anything', count=3)
    assert caught.value.status_code == status
    assert caught.value.message.startswith(f'Web search with {"SearXNG" if kind == "searxng" else "Brave Search"} ')
    assert reason in caught.value.message
    assert KEY not in caught.value.message and KEY not in caplog.text


async def test_a_connection_refused_is_a_502(http: httpx.AsyncClient) -> None:
    async with SearchSim('searxng') as fake:
        url = fake.url
    with pytest.raises(UpstreamError, match='cannot connect') as caught:  # nothing listens there any more
        await SearxngProvider(url, http).search('x', count=1)
    assert caught.value.status_code == 502


async def test_searxng_without_json_says_how_to_enable_it(searxng: SearchSim, http: httpx.AsyncClient) -> None:
    searxng.config.json_format = False
    with pytest.raises(UpstreamError) as caught:
        await SearxngProvider(searxng.url, http).search('x', count=1)
    assert caught.value.status_code == 502
    assert 'HTTP 403' in caught.value.message and 'json to search.formats' in caught.value.message


async def test_a_wrong_brave_key_is_explained_without_showing_it(brave: SearchSim, http: httpx.AsyncClient,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    wrong = 'brv-a-wrong-token-that-must-stay-secret'
    with pytest.raises(UpstreamError) as caught:
        await BraveProvider(wrong, brave.search_url, http).search('x', count=1)
    assert caught.value.status_code == 502
    assert 'HTTP 401' in caught.value.message and 'BRAVE_API_KEY' in caught.value.message
    assert 'SUBSCRIPTION_TOKEN_INVALID' in caught.value.message
    assert wrong not in caught.value.message and wrong not in caplog.text


async def test_an_address_that_is_no_search_service_is_explained(http: httpx.AsyncClient) -> None:
    async with SearchSim('brave', key=KEY) as fake:  # no /search there
        with pytest.raises(UpstreamError, match=r'HTTP 404\): is SEARXNG_URL the base URL'):
            await SearxngProvider(fake.url, http).search('x', count=1)


@pytest.mark.parametrize(('kind', 'answer', 'reason'), [
    ('searxng', {'answers': []}, 'no results list'), ('searxng', [1, 2], 'no results list'),
    ('brave', {'web': {'results': 'none'}}, 'no web.results list'), ('brave', [], 'not a JSON object'),
])
async def test_an_answer_of_the_wrong_shape_is_a_502(kind: str, answer: Any, reason: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    async with httpx.AsyncClient(transport=transport) as mocked:
        provider = SearxngProvider('http://searx.test', mocked) if kind == 'searxng' else \
            BraveProvider(KEY, 'http://brave.test/search', mocked)
        with pytest.raises(UpstreamError, match=reason) as caught:
            await provider.search('x', count=1)
    assert caught.value.status_code == 502


# -- the request's parameters and the provider in force ---------------------------------------------------------------
def settings(**values: Any) -> Settings:
    return Settings(**values)


@pytest.mark.parametrize(('body', 'param'), [
    ([], None), ('query', None), ({}, 'query'), ({'query': 5}, 'query'), ({'query': '  '}, 'query'),
    ({'query': 'x' * 1001}, 'query'), ({'query': 'x', 'max_results': 0}, 'max_results'),
    ({'query': 'x', 'max_results': 11}, 'max_results'), ({'query': 'x', 'max_results': '3'}, 'max_results'),
    ({'query': 'x', 'max_results': True}, 'max_results'), ({'query': 'x', 'max_results': 2.5}, 'max_results'),
    ({'query': 'x', 'provider': 'google'}, 'provider'), ({'query': 'x', 'provider': 'none'}, 'provider'),
])
def test_bad_parameters_are_refused_naming_them(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body, settings(search_provider='searxng'))
    assert caught.value.param == param and caught.value.status_code == 400


def test_parameters_default_to_the_settings() -> None:
    wanted = parse_request({'query': '  tides  '}, settings(search_provider='brave', search_max_results=7))
    assert (wanted.query, wanted.max_results, wanted.provider) == ('tides', 7, 'brave')
    chosen = parse_request({'query': 'x', 'max_results': 3.0, 'provider': 'searxng'}, settings())
    assert (chosen.max_results, chosen.provider) == (3, 'searxng')


def test_the_provider_must_be_turned_on_and_configured(http: httpx.AsyncClient) -> None:
    with pytest.raises(SearchUnavailable, match='not enabled'):
        provider_for(settings(searxng_url='http://searx.test'), 'searxng', http)
    with pytest.raises(SearchUnavailable, match='SEARXNG_URL'):
        provider_for(settings(search_provider='searxng', searxng_url=''), 'searxng', http)
    with pytest.raises(SearchUnavailable, match='BRAVE_API_KEY') as caught:
        provider_for(settings(search_provider='searxng', searxng_url='http://searx.test'), 'brave', http)
    assert caught.value.status_code == 503 and caught.value.code == 'search_unavailable'
    on = settings(search_provider='brave', brave_api_key=KEY, searxng_url='https://searx.test')
    assert isinstance(provider_for(on, 'brave', http), BraveProvider)
    assert isinstance(provider_for(on, 'searxng', http), SearxngProvider)


def test_search_max_results_is_capped_at_twenty() -> None:
    with pytest.raises(ValueError):
        Settings(search_max_results=21)


# -- the run-time settings ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(('name', 'value', 'expected'), [
    ('search_provider', ' Brave ', 'brave'), ('search_provider', 'none', 'none'),
    ('searxng_url', 'https://searx.example.edu/ ', 'https://searx.example.edu/'), ('searxng_url', '', ''),
    ('brave_api_key', KEY, KEY), ('brave_api_key', '', ''),
    ('search_timeout', 2.5, 2.5), ('search_timeout', '30', 30.0),
])
def test_search_settings_take_good_values(name: str, value: Any, expected: Any) -> None:
    assert site_settings.validate(name, value) == expected


@pytest.mark.parametrize(('name', 'value', 'message'), [
    ('search_provider', 'google', 'search_provider must be one of none, searxng, brave.'),
    ('searxng_url', 'ftp://searx.example.edu', 'searxng_url must be an http(s) URL'),
    ('searxng_url', 'searx.example.edu', 'searxng_url must be an http(s) URL'),
    ('brave_api_key', 'two words', 'brave_api_key must be text without spaces'),
    ('brave_api_key', 42, 'brave_api_key must be text without spaces'),
    ('search_timeout', 0, 'search_timeout must be a number between 1 and 300.'),
    ('search_timeout', 'soon', 'search_timeout must be a number between 1 and 300.'),
    ('search_timeout', float('nan'), 'search_timeout must be a number'),
])
def test_search_settings_refuse_bad_values_naming_the_setting(name: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        site_settings.validate(name, value)
    assert caught.value.message.startswith(message) and caught.value.param == name


def test_a_brave_key_is_never_shown_and_logged_only_as_a_fingerprint() -> None:
    assert site_settings.shown('brave_api_key', KEY) == '(hidden)'
    assert site_settings.shown('brave_api_key', '') == ''
    logged = site_settings.logged('brave_api_key', KEY)
    assert KEY not in logged and logged.startswith('(hidden) sha256:')
    assert logged != site_settings.logged('brave_api_key', KEY + 'x')  # a change of key shows as a change
    assert site_settings.shown('searxng_url', 'https://u:pw@searx.test/') == 'https://u:***@searx.test/'
