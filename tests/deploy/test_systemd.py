"""The systemd units: `systemd-analyze verify` finds nothing wrong, and `systemd-analyze security` rates each
service's exposure OK. verify also checks that each ExecStart program exists, so the units are checked as
copies whose /opt/mindrouter* paths point into a temporary tree holding the real programs (this venv's
`mindrouter`, a Python for the sidecar)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.deploy.files import ROOT, SYSTEMD, run, system_tool_or_skip

UNITS = sorted(SYSTEMD.glob('mindrouter*.*'))
SERVICES = [unit for unit in UNITS if unit.suffix == '.service']


@pytest.fixture
def installed_units(tmp_path: Path) -> Path:
    """The units as if installed, with their programs in place under tmp_path."""
    programs = {
        '/opt/mindrouter/.venv/bin/mindrouter': Path(sys.executable).parent / 'mindrouter',
        '/opt/mindrouter-sidecar/venv/bin/python': Path(sys.executable),
    }
    for path, real in programs.items():
        link = tmp_path / path.lstrip('/')
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(real)
    units = tmp_path / 'units'
    units.mkdir()
    for unit in UNITS:
        text = re.sub(r'(?<=[= ])/opt/(?=mindrouter)', f'{tmp_path}/opt/', unit.read_text())
        (units / unit.name).write_text(text)
    return units


def test_systemd_finds_nothing_wrong_with_the_units(installed_units: Path) -> None:
    analyze = system_tool_or_skip('systemd-analyze')
    assert {unit.name for unit in UNITS} == {
        'mindrouter.target',
        'mindrouter-migrate.service',
        'mindrouter-api.service',
        'mindrouter-ui.service',
        'mindrouter-sidecar.service',
    }
    result = run(
        analyze, 'verify', '--man=no', *sorted(path.name for path in installed_units.iterdir()), cwd=installed_units
    )
    # Warnings (an unknown key, a misspelt section) exit 0 too: nothing at all may be printed.
    assert (result.returncode, result.stdout + result.stderr) == (0, '')


@pytest.mark.parametrize('unit', SERVICES, ids=lambda path: path.name)
def test_each_service_is_hardened(unit: Path, installed_units: Path) -> None:
    analyze = system_tool_or_skip('systemd-analyze')
    result = run(analyze, 'security', '--offline=yes', '--no-pager', unit.name, cwd=installed_units)
    level = re.search(r'Overall exposure level for \S+: ([\d.]+) (\w+)', result.stdout)
    assert level, result.stdout[-2000:] + result.stderr
    assert level[2] == 'OK' and float(level[1]) <= 2.0, f'{unit.name}: exposure {level[1]} {level[2]}'
    text = unit.read_text()
    for directive in ('NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'CapabilityBoundingSet=\n'):
        assert directive in text, f'{unit.name} lacks {directive.strip()}'
    assert re.search(r'^User=mindrouter', text, re.M), 'never as root'


def test_the_gateway_listens_on_loopback_behind_nginx() -> None:
    for unit in ('mindrouter-api.service', 'mindrouter-ui.service'):
        exec_start = re.search(r'^ExecStart=(.*)$', (SYSTEMD / unit).read_text(), re.M)
        assert exec_start and '--host 127.0.0.1' in exec_start[1]
    sidecar = (SYSTEMD / 'mindrouter-sidecar.service').read_text()
    assert 'GPU_AGENT_HOST=127.0.0.1' in sidecar and 'GPU_AGENT_PORT=18007' in sidecar
    assert 'EnvironmentFile=/etc/mindrouter/sidecar.env' in sidecar
    assert (ROOT / 'sidecar/gpu_agent.py').exists()
