from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_development_generates_a_secret_once_and_keeps_it_in_the_data_folder(
        isolated_settings: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = Settings().resolved_secret_key()
    second = Settings().resolved_secret_key()

    assert first == second and len(first) >= 32
    secret_file = isolated_settings / 'secret_key'
    assert secret_file.read_text().strip() == first
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len([r for r in caplog.records if 'SECRET_KEY is not set' in r.message]) == 1


def test_a_configured_secret_wins_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('SECRET_KEY', 'short-but-fine-for-dev')
    assert Settings().resolved_secret_key() == 'short-but-fine-for-dev'


@pytest.mark.parametrize(('secret', 'reason'), [
    ('', 'SECRET_KEY is required'),
    ('too-short', 'too short'),
    ('a' * 40, 'placeholder'),
])
def test_production_refuses_a_missing_or_weak_secret(monkeypatch: pytest.MonkeyPatch, secret: str,
                                                     reason: str) -> None:
    monkeypatch.setenv('MINDROUTER_ENV', 'production')
    monkeypatch.setenv('SECRET_KEY', secret)

    with pytest.raises(ConfigError, match=reason) as caught:
        Settings().resolved_secret_key()
    assert '\n' not in caught.value.message


def test_production_accepts_a_strong_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('MINDROUTER_ENV', 'production')
    monkeypatch.setenv('SECRET_KEY', 'Zq8-vL2m_R7tXw4yB9nK3pH6sD1fG5jC0aE')
    assert Settings().resolved_secret_key().startswith('Zq8')


def test_the_embedded_default_is_a_sqlite_file_in_the_data_folder(isolated_settings: Path) -> None:
    settings = Settings()
    assert settings.resolved_database_url == f'sqlite+aiosqlite:///{isolated_settings.as_posix()}/mindrouter.db'
    assert settings.resolved_artifact_path == isolated_settings / 'artifacts'


def test_every_setting_is_documented_in_env_example_with_its_default() -> None:
    documented = dict(re.findall(r'^#?\s*([A-Z][A-Z0-9_]+)=(.*)$', (REPO / '.env.example').read_text(), re.M))

    missing = [name.upper() for name in Settings.model_fields if name.upper() not in documented]
    assert not missing, f'.env.example lacks {missing}'
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, bool):
            expected = str(default).lower()
        elif default is None:
            expected = ''
        else:
            expected = str(default)
        assert documented[name.upper()].strip() == expected, f'{name.upper()} default differs in .env.example'
