"""The `mindrouter` command: serve, migrate, seed, account management and backend deletion from the shell.

Every failure the operator can fix is one line on stderr (`mindrouter: ...`), never a traceback:
exit status 2 for bad input (unknown role, duplicate user, missing user), 1 for the environment
(database unreachable, unsafe production settings, a setting with a value it cannot take: one line each).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import math
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path

from alembic.util.exc import CommandError as AlembicCommandError

from app import logs
from core import __version__, migrations
from core.accounts import local_login
from core.accounts import service as accounts
from core.admin import backup, cluster_actions
from core.admin.cluster_actions import Actor
from core.config import InvalidSettings, Settings, get_settings
from core.db import CONNECTION_ERRORS, Database, describe_location, unavailable
from core.errors import ConfigError, DatabaseUnavailable, InvalidRequest, MindRouterError, NotFound
from core.models import utcnow

log = logging.getLogger('mindrouter')

SHUTDOWN_MARGIN = 5.0  # seconds uvicorn waits past the streams' grace before it cancels what still runs
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = get_settings()
    except InvalidSettings as exc:
        for problem in exc.problems:
            _fail(problem, EXIT_ENVIRONMENT)
        return EXIT_ENVIRONMENT
    logs.configure(settings.log_level, settings.log_format)
    try:
        result: int = args.handler(args, settings)
        return result
    except (InvalidRequest, NotFound) as exc:
        return _fail(exc.message, EXIT_BAD_INPUT)
    except MindRouterError as exc:
        return _fail(exc.message, EXIT_ENVIRONMENT)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='mindrouter', description='MindRouter LLM gateway')
    commands = parser.add_subparsers(required=True, metavar='COMMAND')

    serve = commands.add_parser('serve', help='apply pending migrations, then serve the API and the web UI')
    serve.add_argument('--host', help='interface to bind (default: HOST setting, 127.0.0.1)')
    serve.add_argument('--port', type=int, help='port (default: PORT setting, 8000)')
    serve.add_argument('--workers', type=int, default=1, help='API worker processes (more than 1 needs --no-ui)')
    serve.add_argument('--no-ui', action='store_true', help='serve the API only, without the NiceGUI pages')
    serve.add_argument('--demo', action='store_true',
                       help='also run a simulated Ollama and vLLM engine and seed the demo users (never in production)')
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser('migrate', help='apply pending database migrations')
    migrate.add_argument('--check', action='store_true',
                         help='change nothing: exit 0 when no migration is pending, 1 (listing them) when some are')
    migrate.set_defaults(handler=_migrate_command)

    backup = commands.add_parser('backup', help='write the database and the artifact folder into one .tar.gz')
    backup.add_argument('--output', '-o', type=Path,
                        help='the archive to write (default: mindrouter-backup-<UTC time>.tar.gz here)')
    backup.set_defaults(handler=_backup)

    restore = commands.add_parser('restore', help='load a backup into an empty database and artifact folder')
    restore.add_argument('archive', type=Path)
    restore.add_argument('--force', action='store_true',
                         help='replace what the database (and artifact folder) already hold')
    restore.set_defaults(handler=_restore)

    seed = commands.add_parser('seed', help='create the demo users (admin, faculty1, staff1, student1)')
    seed.set_defaults(handler=_database_command(_seed))

    create_user = commands.add_parser('create-user', help='create a user')
    create_user.add_argument('username')
    create_user.add_argument('--role', required=True, help='admin, faculty, staff or student')
    create_user.add_argument('--password', help='web login password (default: a generated one, printed once)')
    create_user.add_argument('--email')
    create_user.add_argument('--full-name', default='')
    create_user.set_defaults(handler=_database_command(_create_user))

    create_key = commands.add_parser('create-key', help='create an API key and print it (only it) on stdout')
    create_key.add_argument('username')
    create_key.add_argument('--name', default='default', help='a label to tell keys apart')
    create_key.add_argument('--expires-days', type=int, help='the key stops working after this many days')
    create_key.set_defaults(handler=_database_command(_create_key))

    list_keys = commands.add_parser('list-keys', help='list API keys (prefixes only; keys are never stored)')
    list_keys.add_argument('username', nargs='?')
    list_keys.set_defaults(handler=_database_command(_list_keys))

    revoke_key = commands.add_parser('revoke-key', help='revoke an API key by id or display prefix')
    revoke_key.add_argument('key', help='the id or the prefix that list-keys shows')
    revoke_key.set_defaults(handler=_database_command(_revoke_key))

    local_login = commands.add_parser(
        'local-login', help='turn username and password sign-in on or off (break-glass when single sign-on fails)')
    local_login.add_argument('state', choices=['on', 'off', 'status'],
                             help='on or off (stored over LOCAL_LOGIN, effective at once), or status')
    local_login.set_defaults(handler=_database_command(_local_login))

    delete_backend = commands.add_parser(
        'delete-backend', help='delete a backend that is out of rotation (unknown, unhealthy or disabled)')
    delete_backend.add_argument('backend', metavar='NAME_OR_ID', help='its name, or its id')
    delete_backend.set_defaults(handler=_database_command(_delete_backend))
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if args.workers > 1 and not args.no_ui:
        raise ConfigError('--workers > 1 needs --no-ui: the web UI runs in exactly one process '
                          '(run a separate `mindrouter serve` for it)')
    if args.demo and settings.is_production:
        raise ConfigError('--demo is refused when MINDROUTER_ENV=production: it registers simulated engines')
    if args.demo and args.workers > 1:
        raise ConfigError('--demo runs its simulated engines inside one process: use --workers 1')
    if args.workers > 1 and not settings.redis_url:
        raise ConfigError('--workers > 1 needs REDIS_URL: the workers share backend slots (max_concurrent) and '
                          'fair-share counters through Redis')
    settings.resolved_secret_key()  # in production: stop here, before anything starts, if it is unsafe
    _upgrade(settings)
    factories = {(False, False): 'main:create_app', (False, True): 'main:create_demo_app',
                 (True, False): 'app.factory:serve_api', (True, True): 'app.factory:serve_demo_api'}
    target = factories[(args.no_ui, args.demo)]
    host, port = args.host or settings.host, args.port or settings.port
    log.info('MindRouter %s serving http://%s:%d/ (%s; %d worker%s; database: %s)', __version__,
             f'[{host}]' if ':' in host else host, port,
             'API only, no web UI' if args.no_ui else 'API and web UI', args.workers, '' if args.workers == 1 else 's',
             describe_location(settings.resolved_database_url))
    # uvicorn (and each worker process it spawns) logs through our handlers and format; its own access line
    # stays off (it carries the query string): ACCESS_LOG is app/access_log.py's line.
    uvicorn.run(target, factory=True, host=host, port=port, workers=args.workers, log_level=settings.log_level,
                log_config=logs.logging_config(settings.log_level, settings.log_format), access_log=False,
                proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips,
                # Streams get SHUTDOWN_GRACE_SECONDS and then end with an error event (app/shutdown.py); whatever
                # still runs a little later (a request waiting in the queue) is cancelled by uvicorn itself.
                timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds + SHUTDOWN_MARGIN),
                timeout_worker_healthcheck=settings.worker_healthcheck_timeout)
    return 0


def _migrate_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.check:
        return _migrate_check(settings)
    revision = _upgrade(settings)
    print(f'database at {describe_location(settings.resolved_database_url)} is at revision {revision}', file=sys.stderr)
    return 0


def _migrate_check(settings: Settings) -> int:
    """Exit 0 when the database is at this release's head (or past it), 1 when migrations are pending."""
    current = asyncio.run(_schema_revision(settings))
    where = describe_location(settings.resolved_database_url)
    steps = migrations.pending(current)
    if steps is None:
        print(f'database at {where} is at revision {current}, newer than this release knows '
              f'(head {migrations.head_revision()}): nothing to apply', file=sys.stderr)
        return 0
    if not steps:
        print(f'database at {where} is up to date (revision {current})', file=sys.stderr)
        return 0
    print(f'database at {where} is at revision {current or "(empty)"}; {len(steps)} migration(s) pending:')
    for step in steps:
        print(f'  {step}')
    return 1


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    target = args.output or Path(f'mindrouter-backup-{utcnow():%Y%m%dT%H%M%SZ}.tar.gz')
    if target.exists():
        raise InvalidRequest(f'{target} exists already; choose another --output', param='output')
    if not target.parent.is_dir():
        raise InvalidRequest(f'there is no folder {target.parent} to write {target.name} into', param='output')
    manifest = asyncio.run(backup.create_backup(settings, target))
    print(f'backed up the {manifest.database} database (revision {manifest.revision}) and {manifest.files} '
          f'artifact file(s)', file=sys.stderr)
    print(target)
    return 0


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    if not args.archive.is_file():
        raise InvalidRequest(f'there is no archive at {args.archive}', param='archive')
    manifest = asyncio.run(backup.restore_backup(settings, args.archive, force=args.force))
    print(f'restored the backup of {manifest.created_at} (MindRouter {manifest.version}, revision '
          f'{manifest.revision}; {manifest.files} artifact file(s)) into '
          f'{describe_location(settings.resolved_database_url)}; the database is at revision '
          f'{migrations.head_revision()}', file=sys.stderr)
    return 0


