from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from app.factory import create_api_app
from core import migrations
from core.accounts import service as accounts
from core.audit.writer import AuditRecord, AuditWriter
from core.config import reset_settings
from core.db import Database

REMOTE = ('203.0.113.5', 40000)  # a caller on another machine (the default ASGI test client is 127.0.0.1)


@pytest.fixture
async def remote(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app, client=REMOTE),
                                 base_url='http://mindrouter.test') as http:
        yield http


async def _key(database: Database, username: str, role: str) -> str:
    async with database.session() as session:
        await accounts.create_user(session, username=username, role=role)
        _, key = await accounts.create_api_key(session, username=username)
    return key


async def test_healthz_answers_without_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get('/healthz')
    assert response.status_code == 200 and response.json() == {'status': 'ok'}


async def test_readyz_reports_the_database_and_schema(client: httpx.AsyncClient) -> None:
    response = await client.get('/readyz')
    assert response.status_code == 200
    assert response.json()['status'] == 'ready'
    assert response.json()['schema'] == migrations.head_revision()


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
async def test_readyz_is_503_with_the_reason_when_the_schema_is_not_at_head(configured_url: str) -> None:
    app = create_api_app()  # its database was never migrated
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                                       base_url='http://t') as http:
        response = await http.get('/readyz')
    assert response.status_code == 503
    assert response.json()['status'] == 'unavailable'
    assert 'mindrouter migrate' in response.json()['reason']


async def test_readyz_keeps_a_replica_ready_when_a_newer_release_has_migrated_the_schema(
        client: httpx.AsyncClient, database: Database) -> None:
    """A rolling upgrade: the new release's migration (an expansion) runs while this release still serves."""
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_a_newer_release'"))
    response = await client.get('/readyz')
    assert response.status_code == 200
    assert response.json() == {'status': 'ready', 'database': database.location,
                               'schema': '9999_from_a_newer_release', 'expected': migrations.head_revision()}


async def test_readyz_is_503_while_the_schema_is_behind_this_release(
        client: httpx.AsyncClient, database: Database) -> None:
    previous = sorted(migrations.known_revisions() - {migrations.head_revision()})[-1]
    async with database.engine.begin() as conn:
        await conn.execute(text('UPDATE alembic_version SET version_num = :revision'), {'revision': previous})
    response = await client.get('/readyz')
    assert response.status_code == 503
    assert f'at revision {previous}' in response.json()['reason']


async def test_readyz_is_503_naming_the_host_when_the_database_is_unreachable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('DATABASE_URL', 'mysql+aiomysql://mr:pw@127.0.0.1:9/mindrouter')  # port 9: nobody
    reset_settings()
    app = create_api_app()
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                                       base_url='http://t') as http:
        response = await http.get('/readyz')
    assert response.status_code == 503
    assert '127.0.0.1:9' in response.json()['reason']
    assert 'pw' not in response.json()['reason']


async def test_readyz_tells_an_anonymous_caller_the_status_only(remote: httpx.AsyncClient, database: Database) -> None:
    student = await _key(database, 'stu', 'student')
    for headers in ({}, {'X-API-Key': student}, {'X-API-Key': 'mr_not-a-key'}):
        response = await remote.get('/readyz', headers=headers)
        assert (response.status_code, response.json()) == (200, {'status': 'ready'})


async def test_readyz_tells_an_admin_key_where_the_database_is(remote: httpx.AsyncClient, database: Database) -> None:
    admin = await _key(database, 'root', 'admin')
    response = await remote.get('/readyz', headers={'Authorization': f'Bearer {admin}'})
    assert response.status_code == 200
    assert response.json() == {'status': 'ready', 'database': database.location, 'schema': migrations.head_revision()}


async def test_readyz_tells_a_caller_on_this_machine_but_not_one_behind_a_local_proxy(
        client: httpx.AsyncClient, database: Database) -> None:
    local = await client.get('/readyz')
    assert local.json()['database'] == database.location
    proxied = await client.get('/readyz', headers={'X-Forwarded-For': '203.0.113.5'})
    assert proxied.json() == {'status': 'ready'}


async def test_an_unreachable_database_is_named_to_no_anonymous_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('DATABASE_URL', 'mysql+aiomysql://mr:pw@db.internal.example:9/mindrouter')
    reset_settings()
    app = create_api_app()
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app, client=REMOTE),
                                                       base_url='http://t') as http:
        ready = await http.get('/readyz')
        models = await http.get('/v1/models', headers={'Authorization': 'Bearer mr_guessed'})
    assert (ready.status_code, ready.json()) == (503, {'status': 'unavailable'})
    assert models.status_code == 503 and models.json()['error']['code'] == 'database_unavailable'
    assert 'db.internal.example' not in models.text


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
async def test_metrics_show_the_event_loops_lag_tasks_and_the_process(client: httpx.AsyncClient) -> None:
    await asyncio.sleep(0.1)  # a few ticks of the lag monitor (every 25 ms by default)
    text = (await client.get('/metrics')).text
    ticks = re.search(r'^mindrouter_event_loop_lag_seconds_count (\S+)$', text, re.M)
    assert ticks is not None and float(ticks.group(1)) >= 1
    assert re.search(r'^mindrouter_event_loop_lag_seconds_bucket\{le="0.005"\} ', text, re.M)
    assert re.search(r'^mindrouter_event_loop_stalls_total\{cpu="busy"\} \d', text, re.M)
    tasks = re.search(r'^mindrouter_event_loop_tasks (\S+)$', text, re.M)
    assert tasks is not None and float(tasks.group(1)) >= 1  # the background writers' tasks at least
    assert re.search(r'^process_resident_memory_bytes \d', text, re.M)
    assert re.search(r'^process_open_fds \d', text, re.M)


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
@pytest.mark.parametrize('app_env', [{'AUDIT_FLUSH_INTERVAL': '60'}])
async def test_metrics_show_what_the_audit_trail_has_waiting_written_and_lost(app: FastAPI,
                                                                              client: httpx.AsyncClient) -> None:
    """An operator sees a writer that cannot keep up (pending only grows) before it has to drop anything."""
    audit: AuditWriter = app.state.audit
    for n in range(3):
        audit.submit(AuditRecord(request_id=f'm{n}', endpoint='/v1/chat/completions', status='completed',
                                 http_status=200))

    def figures(text: str) -> tuple[float, ...]:
        return tuple(float(re.search(rf'^mindrouter_audit_{name} (\S+)$', text, re.M).group(1))  # type: ignore[union-attr]
                     for name in ('pending', 'written_total', 'dropped_total'))

    assert figures((await client.get('/metrics')).text) == (3, 0, 0)
    assert await audit.flush()
    assert figures((await client.get('/metrics')).text) == (0, 3, 0)


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
@pytest.mark.parametrize('app_env', [{'LOOP_LAG_INTERVAL': '0'}])
async def test_the_lag_monitor_can_be_turned_off(client: httpx.AsyncClient) -> None:
    await asyncio.sleep(0.05)
    text = (await client.get('/metrics')).text
    assert re.search(r'^mindrouter_event_loop_lag_seconds_count 0.0$', text, re.M)
