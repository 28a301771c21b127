"""What an admin changes through one process is in force in every process within seconds: run-time settings, key
revocation, roles, quotas and drains. Each change is made through replica 1 and observed through both replicas on
fresh connections, so that every worker of each answers some of the samples."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.cluster import cli
from tests.multiprocess.conftest import Fleet, chat, until

pytestmark = pytest.mark.slow  # real processes: a minute or more on a busy host

WITHIN = 10.0  # seconds: "a few", with room for a busy host (the periods involved are 0.5 to 3 s)
SAMPLES = 6  # requests per replica per look, each on its own connection


def everywhere(fleet: Fleet, ask: Callable[[str], httpx.Response], expect: Callable[[httpx.Response], bool]
               ) -> bool:
    return all(expect(ask(url)) for url in fleet.replicas for _ in range(SAMPLES))


def settle(fleet: Fleet, ask: Callable[[str], httpx.Response], expect: Callable[[httpx.Response], bool],
           what: str) -> float:
    """Seconds until every sample, through every replica, shows the change."""
    started = time.monotonic()
    until(lambda: everywhere(fleet, ask, expect), within=WITHIN, every=0.2, what=what)
    took = time.monotonic() - started
    print(f'{what}: after {took:.1f} s')  # the figure docs/cluster.md quotes (pytest -s)
    return took


def test_a_run_time_setting_reaches_every_process_by_redis(fleet: Fleet) -> None:
    """SETTINGS_RELOAD_INTERVAL is an hour here: a change seen within seconds came by the Redis message."""
    def cap(url: str) -> httpx.Response:
        return httpx.get(f'{url}/api/admin/settings', headers={'X-API-Key': fleet.admin_key}, timeout=30)

    def shows(value: int) -> Callable[[httpx.Response], bool]:
        return lambda answer: next(entry['value'] for entry in answer.json()['editable']
                                   if entry['name'] == 'context_length_cap') == value

    assert fleet.admin('PUT', '/api/admin/settings/context_length_cap', json={'value': 4096}).status_code == 200
    took = settle(fleet, cap, shows(4096), 'context_length_cap=4096 in every worker')
    assert took < WITHIN
    answer = chat(fleet.replicas[1], fleet.keys['alice'])  # and it is what requests use: num_ctx sent to Ollama
    assert answer.status_code == 200
    loaded = httpx.get(f'{fleet.sims["a"]}/api/ps').json()['models']
    assert [model['context_length'] for model in loaded] == [4096]

    assert fleet.admin('DELETE', '/api/admin/settings/context_length_cap').status_code == 200
    settle(fleet, cap, shows(32768), 'the reset in every worker')


def test_a_revoked_key_stops_working_in_every_process(fleet: Fleet) -> None:
    key = cli(fleet.env, 'create-key', 'bob', '--name', 'to-revoke').strip()

    def models(url: str) -> httpx.Response:
        return httpx.get(f'{url}/v1/models', headers={'Authorization': f'Bearer {key}'}, timeout=30)

    assert everywhere(fleet, models, lambda answer: answer.status_code == 200)  # cached as valid in the workers
    listed = fleet.admin('GET', '/api/admin/users/bob/keys').json()
    key_id = next(entry['id'] for entry in listed if entry['name'] == 'to-revoke')
    assert fleet.admin('POST', f'/api/admin/keys/{key_id}/revoke').status_code == 200
    settle(fleet, models, lambda answer: answer.status_code == 401, 'the revoked key refused by every worker')


def test_a_role_change_applies_in_every_process(fleet: Fleet) -> None:
    def settings(url: str) -> httpx.Response:
        return httpx.get(f'{url}/api/admin/settings', headers={'X-API-Key': fleet.keys['bob']}, timeout=30)

    assert everywhere(fleet, settings, lambda answer: answer.status_code == 403)
    try:
        assert fleet.admin('PATCH', '/api/admin/users/bob', json={'role': 'admin'}).status_code == 200
        settle(fleet, settings, lambda answer: answer.status_code == 200, 'bob is an admin in every worker')
    finally:
        assert fleet.admin('PATCH', '/api/admin/users/bob', json={'role': 'student'}).status_code == 200
    settle(fleet, settings, lambda answer: answer.status_code == 403, 'bob is a student again in every worker')


def test_a_quota_change_applies_in_every_process(fleet: Fleet) -> None:
    def one(url: str) -> httpx.Response:
        return chat(url, fleet.keys['bob'], max_tokens=1)

    try:
        fleet.admin('PUT', '/api/admin/users/bob/quota', json={
            'rpm_limit': 1, 'max_concurrent': 0, 'token_budget': 0, 'note': 'one a minute'}).raise_for_status()
        settle(fleet, one, lambda answer: answer.status_code == 429, 'one request a minute, in every worker')
    finally:
        fleet.admin('PUT', '/api/admin/users/bob/quota', json={
            'rpm_limit': 0, 'max_concurrent': 0, 'token_budget': 0, 'note': 'test suite'}).raise_for_status()
    settle(fleet, one, lambda answer: answer.status_code == 200, 'no limit again, in every worker')


def test_a_drain_applies_in_every_process(fleet: Fleet) -> None:
    registered = fleet.admin('POST', '/api/admin/backends/register', json={
        'name': 'b', 'url': fleet.sims['b'], 'engine': 'ollama', 'max_concurrent': 4})
    assert registered.status_code == 201, registered.text
    a = next(backend['id'] for backend in fleet.admin('GET', '/api/admin/backends').json() if backend['name'] == 'a')
    try:
        assert fleet.admin('POST', f'/api/admin/backends/{a}/drain').json()['status'] == 'draining'
        settle(fleet, lambda url: chat(url, fleet.keys['alice'], max_tokens=1),
               lambda answer: answer.headers.get('x-mindrouter-backend') == 'b', 'new requests avoid a everywhere')
        until(lambda: next(backend['status'] for backend in fleet.admin('GET', '/api/admin/backends', 1).json()
                           if backend['id'] == a) == 'disabled', within=WITHIN, what='the drain completes')
    finally:
        fleet.admin('POST', f'/api/admin/backends/{a}/enable').raise_for_status()
        b = registered.json()['id']
        fleet.admin('POST', f'/api/admin/backends/{b}/disable').raise_for_status()
    settle(fleet, lambda url: chat(url, fleet.keys['alice'], max_tokens=1),
           lambda answer: answer.headers.get('x-mindrouter-backend') == 'a', 'a back in rotation, b out, everywhere')
