"""Hostile-input tests (authorization matrix, fuzzing, secrets in logs): what they check does not depend on the
database, so they run on SQLite only and keep their share of the suite's time small."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=['sqlite'])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f'sqlite+aiosqlite:///{tmp_path}/hostile.db'
