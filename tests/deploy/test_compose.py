"""The compose files: valid against the Compose specification, driven by .env.example, and laid out the way
the gateway must run (one-shot migrations, API-only workers, one UI process, nginx the only way in)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.files import (
    COMPOSE_FILES,
    COMPOSE_VARIABLE,
    ROOT,
    env_example,
    interpolate,
    run,
    system_tool_or_skip,
    venv_tool,
)

YAML_FILES = [*COMPOSE_FILES, *sorted((ROOT / 'deploy').rglob('*.yaml')), ROOT / '.yamllint.yaml']


def _compose(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(interpolate(path.read_text(), env_example()))
    return loaded


def _strings(node: object) -> list[str]:
    """Every key and value of a YAML document (what Compose interpolates; comments are not)."""
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [text for item in node for text in _strings(item)]
    return [str(node)]


def test_the_compose_files_follow_the_compose_specification() -> None:
    result = run(venv_tool('check-jsonschema'), '--builtin-schema', 'vendor.compose-spec', *map(str, COMPOSE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_deployment_yaml_file_passes_yamllint() -> None:
    result = run(venv_tool('yamllint'), '--strict', '-c', str(ROOT / '.yamllint.yaml'), *map(str, YAML_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize('path', COMPOSE_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_variable_the_compose_files_use_is_in_env_example_with_the_same_default(path: Path) -> None:
    documented = env_example()
    for match in COMPOSE_VARIABLE.finditer('\n'.join(_strings(yaml.safe_load(path.read_text())))):
        name, op, arg = match['name'], match['op'], match['arg']
        assert name in documented, f'{path.name} uses ${{{name}}}, which .env.example does not list'
        if op in (':-', '-'):
            assert documented[name] == arg, (
                f'{name}: {path.name} defaults to {arg!r}, .env.example says {documented[name]!r}'
            )
        elif op in (':?', '?'):
            assert documented[name] == '', f'{name} is required by {path.name}: .env.example leaves it empty'


@pytest.mark.parametrize('path', COMPOSE_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_file_the_compose_files_mount_is_in_the_repository(path: Path) -> None:
    for name, service in _compose(path).get('services', {}).items():
        for volume in service.get('volumes', []):
            source = volume.split(':')[0] if isinstance(volume, str) else volume['source']
            if not source.startswith('.'):
                continue  # a named volume, or a host folder the operator names (TLS_CERT_DIR)
            mounted = (path.parent / source).resolve()
            if mounted == ROOT / 'deploy/nginx/mindrouter.conf' and not mounted.exists():
                pytest.skip(
                    'deploy/nginx/mindrouter.conf is not in this checkout yet (the nginx configuration is '
                    'written separately, issue #17)'
                )
            assert mounted.is_file(), f'{path.name}: {name} mounts {source}, which does not exist'


def test_the_stack_migrates_once_then_runs_api_workers_and_one_ui_behind_nginx() -> None:
    services = _compose(ROOT / 'compose.yaml')['services']
    assert services['migrate']['command'] == ['migrate'] and services['migrate']['restart'] == 'no'
    for name in ('api', 'ui'):
        depends = services[name]['depends_on']
        assert depends['migrate'] == {'condition': 'service_completed_successfully'}
        assert depends['redis'] == {'condition': 'service_healthy'}
        assert 'ports' not in services[name], f'{name} is reached through nginx only'
        assert services[name]['environment']['REDIS_URL'].startswith('redis://redis:')
        assert services[name]['environment']['DATABASE_URL'].startswith('mysql+aiomysql://')
    assert '--no-ui' in services['api']['command'] and '--no-ui' not in services['ui']['command']
    assert 'deploy' not in services['ui'] or services['ui']['deploy'].get('replicas', 1) == 1
    assert [port.split(':')[-1] for port in services['nginx']['ports']] == ['80']
    assert services['gpu-sidecar']['profiles'] == ['gpu']


def test_only_nginx_may_name_the_client() -> None:
    compose = _compose(ROOT / 'compose.yaml')
    nginx = ipaddress.ip_address(compose['services']['nginx']['networks']['mindrouter']['ipv4_address'])
    subnet = ipaddress.ip_network(compose['networks']['mindrouter']['ipam']['config'][0]['subnet'])
    assert nginx in subnet and not subnet.overlaps(ipaddress.ip_network('172.17.0.0/16'))
    for name in ('api', 'ui', 'migrate'):
        assert compose['services'][name]['environment']['FORWARDED_ALLOW_IPS'] == str(nginx)


def test_the_production_overlay_serves_https_and_keeps_the_sidecar_on_loopback() -> None:
    services = _compose(ROOT / 'compose.prod.yaml')['services']
    assert all(services[name]['environment']['MINDROUTER_ENV'] == 'production' for name in ('api', 'ui', 'migrate'))
    assert [port.split(':')[-1] for port in services['nginx']['ports']] == ['443']
    assert any(volume.endswith(':/etc/nginx/tls:ro') for volume in services['nginx']['volumes'])
    for sidecars in (services, _compose(ROOT / 'deploy/sidecar/compose.yaml')['services']):
        assert [port.rsplit(':', 1)[0] for port in sidecars['gpu-sidecar']['ports']] == ['127.0.0.1:18007']
        assert sidecars['sidecar-proxy']['network_mode'] == 'host'
        assert sidecars['sidecar-proxy']['environment']['SIDECAR_UPSTREAM'] == '127.0.0.1:18007'


def test_the_sidecar_proxy_configuration_is_accepted_by_nginx(tmp_path: Path) -> None:
    nginx = system_tool_or_skip('nginx')
    template = (ROOT / 'deploy/sidecar/sidecar-proxy.conf').read_text()
    # What the nginx image's entrypoint does with the template: its ${VARIABLES}, from the environment.
    values = _compose(ROOT / 'deploy/sidecar/compose.yaml')['services']['sidecar-proxy']['environment']
    rendered = re.sub(r'\$\{(SIDECAR_[A-Z_]+)\}', lambda match: str(values[match[1]]), template)
    assert '${' not in rendered
    (tmp_path / 'sidecar.conf').write_text(rendered)
    (tmp_path / 'nginx.conf').write_text(
        f'pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n'
        f'http {{ access_log off; include {tmp_path}/sidecar.conf; }}\n'
    )
    result = run(nginx, '-t', '-q', '-p', str(tmp_path), '-c', str(tmp_path / 'nginx.conf'))
    assert result.returncode == 0, result.stderr
