"""The committed lock is what gets installed: the sidecar's pins agree with uv.lock, and uv.lock pins every
package with hashes. (Whether uv.lock matches pyproject.toml is `make check-lock`, run by `make test`.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _normalise(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def locked_versions() -> dict[str, set[str]]:
    lock = tomllib.loads((ROOT / 'uv.lock').read_text())
    versions: dict[str, set[str]] = {}
    for package in lock['package']:
        versions.setdefault(_normalise(package['name']), set()).add(package['version'])
    return versions


def test_every_locked_package_is_pinned_with_hashes() -> None:
    lock = tomllib.loads((ROOT / 'uv.lock').read_text())
    unhashed = [
        package['name'] for package in lock['package']
        if package.get('source', {}).get('registry')
        and not all(dist.get('hash') for dist in [*package.get('wheels', []), package.get('sdist', {'hash': 'x'})])
    ]
    assert unhashed == []


def test_the_sidecar_installs_the_versions_the_gateway_was_tested_with() -> None:
    pins = dict(re.findall(r'^([A-Za-z0-9_.\-]+)==([^\s\\;]+)', (ROOT / 'sidecar/requirements.txt').read_text(), re.M))
    assert pins, 'sidecar/requirements.txt pins nothing'
    locked = locked_versions()
    tested = {name for name in map(_normalise, pins) if name in locked}
    assert {'fastapi', 'starlette', 'uvicorn', 'pydantic'} <= tested
    drift = {name: (version, sorted(locked[_normalise(name)])) for name, version in pins.items()
             if _normalise(name) in locked and version not in locked[_normalise(name)]}
    assert drift == {}, f'sidecar pins differ from uv.lock: {drift} (run make lock)'
    assert 'hash=sha256:' in (ROOT / 'sidecar/requirements.txt').read_text()
