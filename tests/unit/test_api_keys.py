"""The cached key check: what the request path does with a presented key, without a database."""

from __future__ import annotations

import asyncio

import pytest

from core.accounts.api_keys import ApiKeyAuthenticator, Principal
from core.accounts.security import api_key_digest
from core.errors import AuthenticationFailed, DatabaseUnavailable, PermissionDenied


def _principal(**changes: object) -> Principal:
    fields: dict[str, object] = dict(key_id=1, key_status='active', key_expires_at=None, user_id=7, username='alice',
                                     user_active=True, role='student', is_admin=False, scheduler_weight=1)
    fields.update(changes)
    return Principal(**fields)  # type: ignore[arg-type]


class FakeKeyStore:
    """Stands in for the database: digest -> principal, counting lookups."""

    def __init__(self) -> None:
        self.rows: dict[str, Principal] = {}
        self.lookups = 0
        self.down = False
        self.delay = 0.0

    async def load(self, digest: str) -> Principal | None:
        self.lookups += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise DatabaseUnavailable('cannot reach the database at db:3306: refused')
        return self.rows.get(digest)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> FakeKeyStore:
    return FakeKeyStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def authenticator(store: FakeKeyStore, clock: Clock) -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(store.load, ttl=3.0, clock=clock, wall_clock=lambda: 1_700_000_000.0)


async def test_a_valid_key_is_looked_up_once_then_served_from_memory(
        authenticator: ApiKeyAuthenticator, store: FakeKeyStore) -> None:
    store.rows[api_key_digest('mr_alice')] = _principal()

    for _ in range(100):
        assert (await authenticator.authenticate('mr_alice')).username == 'alice'
    assert store.lookups == 1


async def test_a_revoked_key_stops_working_once_the_cached_answer_expires(
        authenticator: ApiKeyAuthenticator, store: FakeKeyStore, clock: Clock) -> None:
    digest = api_key_digest('mr_alice')
    store.rows[digest] = _principal()
    await authenticator.authenticate('mr_alice')

    store.rows[digest] = _principal(key_status='revoked')  # revoked by another process
    clock.now += 2.9
    await authenticator.authenticate('mr_alice')  # still within the TTL
    clock.now += 0.2
    with pytest.raises(AuthenticationFailed, match='revoked'):
        await authenticator.authenticate('mr_alice')


async def test_missing_unknown_expired_and_disabled(authenticator: ApiKeyAuthenticator, store: FakeKeyStore) -> None:
    store.rows[api_key_digest('mr_old')] = _principal(key_expires_at=1_600_000_000.0)
    store.rows[api_key_digest('mr_disabled')] = _principal(user_active=False)

    with pytest.raises(AuthenticationFailed, match='Missing API key'):
        await authenticator.authenticate(None)
    with pytest.raises(AuthenticationFailed, match='Invalid API key'):
        await authenticator.authenticate('mr_nobody')
    with pytest.raises(AuthenticationFailed, match='expired'):
        await authenticator.authenticate('mr_old')
    with pytest.raises(PermissionDenied, match='disabled'):
        await authenticator.authenticate('mr_disabled')


async def test_unknown_keys_are_cached_too_so_a_flood_of_bad_keys_does_not_reach_the_database(
        authenticator: ApiKeyAuthenticator, store: FakeKeyStore) -> None:
    for _ in range(50):
        with pytest.raises(AuthenticationFailed):
            await authenticator.authenticate('mr_guess')
    assert store.lookups == 1


async def test_a_flood_of_distinct_bad_keys_cannot_evict_good_ones(store: FakeKeyStore, clock: Clock) -> None:
    authenticator = ApiKeyAuthenticator(store.load, ttl=3.0, max_entries=10, clock=clock)
    store.rows[api_key_digest('mr_alice')] = _principal()
    await authenticator.authenticate('mr_alice')

    for n in range(100):
        with pytest.raises(AuthenticationFailed):
            await authenticator.authenticate(f'mr_guess_{n}')
    lookups = store.lookups
    await authenticator.authenticate('mr_alice')
    assert store.lookups == lookups


async def test_concurrent_first_requests_share_one_lookup(
        authenticator: ApiKeyAuthenticator, store: FakeKeyStore) -> None:
    store.rows[api_key_digest('mr_alice')] = _principal()
    store.delay = 0.01

    results = await asyncio.gather(*(authenticator.authenticate('mr_alice') for _ in range(20)))
    assert {r.username for r in results} == {'alice'}
    assert store.lookups == 1


async def test_a_database_outage_keeps_recently_valid_keys_working(
        authenticator: ApiKeyAuthenticator, store: FakeKeyStore, clock: Clock) -> None:
    store.rows[api_key_digest('mr_alice')] = _principal()
    await authenticator.authenticate('mr_alice')
    store.down = True
    clock.now += 10

    assert (await authenticator.authenticate('mr_alice')).username == 'alice'
    with pytest.raises(DatabaseUnavailable):
        await authenticator.authenticate('mr_never_seen')


async def test_last_use_is_recorded_in_memory_and_drained_for_the_batch_writer(
        authenticator: ApiKeyAuthenticator, store: FakeKeyStore) -> None:
    store.rows[api_key_digest('mr_alice')] = _principal(key_id=42)
    await authenticator.authenticate('mr_alice')

    assert authenticator.drain_usage() == {42: 1_700_000_000.0}
    assert authenticator.drain_usage() == {}
