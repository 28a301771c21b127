"""The folders are the architecture: dependencies point one way (docs/architecture.md).

core/ is plain Python (no FastAPI, no NiceGUI, nothing of app/, pages/ or components/); app/ imports no
NiceGUI and no page; components/ never import pages/; the sidecar imports nothing of the project.
Read from each module's import statements, so a new module is covered the day it is added.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# folder -> top-level packages its modules may not import
FORBIDDEN = {
    'core': {'app', 'pages', 'components', 'fastapi', 'starlette', 'nicegui', 'main'},
    'app': {'pages', 'components', 'nicegui', 'main'},
    'components': {'pages', 'app', 'main'},
    'sim': {'app', 'pages', 'components', 'main'},
    'sidecar': {'app', 'core', 'pages', 'components', 'sim', 'main'},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split('.')[0])
    return found


@pytest.mark.parametrize('folder', sorted(FORBIDDEN))
def test_imports_point_one_way(folder: str) -> None:
    offences = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[folder])
        for path in sorted((ROOT / folder).rglob('*.py'))
    }
    assert {module: bad for module, bad in offences.items() if bad} == {}


def test_core_has_no_loose_domain_modules() -> None:
    """core/'s top level keeps only the infrastructure every domain package uses; behaviour lives in packages
    named after its domain (accounts, quotas, audit, status, jobs, admin, registry, scheduler, ...)."""
    loose = {path.stem for path in (ROOT / 'core').glob('*.py')}
    assert loose == {'__init__', 'config', 'db', 'errors', 'migrations', 'runtime', 'secretbox'}
