"""One agent run: a fresh home and project folder, the agentic_ai/ files copied in unchanged, a bounded
subprocess, and what the gateway's audit trail recorded for it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.agents.clis import OFFLINE_ENV, QUIET_ENV, REPO
from tests.e2e.cluster import Cluster

AGENTIC_AI = REPO / 'agentic_ai'
RUN_TIMEOUT_S = 60
SECRET = 'The secret word is pineapple.'  # in the project's notes.txt: only a tool that read it can know it
ENGINES = {'ollama': ('sim-ollama', 'llama3.2'), 'vllm': ('sim-vllm', 'meta-llama/Llama-3.2-1B-Instruct')}


@dataclass
class Workspace:
    home: Path
    project: Path

    @classmethod
    def create(cls, root: Path) -> Workspace:
        workspace = cls(root / 'home', root / 'project')
        workspace.home.mkdir()
        workspace.project.mkdir()
        (workspace.project / 'notes.txt').write_text(SECRET + '\n')
        return workspace

    def copy(self, source: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(AGENTIC_AI / source, target)

    def run(self, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        full_env = {'PATH': os.environ['PATH'], 'HOME': str(self.home), 'PWD': str(self.project),
                    'XDG_CONFIG_HOME': str(self.home / '.config'), 'XDG_DATA_HOME': str(self.home / '.local/share'),
                    'XDG_STATE_HOME': str(self.home / '.local/state'), 'XDG_CACHE_HOME': str(self.home / '.cache'),
                    **QUIET_ENV, **OFFLINE_ENV, **env}
        return subprocess.run(command, env=full_env, cwd=self.project, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)


def audited(cluster: Cluster, since: int, *, endpoint: str, count: int) -> list[dict[str, Any]]:
    """alice's requests to `endpoint` after the `since` first ones, oldest first, with their prompts: waits
    for the batched audit writer to have written `count` of them."""
    headers = {'X-API-Key': cluster.admin_key}
    deadline = time.monotonic() + 10
    while True:
        rows = httpx.get(f'{cluster.url}/api/admin/audit', headers=headers,
                         params={'user': 'alice', 'endpoint': endpoint, 'limit': 500}).json()['rows']
        fresh = list(reversed(rows))[since:]
        if len(fresh) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return [httpx.get(f'{cluster.url}/api/admin/audit/{row["request_id"]}', headers=headers).json() for row in fresh]


def audit_count(cluster: Cluster, endpoint: str) -> int:
    rows = httpx.get(f'{cluster.url}/api/admin/audit', headers={'X-API-Key': cluster.admin_key},
                     params={'user': 'alice', 'endpoint': endpoint, 'limit': 500}).json()['rows']
    return len(rows)


def prompt_text(entry: dict[str, Any]) -> str:
    return repr(entry.get('prompt'))
