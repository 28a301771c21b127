"""`mindrouter backup` and `mindrouter restore`: the database and the artifact folder in one archive.

The archive is a gzip'd tar:

    manifest.json      {"format": 1, "version", "revision", "created_at", "database": "sqlite"|"mariadb", "files"}
    database.sqlite3   SQLite: a copy made with SQLite's online backup API (consistent while the gateway runs)
    database.sql       MariaDB: `mariadb-dump --single-transaction` (one consistent snapshot, no table locks on
                       InnoDB); needs the mariadb-dump (or mysqldump) client on the PATH, and `mariadb` (or `mysql`)
                       to restore
    artifacts/...      everything under ARTIFACT_STORAGE_PATH (chat uploads)

Restore refuses an archive made by a newer schema than this release knows (upgrade MindRouter first), and
refuses a database that already has tables, or an artifact folder that already has files, unless forced. After
loading an older archive it applies the pending migrations, so the database is at this release's head.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url

from core import __version__, migrations
from core.config import Settings
from core.db import Database
from core.errors import ConfigError, InvalidRequest
from core.models import utcnow

FORMAT = 1
MANIFEST = 'manifest.json'
SQLITE_MEMBER = 'database.sqlite3'
DUMP_MEMBER = 'database.sql'
ARTIFACTS = 'artifacts'


@dataclass(slots=True)
class Manifest:
    format: int
    version: str  # the MindRouter release that made it
    revision: str | None  # the Alembic revision of the database in it
    created_at: str  # ISO 8601, UTC
    database: str  # sqlite | mariadb
    files: int  # artifact files in it

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            return cls(format=int(raw['format']), version=str(raw['version']), revision=raw.get('revision'),
                       created_at=str(raw['created_at']), database=str(raw['database']), files=int(raw['files']))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRequest(f'the archive has no valid {MANIFEST}: {exc}', param='archive') from exc


def kind_of(url: URL) -> str:
    return 'sqlite' if url.get_backend_name() == 'sqlite' else 'mariadb'


# ------------------------------------------------------------------------------------------------------- backup


async def create_backup(settings: Settings, destination: Path) -> Manifest:
    """Write the archive to `destination` (a new file); its manifest."""
    url = make_url(settings.resolved_database_url)
    if kind_of(url) == 'sqlite' and not await asyncio.to_thread(Path(url.database or '').is_file):  # else created
        raise ConfigError(f'there is no SQLite database at {url.database}')
    database = Database(settings.resolved_database_url)
    try:
        revision = await database.schema_revision()
    finally:
        await database.dispose()
    with tempfile.TemporaryDirectory(prefix='mindrouter-backup-') as work:
        folder = Path(work)
        if kind_of(url) == 'sqlite':
            member = folder / SQLITE_MEMBER
            await asyncio.to_thread(_sqlite_copy, Path(url.database or ''), member)
        else:
            member = folder / DUMP_MEMBER
            await _mariadb_dump(url, member, folder)
        artifacts = settings.resolved_artifact_path
        count = sum(1 for path in artifacts.rglob('*') if path.is_file()) if artifacts.is_dir() else 0
        manifest = Manifest(format=FORMAT, version=__version__, revision=revision, created_at=utcnow().isoformat(),
                            database=kind_of(url), files=count)
        await asyncio.to_thread(_write_archive, destination, manifest, member, artifacts)
    return manifest


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while the gateway writes (it copies the WAL's view)."""
    if not source.is_file():
        raise ConfigError(f'there is no SQLite database at {source}')
    _sqlite_pages(source, target)


