"""`claude -p` (the real Claude Code CLI) with agentic_ai/claude-code/settings.json, unchanged, against
MindRouter: a plain turn at either base URL, and a tool round trip (the model calls Claude Code's own `Read`,
Claude Code reads the file and sends its content back, the answer arrives) on each engine dialect."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.session import ENGINES, SECRET, Workspace, audit_count, audited, prompt_text
from tests.e2e.cluster import BIN, Cluster
from tests.e2e.processes import free_port, running


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    workspace = Workspace.create(tmp_path)
    workspace.copy('claude-code/settings.json', workspace.home / '.claude' / 'settings.json')
    return workspace


@pytest.fixture
def scripted(cluster: Cluster) -> Iterator[Cluster]:
    yield cluster
    for backend, _ in ENGINES.values():
        cluster.sim_config(backend, tool_call=None, reply=None)


def claude(claude_code: Path, workspace: Workspace, cluster: Cluster, prompt: str, *, base_path: str = '',
           model: str | None = None) -> str:
    """`claude -p prompt` as the README says to run it: the two variables that say where and who."""
    command = [str(claude_code), '-p', prompt, '--allowedTools', 'Read']
    if model is not None:
        command += ['--model', model]
    result = workspace.run(command, {'ANTHROPIC_BASE_URL': cluster.url + base_path,
                                     'ANTHROPIC_AUTH_TOKEN': cluster.key})
    assert result.returncode == 0, f'claude exited {result.returncode}:\n{result.stdout}\n{result.stderr}'
    return result.stdout


@pytest.mark.parametrize(('base_path', 'endpoint'), [('', '/v1/messages'), ('/anthropic', '/anthropic/v1/messages')],
                         ids=['root', 'anthropic-prefix'])
def test_a_plain_turn(claude_code: Path, workspace: Workspace, scripted: Cluster, base_path: str,
                      endpoint: str) -> None:
    scripted.sim_config('sim-ollama', reply='Hello from MindRouter!')
    before = audit_count(scripted, endpoint)
    answer = claude(claude_code, workspace, scripted, 'Say hello', base_path=base_path)
    assert answer.strip() == 'Hello from MindRouter!'
    [entry] = audited(scripted, before, endpoint=endpoint, count=1)
    assert (entry['status'], entry['model'], entry['backend']) == ('completed', 'llama3.2:latest', 'sim-ollama')
    assert 'Say hello' in prompt_text(entry)


@pytest.mark.parametrize('engine', list(ENGINES))
def test_a_tool_round_trip(claude_code: Path, workspace: Workspace, scripted: Cluster, engine: str) -> None:
    backend, model = ENGINES[engine]
    notes = str(workspace.project / 'notes.txt')
    scripted.sim_config(backend, tool_call={'name': 'Read', 'arguments': {'file_path': notes}},
                        reply='The file holds the secret word.')
    before = audit_count(scripted, '/v1/messages')
    answer = claude(claude_code, workspace, scripted, 'What does notes.txt say?', model=model)
    assert answer.strip() == 'The file holds the secret word.'
    call, result = audited(scripted, before, endpoint='/v1/messages', count=2)
    assert (call['status'], call['backend'], result['status'], result['backend']) == (
        'completed', backend, 'completed', backend)
    assert SECRET not in prompt_text(call)
    assert SECRET in prompt_text(result)  # Claude Code read the file and sent its content back


def test_the_demo_answers_claude_code(claude_code: Path, workspace: Workspace, tmp_path: Path) -> None:
    """The issue's first try, as a new user makes it: `mindrouter serve --demo`, ANTHROPIC_BASE_URL = the server."""
    env = {**os.environ, 'DATA_DIR': str(tmp_path / 'data'), 'LOG_LEVEL': 'warning'}
    env.pop('DATABASE_URL', None)
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    with running([str(BIN / 'mindrouter'), 'serve', '--demo', '--no-ui', '--port', str(port)], env,
                 log_path=tmp_path / 'demo.log', ready_url=f'{url}/healthz'):
        key = subprocess.run([str(BIN / 'mindrouter'), 'create-key', 'admin'], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()  # the demo seeded the users
        result = workspace.run([str(claude_code), '-p', 'Say hello'],
                               {'ANTHROPIC_BASE_URL': url, 'ANTHROPIC_AUTH_TOKEN': key})
    assert result.returncode == 0, f'claude exited {result.returncode}:\n{result.stdout}\n{result.stderr}'
    assert result.stdout.strip()
