"""A whole cluster as real processes: simulated engines, `mindrouter serve`, users and keys, backends registered.

    with running_cluster(tmp_path, {'sim-ollama': ('ollama', [...sim args]), ...}) as cluster:
        openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.e2e.processes import free_port, running

BIN = Path(sys.executable).parent


@dataclass
class Cluster:
    url: str
    key: str
    admin_key: str
    sims: dict[str, str]  # backend name -> the simulated engine's URL
    data_dir: Path
    env: dict[str, str]

    def sim_config(self, backend: str, **knobs: object) -> None:
        httpx.post(f'{self.sims[backend]}/_sim/config', json=knobs).raise_for_status()

    def sim_stats(self, backend: str) -> dict[str, object]:
        stats: dict[str, object] = httpx.get(f'{self.sims[backend]}/_sim/stats').json()
        return stats


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([str(BIN / 'mindrouter'), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@contextmanager
def running_cluster(root: Path, engines: dict[str, tuple[str, list[str]]], *,
                    settings: dict[str, str] | None = None, unlimited: bool = False,
                    admin_password: str | None = None, sim_kinds: dict[str, str] | None = None) -> Iterator[Cluster]:
    """`engines`: backend name -> (engine kind, extra `python -m sim` arguments); `sim_kinds` names the fake to
    run where it is not the engine's own (`python -m sim speech --flavor vllm` behind a `vllm` backend). A user
    `alice` (faculty) holds `key`; `root` (admin) holds `admin_key`. `unlimited` lifts alice's request limits (a
    test suite sends far more requests a minute than a person); `admin_password` lets `root` sign in to the console.
    """
    env = {**os.environ, 'DATA_DIR': str(root / 'data'), 'LOG_LEVEL': 'warning', 'AUDIT_FLUSH_INTERVAL': '0.2',
           **(settings or {})}
    env.pop('DATABASE_URL', None)
    with ExitStack() as stack:
        sims = {}
        for name, (engine, args) in engines.items():
            port = free_port()
            sims[name] = f'http://127.0.0.1:{port}'
            kind = (sim_kinds or {}).get(name, engine)
            stack.enter_context(running([sys.executable, '-m', 'sim', kind, '--port', str(port), *args], env,
                                        log_path=root / f'{name}.log', ready_url=f'{sims[name]}/_sim/config'))
        cli(env, 'migrate')
        cli(env, 'create-user', 'root', '--role', 'admin', *(('--password', admin_password) if admin_password else ()))
        cli(env, 'create-user', 'alice', '--role', 'faculty')
        admin_key = cli(env, 'create-key', 'root').strip()
        key = cli(env, 'create-key', 'alice').strip()
        port = free_port()
        url = f'http://127.0.0.1:{port}'
        stack.enter_context(running([str(BIN / 'mindrouter'), 'serve', '--port', str(port)], env,
                                    log_path=root / 'gateway.log', ready_url=f'{url}/healthz'))
        for name, sim_url in sims.items():
            response = httpx.post(f'{url}/api/admin/backends/register', headers={'X-API-Key': admin_key},
                                  json={'name': name, 'url': sim_url, 'engine': engines[name][0],
                                        'max_concurrent': 4})
            assert response.status_code == 201, response.text
            assert response.json()['status'] == 'healthy'
        if unlimited:
            httpx.put(f'{url}/api/admin/users/alice/quota', headers={'X-API-Key': admin_key},
                      json={'rpm_limit': 0, 'max_concurrent': 0, 'token_budget': 0, 'note': 'test suite'}
                      ).raise_for_status()
        yield Cluster(url, key, admin_key, sims, root / 'data', env)
