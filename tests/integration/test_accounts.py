"""Account services on SQLite and MariaDB: what an operator creates, and what the database keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import MetaData, select

from core.accounts import service as accounts
from core.accounts.security import api_key_digest
from core.db import Database
from core.errors import ApiKeyNotFound, DuplicateUser, InvalidRequest, UnknownRole, UserNotFound
from core.models import ApiKeyStatus, User, utcnow


async def _count_users(database: Database) -> int:
    async with database.session() as session:
        return len(list(await session.exec(select(User.id))))


async def test_create_user_with_a_role_and_a_password(database: Database) -> None:
    async with database.session() as session:
        user = await accounts.create_user(session, username='alice', role='faculty', password='s3cret-pass',
                                          email='alice@example.edu', full_name='Alice A.')
        role = await accounts.get_role(session, name='faculty')

    assert user.id is not None and user.role_id == role.id and user.is_active
    async with database.session() as session:
        assert await accounts.authenticate_password(session, username='alice', password='s3cret-pass')
        assert await accounts.authenticate_password(session, username='alice', password='wrong') is None
        assert await accounts.authenticate_password(session, username='nobody', password='s3cret-pass') is None


async def test_unknown_role_and_duplicates_are_refused_and_nothing_is_written(database: Database) -> None:
    async with database.session() as session:
        await accounts.create_user(session, username='alice', role='student', email='a@example.edu')
    before = await _count_users(database)

    async with database.session() as session:
        with pytest.raises(UnknownRole, match="unknown role 'wizard'"):
            await accounts.create_user(session, username='bob', role='wizard')
        with pytest.raises(DuplicateUser, match="username 'alice'"):
            await accounts.create_user(session, username='alice', role='student')
        with pytest.raises(DuplicateUser, match='email'):
            await accounts.create_user(session, username='alice2', role='student', email='a@example.edu')
        with pytest.raises(InvalidRequest, match='invalid username'):
            await accounts.create_user(session, username='no spaces please', role='student')
    assert await _count_users(database) == before


async def test_keys_resolve_to_their_owner_and_role(database: Database) -> None:
    async with database.session() as session:
        await accounts.create_user(session, username='alice', role='faculty')
        row, plaintext = await accounts.create_api_key(session, username='alice', name='laptop')
    principal = await accounts.principal_loader(database)(api_key_digest(plaintext))

    assert principal is not None
    assert (principal.key_id, principal.username, principal.role) == (row.id, 'alice', 'faculty')
    assert principal.scheduler_weight == 3 and not principal.is_admin
    assert principal.key_status == ApiKeyStatus.active


async def test_key_for_a_missing_user_is_refused(database: Database) -> None:
    async with database.session() as session:
        with pytest.raises(UserNotFound, match="no user named 'ghost'"):
            await accounts.create_api_key(session, username='ghost')


async def test_revoke_by_id_or_prefix(database: Database) -> None:
    async with database.session() as session:
        await accounts.create_user(session, username='alice', role='student')
        first, _ = await accounts.create_api_key(session, username='alice')
        second, _ = await accounts.create_api_key(session, username='alice')

        assert (await accounts.revoke_api_key(session, key_ref=str(first.id))).status == ApiKeyStatus.revoked
        revoked = await accounts.revoke_api_key(session, key_ref=second.prefix)
        assert revoked.status == ApiKeyStatus.revoked and revoked.revoked_at is not None
        with pytest.raises(ApiKeyNotFound):
            await accounts.revoke_api_key(session, key_ref='mr_nothere')


async def test_expiry_and_last_use_round_trip_as_utc(database: Database) -> None:
    expires = utcnow() + timedelta(days=30)
    async with database.session() as session:
        await accounts.create_user(session, username='alice', role='student')
        row, plaintext = await accounts.create_api_key(session, username='alice', expires_at=expires)
        assert row.id is not None
        await accounts.record_key_usage(session, last_used={row.id: expires - timedelta(days=1)})
    async with database.session() as session:
        [(key, owner)] = await accounts.list_api_keys(session, username='alice')
    principal = await accounts.principal_loader(database)(api_key_digest(plaintext))

    assert owner == 'alice'
    assert key.expires_at is not None and abs((key.expires_at - expires).total_seconds()) < 1
    assert key.last_used_at is not None and key.last_used_at.tzinfo is not None
    assert principal is not None and principal.key_expires_at == pytest.approx(expires.timestamp(), abs=1)


async def test_seed_creates_the_four_demo_users_once(database: Database) -> None:
    async with database.session() as session:
        assert await accounts.seed_demo_users(session) == ['admin', 'faculty1', 'staff1', 'student1']
        assert await accounts.seed_demo_users(session) == []
        admin = await accounts.authenticate_password(session, username='admin', password='admin123')
    assert admin is not None


async def test_the_database_never_holds_a_plaintext_key_or_password(database: Database) -> None:
    secrets_given = ['correct-horse-battery']
    async with database.session() as session:
        await accounts.create_user(session, username='alice', role='student', password=secrets_given[0])
        for name in ('one', 'two'):
            _, plaintext = await accounts.create_api_key(session, username='alice', name=name)
            secrets_given.append(plaintext)
            secrets_given.append(plaintext.removeprefix('mr_'))

    # Read every column of every row of every table, as text, and look for any of the secrets.
    metadata = MetaData()
    async with database.engine.connect() as conn:
        await conn.run_sync(metadata.reflect)
        cells = []
        for table in metadata.sorted_tables:
            for row in (await conn.execute(table.select())).all():
                cells.extend(str(value) for value in row)
    assert cells, 'expected rows to inspect'
    leaked = [secret for secret in secrets_given if any(secret in cell for cell in cells)]
    assert not leaked
