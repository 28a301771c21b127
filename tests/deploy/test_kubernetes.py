"""The Kubernetes manifests: every resource valid against the Kubernetes schemas, every overlay's references
and patches pointing at something that exists, and (where kubectl is installed) every overlay rendered by
Kustomize and validated whole. The ingress must send every API path the gateway serves to the API replicas."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.files import K8S, load_all, run, venv_tool

OVERLAYS = sorted(path.parent for path in (K8S / 'overlays').glob('*/kustomization.yaml'))
API_PREFIXES_NOT_PUBLISHED = {'/metrics'}  # scraped inside the cluster, never through the ingress


def _kustomization(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((folder / 'kustomization.yaml').read_text())
    return loaded


def _resource_files(folder: Path) -> list[Path]:
    """The files a kustomization lists as resources (folders are other kustomizations)."""
    return [folder / entry for entry in _kustomization(folder).get('resources', []) if (folder / entry).is_file()]


def _base() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (doc['kind'], doc['metadata']['name']): doc for path in _resource_files(K8S / 'base') for doc in load_all(path)
    }


def test_every_resource_file_is_valid_kubernetes() -> None:
    files = [str(path) for folder in [K8S / 'base', *OVERLAYS] for path in _resource_files(folder)]
    assert len(files) >= 10
    result = run(venv_tool('kubernetes-validate'), '--strict', '--quiet', *files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize('overlay', OVERLAYS, ids=lambda path: path.name)
def test_every_overlay_builds_on_the_base_and_patches_what_exists(overlay: Path) -> None:
    kustomization = _kustomization(overlay)
    assert '../../base' in kustomization['resources']
    for entry in kustomization['resources']:
        assert (overlay / entry).exists(), f'{overlay.name}: {entry} does not exist'
    base = _base()
    for generator in kustomization.get('secretGenerator', []):
        assert generator['name'] == 'mindrouter-secrets'
        for env in generator['envs']:  # the real one is never committed; its example is
            example = overlay / f'{env}.example'
            if not example.exists():
                example = K8S / 'overlays/production' / f'{env}.example'
            assert example.exists(), f'{overlay.name}: no {env}.example to copy'
    for patch in kustomization.get('patches', []):
        if 'path' in patch:
            documents = list(yaml.safe_load_all((overlay / patch['path']).read_text()))
        else:
            documents = list(yaml.safe_load_all(patch['patch']))
        for document in documents:
            if isinstance(document, list):  # a JSON 6902 patch: each path must exist in the resource it targets
                target = base[(patch['target']['kind'], patch['target']['name'])]
                for operation in document:
                    assert operation['op'] in ('add', 'replace', 'remove', 'test'), operation
                    # (an `add` needs only the parent: it may create the last key)
                    _resolve(
                        target, operation['path'].rsplit('/', 1)[0] if operation['op'] == 'add' else operation['path']
                    )
            else:  # a strategic-merge patch (or a deletion): its resource must be in the base
                key = (document['kind'], document['metadata']['name'])
                assert key in base, f'{overlay.name}: {patch} patches {key}, which the base does not have'
    for replicas in kustomization.get('replicas', []):
        assert ('Deployment', replicas['name']) in base


def _resolve(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.lstrip('/').split('/'):
        part = part.replace('~1', '/').replace('~0', '~')
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@pytest.mark.parametrize('overlay', OVERLAYS, ids=lambda path: path.name)
def test_every_overlay_renders_to_valid_kubernetes(overlay: Path, tmp_path: Path) -> None:
    kubectl = shutil.which('kubectl')
    if kubectl is None:  # not in the registries this project installs from; the structural test above still runs
        pytest.skip('kubectl (with its built-in Kustomize) is not installed')
    copy = tmp_path / 'k8s'
    shutil.copytree(K8S, copy)
    for generator in _kustomization(overlay).get('secretGenerator', []):
        for env in generator['envs']:
            shutil.copy(K8S / 'overlays/production/secrets.env.example', copy / 'overlays' / overlay.name / env)
    rendered = run(kubectl, 'kustomize', str(copy / 'overlays' / overlay.name))
    assert rendered.returncode == 0, rendered.stderr
    (tmp_path / 'rendered.yaml').write_text(rendered.stdout)
    result = run(venv_tool('kubernetes-validate'), '--strict', '--quiet', str(tmp_path / 'rendered.yaml'))
    assert result.returncode == 0, result.stdout + result.stderr

    resources = {
        (
            doc['kind'],
            doc['metadata']['name'].rsplit('-', 1)[0] if doc['kind'] == 'Secret' else doc['metadata']['name'],
        ): doc
        for doc in yaml.safe_load_all(rendered.stdout)
    }
    namespace = _kustomization(overlay)['namespace']
    assert all(doc['metadata'].get('namespace', namespace) == namespace for doc in resources.values())
    secret = resources[('Secret', 'mindrouter-secrets')]['metadata']['name']
    for name in ('mindrouter-api', 'mindrouter-ui'):
        pod = resources[('Deployment', name)]['spec']['template']['spec']
        assert {'name': secret} in [source.get('secretRef') for source in pod['containers'][0]['envFrom']]
    assert resources[('Deployment', 'mindrouter-ui')]['spec']['replicas'] == 1
    api_replicas = resources[('Deployment', 'mindrouter-api')]['spec']['replicas']
    assert (('PodDisruptionBudget', 'mindrouter-api') in resources) == (api_replicas > 1)


def test_there_is_one_ui_pod_and_the_api_replicas_can_be_many() -> None:
    base = _base()
    ui, api = base[('Deployment', 'mindrouter-ui')]['spec'], base[('Deployment', 'mindrouter-api')]['spec']
    assert ui['replicas'] == 1 and ui['strategy']['rollingUpdate'] == {'maxSurge': 1, 'maxUnavailable': 0}
    assert api['replicas'] >= 2 and '--no-ui' in api['template']['spec']['containers'][0]['args']
    assert base[('PodDisruptionBudget', 'mindrouter-api')]['spec']['selector'] == api['selector']
    assert ('PodDisruptionBudget', 'mindrouter-ui') not in base
    for spec in (ui, api):
        container = spec['template']['spec']['containers'][0]
        assert container['readinessProbe']['httpGet']['path'] == '/readyz'
        assert container['livenessProbe']['httpGet']['path'] == '/healthz'
        assert container['securityContext']['readOnlyRootFilesystem'] is True


def test_the_ingress_streams_unbuffered_and_sends_every_api_path_to_the_api() -> None:
    from app.factory import create_api_app

    ingress = _base()[('Ingress', 'mindrouter')]
    annotations = ingress['metadata']['annotations']
    assert annotations['nginx.ingress.kubernetes.io/proxy-buffering'] == 'off'
    assert annotations['nginx.ingress.kubernetes.io/proxy-request-buffering'] == 'off'
    assert int(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 600  # BACKEND_READ_TIMEOUT
    routes = {path['path']: path['backend']['service']['name'] for path in ingress['spec']['rules'][0]['http']['paths']}
    assert routes.pop('/') == 'mindrouter-ui'
    assert set(routes.values()) == {'mindrouter-api'}
    served = {'/' + path.split('/')[1] for path in create_api_app().openapi()['paths']} | {'/mcp'}
    missing = served - set(routes) - API_PREFIXES_NOT_PUBLISHED
    assert not missing, f'the ingress sends {missing} to the UI pod instead of the API replicas'
