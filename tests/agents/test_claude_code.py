"""`claude -p` (the real Claude Code CLI) with agentic_ai/claude-code/settings.json, unchanged, against
MindRouter: a plain turn at either base URL, and a tool round trip (the model calls Claude Code's own `Read`,
Claude Code reads the file and sends its content back, the answer arrives) on each engine dialect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.session import ENGINES, SECRET, Workspace, audit_count, audited, prompt_text
from tests.e2e.cluster import Cluster


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
