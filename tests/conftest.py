"""Shared fixtures: an isolated data folder per test, and databases on SQLite and (when present) MariaDB.

MariaDB runs when TEST_MARIADB_URL is set or a server answers on 127.0.0.1:3306. Under CI (CI=true) a
missing MariaDB fails the run instead of skipping: CI must exercise the production database.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql
import pytest
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from core import migrations
from core.accounts.sign_in import close_sign_in_guard
from core.config import reset_settings
from core.db import Database, dispose_database

pytest_plugins = ['nicegui.testing.user_plugin', 'tests.oidc']  # tests.oidc: the SSO tests' provider

# Under pytest-xdist (`make test` runs two workers): a worker takes a module's tests whole, so that its
# module-scoped servers start once; a package's whose fixtures are package- or session-wide too; and the suites
# that load the machine on purpose (many server processes, thousands of requests, minutes of traffic) are one unit
# of work, run one after another on one worker, first, so that none of them judges its timings while another one
# floods the cores, and the longest unit starts at once. (xdist's own `loadgroup` marks do not work with pytest 9.)
_PACKAGES_SHARING_FIXTURES = frozenset({'agents', 'browser', 'topology', 'multiprocess'})
_LOADING_THE_MACHINE = frozenset({'multiprocess', 'topology', 'soak', 'e2e/test_chaos_at_scale.py'})
_HEAVY = 'loading-the-machine'


def work_unit(nodeid: str) -> str:
    """What one xdist worker takes whole: the test's module, package, or the machine-loading suites."""
    path = nodeid.split('::', 1)[0].removeprefix('tests/')
    package = path.split('/', 1)[0] if '/' in path else ''
    if package in _LOADING_THE_MACHINE or path in _LOADING_THE_MACHINE:
        return _HEAVY
    return package if package in _PACKAGES_SHARING_FIXTURES else path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: work_unit(item.nodeid) != _HEAVY)  # stable: modules stay whole and in order


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's, when it runs
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # in collection order: the heavy unit first
    return WorkUnits(config, log)


_SETTINGS_ENV = ('DATABASE_URL', 'SECRET_KEY', 'REDIS_URL', 'MINDROUTER_ENV', 'ARTIFACT_STORAGE_PATH', 'DATA_DIR')


@pytest.fixture(autouse=True)
async def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    """Each test gets its own data folder and default settings, whatever the developer's shell exports,
    and no process-wide database (or sign-in throttle) survives into the next test."""
    for name in _SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / 'data'
    monkeypatch.setenv('DATA_DIR', str(data_dir))
    monkeypatch.setenv('GC_FREEZE', 'false')  # hundreds of apps in one process: frozen cycles would never be freed
    monkeypatch.setenv('GC_GEN0_THRESHOLD', '0')  # and the test process keeps Python's own collection schedule
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    reset_settings()
    yield data_dir
    await dispose_database()
    await close_sign_in_guard()  # failed sign-ins counted in one test must not lock the next one out
    reset_settings()


@pytest.fixture(params=['sqlite', pytest.param('mariadb', marks=pytest.mark.mariadb)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend."""
    if request.param == 'sqlite':
        yield f'sqlite+aiosqlite:///{tmp_path / "test.db"}'
        return
    with scratch_mariadb('mrtest') as url:
        yield url


@contextmanager
def scratch_mariadb(prefix: str) -> Iterator[str]:
    """A new, empty database `<prefix>_<random>` on the test MariaDB server (skips when there is none), dropped
    afterwards; its URL."""
    server = mariadb_server_url()
    name = f'{prefix}_{uuid.uuid4().hex[:12]}'
    _mariadb_admin(server, f'CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        _mariadb_admin(server, f'DROP DATABASE IF EXISTS `{name}`')


@pytest.fixture
def configured_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The empty database, with the settings (DATABASE_URL) pointing at it."""
    monkeypatch.setenv('DATABASE_URL', database_url)
    reset_settings()
    return database_url


@pytest.fixture
def migrated_url(configured_url: str) -> str:
    """The configured database, at the head revision."""
    migrations.upgrade(configured_url)
    return configured_url


@pytest.fixture
async def database(migrated_url: str) -> AsyncIterator[Database]:
    db = Database(migrated_url)
    yield db
    await db.dispose()


def mariadb_server_url() -> str:
    """The MariaDB server for tests (no database part), or skip / fail as documented above."""
    url = os.environ.get('TEST_MARIADB_URL')
    if url:
        return url
    if _port_open('127.0.0.1', 3306):
        return 'mysql+aiomysql://root@127.0.0.1:3306'
    if os.environ.get('CI'):
        pytest.fail('MariaDB is not reachable on 127.0.0.1:3306 and TEST_MARIADB_URL is unset; CI must test on it')
    pytest.skip('MariaDB not available (set TEST_MARIADB_URL or start a server on 127.0.0.1:3306)')


def _mariadb_admin(server_url: str, statement: str) -> None:
    url = make_url(server_url)
    connection = pymysql.connect(host=url.host or '127.0.0.1', port=url.port or 3306, user=url.username or 'root',
                                 password=url.password or '', autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    """A Redis server for tests (TEST_REDIS_URL, else 127.0.0.1:6379/0); skipped when absent, except under CI,
    which must exercise the fleet-wide ledger. Tests share the server: each uses its own key prefix."""
    url = os.environ.get('TEST_REDIS_URL')
    if url:
        return url
    if _port_open('127.0.0.1', 6379):
        return 'redis://127.0.0.1:6379/0'
    if os.environ.get('CI'):
        pytest.fail('Redis is not reachable on 127.0.0.1:6379 and TEST_REDIS_URL is unset; CI must test on it')
    pytest.skip('Redis not available (set TEST_REDIS_URL or start a server on 127.0.0.1:6379)')


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own in the shared Redis; every key under it is deleted afterwards."""
    name = f'mrtest-{uuid.uuid4().hex[:12]}'
    yield name
    client = aioredis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f'*{name}*')]
    if keys:
        await client.delete(*keys)
    await client.aclose()
