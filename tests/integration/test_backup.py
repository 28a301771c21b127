"""`mindrouter backup` / `restore` round trip and `migrate --check`, on SQLite and MariaDB, through the CLI's own
entry point: what went in comes back out (rows, content, files), into an empty database only unless forced, and
never from a newer schema."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.cli import main
from core import migrations
from core.config import get_settings, reset_settings
from core.db import Database
from tests.conftest import scratch_mariadb
from tests.integration.test_retention import chat_of, rows_of, store_user_data


@pytest.fixture
def empty_target(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty database of the same kind, to restore into (MariaDB: mr_backup_<random>, dropped after)."""
    if make_url(database_url).get_backend_name() == 'sqlite':
        yield f'sqlite+aiosqlite:///{tmp_path / "restored.db"}'
        return
    with scratch_mariadb('mr_backup') as url:
        yield url


def use(monkeypatch: pytest.MonkeyPatch, url: str, artifacts: Path) -> None:
    monkeypatch.setenv('DATABASE_URL', url)
    monkeypatch.setenv('ARTIFACT_STORAGE_PATH', str(artifacts))
    reset_settings()


async def snapshot(url: str, user_id: int) -> tuple[Any, ...]:
    database = Database(url)
    try:
        rows = [(r.request_id, r.prompt, r.response, r.prompt_tokens, r.created_at) for r in
                await rows_of(database, user_id)]
        return rows, await chat_of(database, user_id), await database.schema_revision()
    finally:
        await database.dispose()


async def revision_of(url: str) -> str | None:
    database = Database(url)
    try:
        return await database.schema_revision()
    finally:
        await database.dispose()


def test_a_backup_restores_into_an_empty_database_with_its_files(
        migrated_url: str, empty_target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    use(monkeypatch, migrated_url, tmp_path / 'artifacts-a')

    async def fill() -> tuple[int, Path]:
        database = Database(migrated_url)
        try:
            stored = await store_user_data(database, get_settings(), 'alice', requests=4)
        finally:
            await database.dispose()
        return stored.user_id, stored.file
    user_id, upload = asyncio.run(fill())
    before = asyncio.run(snapshot(migrated_url, user_id))
    archive = tmp_path / 'backup.tar.gz'

    assert main(['backup', '--output', str(archive)]) == 0
    assert capsys.readouterr().out.strip() == str(archive)
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile('manifest.json').read())  # type: ignore[union-attr]
        names = tar.getnames()
    assert manifest['revision'] == migrations.head_revision() and manifest['files'] == 2  # upload + its text
    assert f'artifacts/{upload.relative_to(tmp_path / "artifacts-a").as_posix()}' in names

    use(monkeypatch, empty_target, tmp_path / 'artifacts-b')
    assert main(['restore', str(archive)]) == 0
    assert asyncio.run(snapshot(empty_target, user_id)) == before
    restored_file = tmp_path / 'artifacts-b' / upload.relative_to(tmp_path / 'artifacts-a')
    assert restored_file.read_bytes() == b'my secret notes'

    capsys.readouterr()
    assert main(['restore', str(archive)]) == 2  # not empty now: refused, nothing changed
    assert 'not empty' in capsys.readouterr().err
    assert main(['restore', str(archive), '--force']) == 0
    assert asyncio.run(snapshot(empty_target, user_id)) == before


def test_an_archive_from_a_newer_schema_is_refused(migrated_url: str, empty_target: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    use(monkeypatch, migrated_url, tmp_path / 'artifacts')
    archive = tmp_path / 'backup.tar.gz'
    assert main(['backup', '-o', str(archive)]) == 0
    newer = tmp_path / 'newer.tar.gz'
    with tarfile.open(archive) as source, tarfile.open(newer, 'w:gz') as target:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == 'manifest.json' and data is not None:
                data = json.dumps({**json.loads(data), 'revision': '9999', 'version': '9.0.0'}).encode()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)

    use(monkeypatch, empty_target, tmp_path / 'restored')
    capsys.readouterr()
    assert main(['restore', str(newer)]) == 2
    assert 'newer schema (revision 9999' in capsys.readouterr().err
    assert asyncio.run(revision_of(empty_target)) is None  # nothing was loaded


def test_migrate_check_says_whether_migrations_are_pending_and_changes_nothing(
        configured_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['migrate', '--check']) == 1  # an empty database: every migration is pending
    listed = capsys.readouterr().out
    assert '0001' in listed and migrations.head_revision() in listed
    assert asyncio.run(revision_of(configured_url)) is None  # --check applied none

    assert main(['migrate']) == 0
    assert main(['migrate', '--check']) == 0
    assert 'up to date' in capsys.readouterr().err

    previous = migrations.pending(None)[-2].split(' ')[0]  # type: ignore[index]
    migrations.downgrade(configured_url, previous)
    assert main(['migrate', '--check']) == 1
    assert capsys.readouterr().out.splitlines()[1:] == [f'  {migrations.pending(None)[-1]}']  # type: ignore[index]


def test_migrate_check_on_a_database_a_newer_release_migrated_has_nothing_to_apply(
        migrated_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def stamp() -> None:
        database = Database(migrated_url)
        try:
            async with database.connect() as conn:
                await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
                await conn.commit()
        finally:
            await database.dispose()
    asyncio.run(stamp())
    assert main(['migrate', '--check']) == 0
    assert 'newer than this release knows' in capsys.readouterr().err
