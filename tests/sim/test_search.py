"""The fake SearXNG and Brave Search API: their wire shapes, their refusals, their faults, their CLI."""

from __future__ import annotations

import re
import select
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sim.search import BRAVE_PATH, SearchSim, fake_results

ROOT = Path(__file__).resolve().parents[2]
KEY = 'a-brave-test-key'


@pytest.fixture
async def searxng() -> AsyncIterator[SearchSim]:
    async with SearchSim('searxng') as fake:
        yield fake


@pytest.fixture
async def brave() -> AsyncIterator[SearchSim]:
    async with SearchSim('brave', key=KEY, results=12) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        yield client


async def test_searxng_answers_its_json_format_with_results_about_the_query(searxng: SearchSim,
                                                                          http: httpx.AsyncClient) -> None:
    response = await http.get(f'{searxng.url}/search', params={'q': 'solar eclipse', 'format': 'json'})

    assert response.status_code == 200 and response.headers['content-type'] == 'application/json'
    body = response.json()
    assert body['query'] == 'solar eclipse'
    assert {'results', 'answers', 'corrections', 'infoboxes', 'suggestions', 'unresponsive_engines'} <= set(body)
    results = body['results']
    assert len(results) == 10
    for result in results:
        assert {'title', 'url', 'content', 'engine', 'engines', 'parsed_url', 'positions', 'score'} <= set(result)
        assert 'solar eclipse' in result['title'] and 'solar eclipse' in result['content']
        assert result['url'].startswith('https://') and 'solar-eclipse' in result['url']
        assert result['engines'] == [result['engine']]
    assert len({r['url'] for r in results}) == 10  # every result its own page
    again = await http.get(f'{searxng.url}/search', params={'q': 'solar eclipse', 'format': 'json'})
    assert again.json()['results'] == results  # deterministic
    assert searxng.stats.searches == 2 and searxng.stats.last_params == {'q': 'solar eclipse', 'format': 'json'}


async def test_searxng_refuses_other_formats_and_json_when_disabled(searxng: SearchSim,
                                                                   http: httpx.AsyncClient) -> None:
    html_page = await http.get(f'{searxng.url}/search', params={'q': 'x'})
    assert html_page.status_code == 403 and 'Forbidden' in html_page.text
    assert (await http.get(f'{searxng.url}/search', params={'q': 'x', 'format': 'csv'})).status_code == 403
    assert (await http.get(f'{searxng.url}/search', params={'format': 'json'})).json() == {'error': 'No query'}

    searxng.config.json_format = False  # an instance whose settings.yml lists only html
    assert (await http.get(f'{searxng.url}/search', params={'q': 'x', 'format': 'json'})).status_code == 403
    assert searxng.stats.forbidden == 3 and searxng.stats.invalid == 1


async def test_searxng_takes_its_form_as_a_post_body_too(searxng: SearchSim, http: httpx.AsyncClient) -> None:
    response = await http.post(f'{searxng.url}/search', data={'q': 'tides', 'format': 'json'})
    assert response.status_code == 200 and response.json()['results'][0]['title'] == 'tides - Wikipedia'


async def test_brave_answers_web_results_with_highlighted_descriptions(brave: SearchSim,
                                                                       http: httpx.AsyncClient) -> None:
    response = await http.get(brave.search_url, params={'q': "Ada's engine", 'count': '3'},
                              headers={'X-Subscription-Token': KEY, 'Accept': 'application/json'})

    assert response.status_code == 200
    body = response.json()
    assert body['type'] == 'search' and body['query']['original'] == "Ada's engine"
    assert body['web']['type'] == 'search'
    results = body['web']['results']
    assert len(results) == 3
    first = results[0]
    assert first['title'] == 'Ada&#x27;s engine - Wikipedia'  # Brave escapes HTML in what it sends
    assert first['description'].startswith('<strong>Ada</strong>&#x27;s <strong>engine</strong>: it&#x27;s')
    assert first['profile']['name'] == 'Wikipedia' and first['meta_url']['hostname'] == 'en.wikipedia.org'
    assert 'profile' not in results[1] and results[1]['meta_url']['hostname'] == 'docs.python.org'
    assert [r['url'] for r in results] == [r['url'] for r in fake_results("Ada's engine", 3)]
    assert brave.stats.last_params == {'q': "Ada's engine", 'count': '3'}
    assert 'x-ratelimit-remaining' in response.headers