def _upgrade(settings: Settings) -> str:
    """Apply pending migrations; the revision the database is at afterwards."""
    url = settings.resolved_database_url
    try:
        migrations.upgrade(url)
    except CONNECTION_ERRORS as exc:
        raise unavailable(describe_location(url), exc) from exc
    except AlembicCommandError:
        current = asyncio.run(_schema_revision(settings))
        if current is None or current in migrations.known_revisions():
            raise
        # A newer release migrated it (the expand step of a rolling upgrade), and this one is still running or
        # was rolled back to: that release's migrations only add, so this one runs on it.
        log.warning('the database at %s is at revision %s, which this release (up to %s) does not know: a newer '
                    'release migrated it; not migrating', describe_location(url), current, migrations.head_revision())
        return current
    return migrations.head_revision()


async def _schema_revision(settings: Settings) -> str | None:
    database = Database.from_settings(settings)
    try:
        return await database.schema_revision()
    finally:
        await database.dispose()


Command = Callable[[argparse.Namespace, Database], Awaitable[int]]


def _database_command(command: Command) -> Callable[[argparse.Namespace, Settings], int]:
    """Run an async account command against a database whose schema is current."""
    def run(args: argparse.Namespace, settings: Settings) -> int:
        async def with_database() -> int:
            database = Database.from_settings(settings)
            try:
                revision = await database.schema_revision()
                if revision != migrations.head_revision():
                    raise DatabaseUnavailable(f'the database at {database.location} is not migrated '
                                              f'(revision {revision}): run `mindrouter migrate` first')
                return await command(args, database)
            finally:
                await database.dispose()
        return asyncio.run(with_database())
    return run


