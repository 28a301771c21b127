"""An operator deletes a backend registered with a wrong URL from the shell, while the gateway runs: real
processes (a simulated engine, `mindrouter serve`, the `mindrouter` command)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.cluster import running_cluster
from tests.e2e.test_cli import assert_one_line_error, mindrouter


def test_an_operator_deletes_backends_out_of_rotation_and_is_told_how_to_delete_a_healthy_one(
        tmp_path: Path) -> None:
    with running_cluster(tmp_path, {'sim-ollama': ('ollama', [])}) as cluster:
        admin = {'X-API-Key': cluster.admin_key}

        def register(name: str) -> int:
            response = httpx.post(f'{cluster.url}/api/admin/backends/register', headers=admin,
                                  json={'name': name, 'url': f'http://127.0.0.1:9/{name}', 'engine': 'ollama'})
            assert response.status_code == 201, response.text
            backend_id: int = response.json()['id']
            return backend_id

        def names() -> list[str]:
            return [b['name'] for b in httpx.get(f'{cluster.url}/api/admin/backends', headers=admin).json()]

        register('typo')
        second = register('typo-2')

        deleted = mindrouter('delete-backend', 'typo', env=cluster.env)
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout == '' and 'deleted backend' in deleted.stderr and '(typo)' in deleted.stderr
        assert mindrouter('delete-backend', str(second), env=cluster.env).returncode == 0  # by id
        assert names() == ['sim-ollama']

        healthy = mindrouter('delete-backend', 'sim-ollama', env=cluster.env)
        assert_one_line_error(healthy, 2, 'sim-ollama is healthy', 'drain it first',
                              'DELETE /api/admin/backends/1')
        assert_one_line_error(mindrouter('delete-backend', 'typo', env=cluster.env), 2,
                              "no backend named or numbered 'typo'")
        assert names() == ['sim-ollama']

        answer = httpx.post(f'{cluster.url}/v1/chat/completions', headers={'X-API-Key': cluster.key}, timeout=30,
                            json={'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hi'}]})
        assert answer.status_code == 200 and answer.headers['x-mindrouter-backend'] == 'sim-ollama'
        log = httpx.get(f'{cluster.url}/api/admin/log', headers=admin, params={'action': 'backend.delete'}).json()
        assert [(row['target'], row['via']) for row in log['rows']] == [(f'backend {second} (typo-2)', 'cli'),
                                                                       ('backend 2 (typo)', 'cli')]
