"""Rolling upgrades: while a newer release's migrations (the expand step) are applied, the release still
running, or one rolled back to, must start on that schema instead of failing in its own start-up migration
(docs/deployment.md#upgrades-without-downtime). /readyz keeps such a replica in rotation (tests/api/test_health.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from core import migrations
from core.config import get_settings


def _set_revision(revision: str) -> None:
    with sqlite3.connect(get_settings().data_dir / 'mindrouter.db') as db:
        db.execute('UPDATE alembic_version SET version_num = ?', (revision,))


def test_migrate_leaves_a_schema_a_newer_release_migrated_and_says_so(
    isolated_settings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(['migrate']) == 0
    _set_revision('9999_from_a_newer_release')

    assert main(['migrate']) == 0  # `serve` runs the same step before it starts serving
    err = capsys.readouterr().err
    assert 'WARNING' in err and 'a newer release migrated it; not migrating' in err
    assert err.endswith('is at revision 9999_from_a_newer_release\n')


def test_migrate_still_applies_what_is_pending_from_an_older_revision(
    isolated_settings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(['migrate']) == 0
    previous = sorted(migrations.known_revisions() - {migrations.head_revision()})[-1]
    migrations.downgrade(revision=previous)

    assert main(['migrate']) == 0
    assert capsys.readouterr().err.endswith(f'is at revision {migrations.head_revision()}\n')