async def _seed(args: argparse.Namespace, database: Database) -> int:
    async with database.session() as session:
        created = await accounts.seed_demo_users(session)
    print(f'created demo users: {", ".join(created)}' if created else 'demo users already exist', file=sys.stderr)
    return 0


async def _create_user(args: argparse.Namespace, database: Database) -> int:
    password = args.password or accounts.generate_password()
    async with database.session() as session:
        user = await accounts.create_user(session, username=args.username, role=args.role, password=password,
                                          email=args.email, full_name=args.full_name)
    print(f'created user {user.username} ({args.role})', file=sys.stderr)
    if not args.password:
        print(f'generated password: {password}')
    return 0


async def _create_key(args: argparse.Namespace, database: Database) -> int:
    if args.expires_days is not None and args.expires_days < 1:
        raise InvalidRequest('--expires-days must be at least 1', param='expires-days')
    expires = utcnow() + timedelta(days=args.expires_days) if args.expires_days else None
    async with database.session() as session:
        _, plaintext = await accounts.create_api_key(session, username=args.username, name=args.name,
                                                     expires_at=expires)
    print(plaintext)
    return 0


async def _list_keys(args: argparse.Namespace, database: Database) -> int:
    async with database.session() as session:
        if args.username:
            await accounts.get_user(session, username=args.username)  # a typo is an error, not an empty list
        keys = await accounts.list_api_keys(session, username=args.username)
    print(f'{"ID":>5}  {"PREFIX":<12} {"OWNER":<16} {"NAME":<16} {"STATUS":<8} {"EXPIRES":<20} LAST USED')
    for key, owner in keys:
        expires = f'{key.expires_at:%Y-%m-%d %H:%M}' if key.expires_at else '-'
        used = f'{key.last_used_at:%Y-%m-%d %H:%M:%S}' if key.last_used_at else 'never'
        print(f'{key.id:>5}  {key.prefix:<12} {owner:<16} {key.name:<16} {key.status:<8} {expires:<20} {used}')
    return 0


async def _revoke_key(args: argparse.Namespace, database: Database) -> int:
    async with database.session() as session:
        key = await accounts.revoke_api_key(session, key_ref=args.key)
    print(f'revoked key {key.id} ({key.prefix}...)', file=sys.stderr)
    return 0


async def _local_login(args: argparse.Namespace, database: Database) -> int:
    settings = get_settings()
    async with database.session() as session:
        if args.state != 'status':
            await local_login.set_local_login(session, settings, enabled=args.state == 'on',
                                              actor=Actor(id=None, name=_os_user(), via='cli'))
        enabled = await local_login.local_login_enabled(session, settings)
    print(f'local (password) sign-in is {"on" if enabled else "off"}', file=sys.stderr)
    return 0


async def _delete_backend(args: argparse.Namespace, database: Database) -> int:
    actor = Actor(id=None, name=_os_user(), via='cli')
    backend = await cluster_actions.delete_idle_backend(database, actor, args.backend)
    print(f'deleted backend {backend.id} ({backend.name}); its requests stay in the audit log under its name',
          file=sys.stderr)
    return 0


def _os_user() -> str:
    """Who ran the command, for the admin log (a shell has no gateway account)."""
    try:
        return getpass.getuser()[:64]
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return 'unknown'


def _fail(message: str, status: int) -> int:
    print(f'mindrouter: {message}', file=sys.stderr)
    return status
