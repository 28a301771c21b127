"""Alembic, driven from Python: `mindrouter migrate`, `serve` (upgrade first) and the readiness check."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

ALEMBIC_INI = Path(__file__).resolve().parent.parent / 'alembic.ini'


def alembic_config(database_url: str | None = None) -> Config:
    """Alembic's config for this project; `database_url` overrides the settings' DATABASE_URL."""
    config = Config(str(ALEMBIC_INI))
    config.attributes['configure_logging'] = False  # the application owns logging
    if database_url:
        config.attributes['database_url'] = database_url
    return config


def upgrade(database_url: str | None = None, revision: str = 'head') -> None:
    """Apply migrations up to `revision`. Synchronous: call it before the event loop starts (or in a thread)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = 'base') -> None:
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str | None = None) -> None:
    """Raise if the models and the migrated schema differ (a migration is missing)."""
    command.check(alembic_config(database_url))


def pending(current: str | None) -> list[str] | None:
    """The revisions `upgrade` would apply to a database at `current` (None: an empty one), oldest first, as
    "id (message)"; None when `current` is not a revision this release knows (a newer release migrated it)."""
    if current is not None and current not in known_revisions():
        return None
    steps = ScriptDirectory.from_config(alembic_config()).iterate_revisions(head_revision(), current or 'base')
    return [f'{rev.revision} ({rev.doc})' for rev in reversed(list(steps))]


@lru_cache(maxsize=1)
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, 'migrations/versions is empty'
    return head


@lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    """Every revision this release ships. A database at a revision outside it was migrated by a newer release."""
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())
