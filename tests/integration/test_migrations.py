"""The migration chain on SQLite and MariaDB: upgrade, no drift against the models, downgrade."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect, text

from core import migrations
from core.db import Database


async def _tables(url: str) -> set[str]:
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await database.dispose()


async def test_upgrade_head_on_an_empty_database_creates_every_table_and_the_roles(database_url: str) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)

    assert {'roles', 'users', 'api_keys', 'quota_overrides', 'quota_requests', 'alembic_version'} <= await _tables(
        database_url)
    database = Database(database_url)
    try:
        assert await database.schema_revision() == migrations.head_revision()
        async with database.engine.connect() as conn:
            roles = (await conn.execute(text(
                'SELECT name, scheduler_weight, token_budget, rpm_limit, max_concurrent FROM roles'))).all()
    finally:
        await database.dispose()
    weights = {name: weight for name, weight, *_ in roles}
    assert weights == {'admin': 10, 'faculty': 3, 'staff': 2, 'student': 1}
    assert all(rpm > 0 and concurrent > 0 for *_, rpm, concurrent in roles)


def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    migrations.upgrade(database_url)
    migrations.check(database_url)  # raises if autogenerate would emit anything


async def test_downgrade_to_base_removes_everything_and_upgrade_works_again(database_url: str) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)
    await asyncio.to_thread(migrations.downgrade, database_url, 'base')
    assert await _tables(database_url) <= {'alembic_version'}

    await asyncio.to_thread(migrations.upgrade, database_url)
    assert 'users' in await _tables(database_url)


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
async def test_an_empty_database_reports_no_revision(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert await database.schema_revision() is None
    finally:
        await database.dispose()
