"""What the deployment tests share: where the files are, the linters from the venv, and every `mindrouter`
command line the deployment files run, so that each one can be parsed by the real CLI."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / 'Dockerfile', ROOT / 'sidecar' / 'Dockerfile.sidecar']
COMPOSE_FILES = [ROOT / 'compose.yaml', ROOT / 'compose.prod.yaml', ROOT / 'deploy' / 'sidecar' / 'compose.yaml']
K8S = ROOT / 'deploy' / 'k8s'
SYSTEMD = ROOT / 'deploy' / 'systemd'


def venv_tool(name: str) -> str:
    """A checker installed from the lock (the dev extra): always there, so never a reason to skip."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f'{name} is missing from the venv: run make .venv/.installed'
    return str(path)


def system_tool_or_skip(name: str) -> str:
    """A checker from Debian (.ci/run installs it): skipped where it is absent, failed under CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get('CI'):
            pytest.fail(f'{name} is not installed; CI must run this check')
        pytest.skip(f'{name} is not installed')
    return path


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def env_example() -> dict[str, str]:
    """Every NAME=value line of .env.example (commented-out ones too)."""
    return dict(re.findall(r'^#?\s*([A-Z][A-Z0-9_]+)=(.*)$', (ROOT / '.env.example').read_text(), re.M))


# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
COMPOSE_VARIABLE = re.compile(r'\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}')


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation, for the forms the compose files use (`$$` stays a literal `$`)."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match['name'], match['op'], match['arg']
        if values.get(name):
            return values[name]
        return arg if op in (':-', '-') else ''

    return COMPOSE_VARIABLE.sub(value, text)


def mindrouter_commands() -> Iterator[tuple[str, list[str]]]:
    """(where, argv after `mindrouter`) for every gateway command the deployment files run."""
    yield from _dockerfile_commands()
    yield from _compose_commands()
    yield from _kubernetes_commands()
    yield from _systemd_commands()


def _dockerfile_commands() -> Iterator[tuple[str, list[str]]]:
    text = (ROOT / 'Dockerfile').read_text()
    entrypoint = _json_instruction(text, 'ENTRYPOINT')
    assert entrypoint == ['mindrouter'], 'the gateway image runs `mindrouter` with the CMD as its arguments'
    yield 'Dockerfile CMD', _json_instruction(text, 'CMD')


def _json_instruction(text: str, instruction: str) -> list[str]:
    lines = re.findall(rf'^{instruction} (\[.*\])$', text, re.M)
    assert len(lines) == 1, f'one exec-form {instruction} in the Dockerfile'
    return list(yaml.safe_load(lines[0]))


def _compose_commands() -> Iterator[tuple[str, list[str]]]:
    values = env_example()
    for path in COMPOSE_FILES:
        compose = yaml.safe_load(interpolate(path.read_text(), values))
        for name, service in compose.get('services', {}).items():
            image = service.get('image', '')
            if 'command' in service and image.startswith('mindrouter:'):
                yield f'{path.relative_to(ROOT)} {name}', [str(arg) for arg in service['command']]


def _kubernetes_commands() -> Iterator[tuple[str, list[str]]]:
    for path in sorted(K8S.rglob('*.yaml')):
        where = str(path.relative_to(ROOT))
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, list):  # an overlay's JSON patch: the containers' arguments it sets
                yield from ((where, op['value']) for op in doc if re.search(r'/containers/\d+/args$', op['path']))
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get('spec'), dict):
                continue
            for container in doc['spec'].get('template', {}).get('spec', {}).get('containers', []):
                if container.get('image', '').startswith('mindrouter:'):
                    assert 'command' not in container, f'{where}: keep the image entrypoint (mindrouter)'
                    yield f'{where} {container["name"]}', container['args']


def _systemd_commands() -> Iterator[tuple[str, list[str]]]:
    for path in sorted(SYSTEMD.glob('mindrouter-*.service')):
        for line in re.findall(r'^ExecStart=(.*)$', path.read_text(), re.M):
            argv = shlex.split(line)
            if Path(argv[0]).name == 'mindrouter':
                yield f'{path.relative_to(ROOT)}', argv[1:]
