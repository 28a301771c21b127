"""The container images: linted, installed only from the committed lock, and running real CLI commands.

No container engine runs on the development machines or in CI (a docker client, no daemon), so the images are
checked as files: hadolint, the install lines, and every command they and the other deployment files run,
parsed by the gateway's own argument parser."""

from __future__ import annotations

import re
import tomllib

import pytest

from app.cli import _parser
from app.routers import health
from tests.deploy.files import DOCKERFILES, ROOT, mindrouter_commands, run, venv_tool

COMMANDS = list(mindrouter_commands())


@pytest.mark.parametrize('dockerfile', DOCKERFILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_hadolint_has_nothing_to_say(dockerfile: object) -> None:
    result = run(venv_tool('hadolint'), '--no-color', str(dockerfile))
    assert (result.returncode, result.stdout + result.stderr) == (0, '')


def _run_lines(dockerfile: str) -> list[str]:
    """Each RUN instruction as one line (continuations joined)."""
    joined = re.sub(r'\\\n\s*', ' ', dockerfile)
    return re.findall(r'^RUN (.*)$', joined, re.M)


def test_the_gateway_image_installs_exactly_what_the_lock_pins() -> None:
    dockerfile = (ROOT / 'Dockerfile').read_text()
    assert re.search(r'^COPY pyproject\.toml uv\.lock ', dockerfile, re.M)
    installs = [line for line in _run_lines(dockerfile) if 'install' in line or 'sync' in line]
    pip = [line for line in installs if re.search(r'\bpip install\b', line) and 'uv pip' not in line]
    sync = [line for line in installs if 'uv sync' in line]
    project = [line for line in installs if 'uv pip install' in line]
    assert len(pip) == len(sync) == len(project) == 1, installs
    # uv itself, from tools/uv.txt with its hashes, nothing else
    assert '--require-hashes' in pip[0] and re.search(r'-r \S*tools/uv\.txt', pip[0]) and '--no-deps' in pip[0]
    # the dependencies: the lock as it is (--locked refuses a lock that disagrees with pyproject.toml), wheels
    # only (no build step that could fetch an unpinned build dependency), no dev extras
    assert {'--locked', '--no-build', '--no-dev', '--no-install-project'} <= set(sync[0].split())
    assert '--extra' not in sync[0] and '--all-extras' not in sync[0]
    # MindRouter itself: no dependency resolution, built by the hashed setuptools of tools/build.txt
    assert '--no-deps' in project[0] and re.search(r'--build-constraints \S*tools/build\.txt', project[0])
    # and nothing installed any other way
    assert not re.search(r'\b(poetry|pipenv|conda|easy_install)\b|uv (add|pip sync)', dockerfile)


def test_the_sidecar_image_installs_its_hashed_requirements_only() -> None:
    lines = [line for line in _run_lines((ROOT / 'sidecar/Dockerfile.sidecar').read_text()) if 'pip' in line]
    assert len(lines) == 1 and re.search(r'pip install .*--require-hashes.* -r requirements\.txt$', lines[0])


def test_the_pinned_tools_are_the_ones_the_project_names() -> None:
    pyproject = tomllib.loads((ROOT / 'pyproject.toml').read_text())
    uv_pin = re.search(r'^uv==(\S+)', (ROOT / 'tools/uv.txt').read_text(), re.M)
    assert uv_pin and pyproject['tool']['uv']['required-version'] == f'=={uv_pin[1]}'
    build_in = [line for line in (ROOT / 'tools/build.in').read_text().splitlines() if line and line[0] != '#']
    assert build_in == pyproject['build-system']['requires'], 'tools/build.in follows [build-system] requires'
    build_txt = (ROOT / 'tools/build.txt').read_text()
    assert re.search(r'^setuptools==\S+ \\\n\s+--hash=sha256:', build_txt, re.M)


@pytest.mark.parametrize(('where', 'argv'), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_every_command_the_deployment_files_run_is_a_real_cli_command(where: str, argv: list[str]) -> None:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f'{where}: `mindrouter {" ".join(argv)}` is refused by the CLI (exit {exc.code})')
    if argv[0] == 'serve':
        assert not args.demo, f'{where}: --demo in a deployment'
        assert args.workers == 1 or args.no_ui, f'{where}: more than one worker needs --no-ui'
        assert args.host and args.port, f'{where}: the address is explicit, whatever the settings say'


def test_the_deployment_files_run_api_workers_a_ui_and_migrations() -> None:
    kinds = {(argv[0], '--no-ui' in argv) for _, argv in COMMANDS}
    assert kinds == {('serve', True), ('serve', False), ('migrate', False)}


def test_the_console_script_runs_each_subcommand_the_images_use() -> None:
    mindrouter = venv_tool('mindrouter')
    for subcommand in sorted({argv[0] for _, argv in COMMANDS}):
        result = run(mindrouter, subcommand, '--help')
        assert result.returncode == 0 and f'mindrouter {subcommand}' in result.stdout, result.stderr


def test_the_probes_the_deployment_files_use_exist() -> None:
    routes = {route.path for route in health.router.routes}  # type: ignore[attr-defined]
    probed = set(re.findall(r"'(/[a-z]+)'", (ROOT / 'Dockerfile').read_text()))
    for path in (ROOT / 'deploy/k8s').rglob('*.yaml'):
        probed |= set(re.findall(r'^\s+path: (/[a-z]+z)$', path.read_text(), re.M))
    assert probed == {'/readyz', '/healthz'} and probed <= routes