async def test_brave_count_defaults_to_twenty_and_results_cap_it(brave: SearchSim, http: httpx.AsyncClient) -> None:
    response = await http.get(brave.search_url, params={'q': 'x'}, headers={'X-Subscription-Token': KEY})
    assert len(response.json()['web']['results']) == 12  # the fake finds 12

    brave.config.results = 0
    nothing = await http.get(brave.search_url, params={'q': 'x'}, headers={'X-Subscription-Token': KEY})
    assert nothing.status_code == 200 and 'web' not in nothing.json()  # as Brave: no web section at all


@pytest.mark.parametrize('headers', [{}, {'X-Subscription-Token': 'wrong'}])
async def test_brave_wants_its_subscription_token(brave: SearchSim, http: httpx.AsyncClient,
                                                  headers: dict[str, str]) -> None:
    response = await http.get(brave.search_url, params={'q': 'x'}, headers=headers)

    assert response.status_code == 401
    body = response.json()
    assert body['type'] == 'ErrorResponse'
    assert (body['error']['status'], body['error']['code']) == (401, 'SUBSCRIPTION_TOKEN_INVALID')
    assert body['error']['detail'] and body['error']['id']
    assert brave.stats.unauthorized == 1 and brave.stats.searches == 0


@pytest.mark.parametrize('params', [{}, {'q': 'x', 'count': '21'}, {'q': 'x', 'count': 'many'}, {'q': 'x' * 401}])
async def test_brave_refuses_invalid_parameters_with_422(brave: SearchSim, http: httpx.AsyncClient,
                                                         params: dict[str, str]) -> None:
    response = await http.get(brave.search_url, params=params, headers={'X-Subscription-Token': KEY})
    assert response.status_code == 422
    assert response.json()['error']['code'] == 'VALIDATION' and response.json()['error']['meta']['errors']


@pytest.mark.parametrize('kind', ['searxng', 'brave'])
async def test_faults_break_the_search_route_but_never_the_control_routes(kind: str,
                                                                          http: httpx.AsyncClient) -> None:
    async with SearchSim(kind, key=KEY) as fake:  # type: ignore[arg-type]
        search = {'url': f'{fake.url}/search' if kind == 'searxng' else fake.search_url,
                  'params': {'q': 'x', 'format': 'json'}, 'headers': {'X-Subscription-Token': KEY}}

        assert (await http.post(f'{fake.url}/_sim/config', json={'fault': 'error_500'})).json()['fault'] == 'error_500'
        failed = await http.get(**search)
        assert failed.status_code == 500
        if kind == 'brave':
            assert failed.json()['error']['status'] == 500

        fake.config.fault = 'garbage'
        garbage = await http.get(**search)
        assert garbage.status_code == 200
        with pytest.raises(ValueError):
            garbage.json()

        fake.config.fault = 'refuse'
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(**search)

        fake.config.fault = 'hang'
        with pytest.raises(httpx.ReadTimeout):
            await http.get(**search, timeout=0.3)

        assert (await http.get(f'{fake.url}/_sim/stats')).json()['faults'] == 4
        assert (await http.post(f'{fake.url}/_sim/config', json={'fault': None})).status_code == 200
        assert (await http.get(**search)).status_code == 200
        bad = await http.post(f'{fake.url}/_sim/config', json={'fault': 'melt'})
        assert bad.status_code == 400 and 'fault must be one of' in bad.json()['error']


async def test_an_unknown_kind_or_knob_is_refused() -> None:
    with pytest.raises(ValueError, match='kind must be one of'):
        SearchSim('google')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='unknown knob'):
        SearchSim('brave', colour='red')


@pytest.mark.parametrize(('kind', 'extra'), [('searxng', []), ('brave', ['--key', KEY])])
def test_the_cli_runs_a_fake_until_sigterm(kind: str, extra: list[str]) -> None:
    cmd = [sys.executable, '-m', 'sim', kind, '--port', '0', '--results', '3', *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, 'the fake did not start within 20 s'
        line = proc.stdout.readline()
        match = re.search(rf'sim {kind} listening on (http://127\.0\.0\.1:\d+)', line)
        assert match, line
        url = match.group(1)
        if kind == 'searxng':
            answer = httpx.get(f'{url}/search', params={'q': 'cli', 'format': 'json'}, trust_env=False)
            assert len(answer.json()['results']) == 3
        else:
            answer = httpx.get(f'{url}{BRAVE_PATH}', params={'q': 'cli'}, headers={'X-Subscription-Token': KEY},
                               trust_env=False)
            assert len(answer.json()['web']['results']) == 3
        proc.terminate()
        assert proc.wait(10) == 0
        assert 'Traceback' not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_the_cli_refuses_a_bad_knob() -> None:
    done = subprocess.run([sys.executable, '-m', 'sim', 'brave', '--port', '0', '--results', '-1'], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and 'results must be an integer' in done.stderr