def _write_archive(destination: Path, manifest: Manifest, database: Path, artifacts: Path) -> None:
    partial = destination.with_name(destination.name + '.partial')
    with tarfile.open(partial, 'w:gz') as archive:
        data = json.dumps(asdict(manifest), indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(data), int(utcnow().timestamp()), 0o600
        archive.addfile(info, io.BytesIO(data))
        archive.add(database, database.name)
        if artifacts.is_dir():
            archive.add(artifacts, ARTIFACTS, filter=_regular_only)
    partial.replace(destination)  # never a half-written archive under the name asked for


def _regular_only(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return info if info.isfile() or info.isdir() else None  # links and devices stay out


# ------------------------------------------------------------------------------------------------------ restore


def read_manifest(archive: Path) -> Manifest:
    with tarfile.open(archive, 'r:gz') as tar:
        try:
            member = tar.extractfile(MANIFEST)
        except KeyError:
            member = None
        if member is None:
            raise InvalidRequest(f'{archive} is not a MindRouter backup (no {MANIFEST})', param='archive')
        return Manifest.parse(member.read())


async def restore_backup(settings: Settings, archive: Path, *, force: bool = False) -> Manifest:
    """Load the archive into the configured database and artifact folder; its manifest."""
    manifest = await asyncio.to_thread(read_manifest, archive)
    url = make_url(settings.resolved_database_url)
    _check_compatible(manifest, kind_of(url))
    database = Database(settings.resolved_database_url)
    try:
        tables = await _tables(database)
        if tables and not force:
            raise InvalidRequest(f'the database at {database.location} is not empty ({len(tables)} tables): restore '
                                 f'into an empty database, or add --force to replace it', param='force')
        artifacts = settings.resolved_artifact_path
        if not force and artifacts.is_dir() and any(path.is_file() for path in artifacts.rglob('*')):
            raise InvalidRequest(f'the artifact folder {artifacts} is not empty: add --force to restore over it',
                                 param='force')
        with tempfile.TemporaryDirectory(prefix='mindrouter-restore-') as work:
            folder = Path(work)
            await asyncio.to_thread(_extract, archive, folder)
            if manifest.database == 'sqlite':
                await database.dispose()  # no pooled connection may hold the file while it is replaced
                await asyncio.to_thread(_sqlite_restore, folder / SQLITE_MEMBER, Path(url.database or ''))
            else:
                if tables:
                    await _drop_tables(database, tables)
                await _mariadb_load(url, folder / DUMP_MEMBER, folder)
            if (folder / ARTIFACTS).is_dir():
                await asyncio.to_thread(shutil.copytree, folder / ARTIFACTS, artifacts, dirs_exist_ok=True)
    finally:
        await database.dispose()
    if manifest.revision != migrations.head_revision():  # an older archive: bring it up to this release
        await asyncio.to_thread(migrations.upgrade, settings.resolved_database_url)
    return manifest


def _check_compatible(manifest: Manifest, database_kind: str) -> None:
    if manifest.format > FORMAT:
        raise InvalidRequest(f'the archive has format {manifest.format}, newer than this release reads ({FORMAT}): '
                             f'upgrade MindRouter first', param='archive')
    if manifest.database != database_kind:
        raise InvalidRequest(f'the archive holds a {manifest.database} database, and DATABASE_URL is {database_kind}: '
                             f'restore it into the same kind of database', param='archive')
    script = ScriptDirectory.from_config(migrations.alembic_config())
    if manifest.revision is not None and manifest.revision not in {rev.revision for rev in script.walk_revisions()}:
        raise InvalidRequest(f'the archive is from a newer schema (revision {manifest.revision}, made by MindRouter '
                             f'{manifest.version}) than this release knows (head {migrations.head_revision()}): '
                             f'upgrade MindRouter first', param='archive')


def _extract(archive: Path, folder: Path) -> None:
    with tarfile.open(archive, 'r:gz') as tar:
        tar.extractall(folder, filter='data')  # no absolute paths, no '..', no links out of the folder


async def _tables(database: Database) -> list[str]:
    async with database.connect() as conn:
        return await conn.run_sync(lambda sync: inspect(sync).get_table_names())


async def _drop_tables(database: Database, tables: list[str]) -> None:
    async with database.connect() as conn:
        await conn.execute(text('SET FOREIGN_KEY_CHECKS=0'))
        for table in tables:
            await conn.execute(text(f'DROP TABLE IF EXISTS `{table}`'))
        await conn.execute(text('SET FOREIGN_KEY_CHECKS=1'))
        await conn.commit()


def _sqlite_restore(source: Path, target: Path) -> None:
    """Copy page by page into the target through SQLite itself (its WAL and locks respected)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _sqlite_pages(source, target)


def _sqlite_pages(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


# --------------------------------------------------------------------------------------------- MariaDB clients


def client_tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError(f'{" or ".join(names)} is needed for a MariaDB backup or restore: install the MariaDB '
                      f'client (Debian: apt install mariadb-client)')


def _options_file(url: URL, folder: Path) -> Path:
    """The connection as a client option file (mode 0600): the password never appears in the process list."""
    path = folder / 'client.cnf'
    lines = ['[client]', f'user={url.username or "root"}', f'host={url.host or "localhost"}',
             f'port={url.port or 3306}', 'default-character-set=utf8mb4']
    if url.password:
        lines.append(f'password="{_option_value(str(url.password))}"')
    socket = url.query.get('unix_socket')
    if isinstance(socket, str):
        lines.append(f'socket={socket}')
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, 'w') as handle:
        handle.write('\n'.join(lines) + '\n')
    return path


def _option_value(value: str) -> str:
    return value.replace('\\', '\\\\').replace('"', '\\"')


async def _mariadb_dump(url: URL, target: Path, folder: Path) -> None:
    tool = client_tool('mariadb-dump', 'mysqldump')
    options = _options_file(url, folder)
    with target.open('wb') as out:
        await _run([tool, f'--defaults-extra-file={options}', '--single-transaction', '--quick',
                    '--triggers', '--hex-blob', '--no-tablespaces', url.database or ''], stdout=out)


async def _mariadb_load(url: URL, dump: Path, folder: Path) -> None:
    tool = client_tool('mariadb', 'mysql')
    options = _options_file(url, folder)
    with dump.open('rb') as source:
        await _run([tool, f'--defaults-extra-file={options}', url.database or ''], stdin=source)


async def _run(command: list[str], **streams: Any) -> None:
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE, **streams)
    _, err = await process.communicate()
    if process.returncode != 0:
        message = err.decode(errors='replace').strip().splitlines()
        raise ConfigError(f'{Path(command[0]).name} failed (exit {process.returncode}): '
                          f'{message[-1] if message else "no message"}')
