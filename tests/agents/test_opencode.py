"""`opencode run` (the real OpenCode CLI) with agentic_ai/opencode/opencode.json, unchanged, in the project
folder: a plain turn, and a tool round trip (the model calls OpenCode's own `read` tool, OpenCode reads the
file and sends its content back, the answer arrives) on each engine dialect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.session import ENGINES, SECRET, Workspace, audit_count, audited, prompt_text
from tests.e2e.cluster import Cluster

ENDPOINT = '/v1/chat/completions'  # the @ai-sdk/openai-compatible provider speaks Chat Completions


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    workspace = Workspace.create(tmp_path)
    workspace.copy('opencode/opencode.json', workspace.project / 'opencode.json')
    return workspace


@pytest.fixture
def scripted(cluster: Cluster) -> Iterator[Cluster]:
    yield cluster
    for backend, _ in ENGINES.values():
        cluster.sim_config(backend, tool_call=None, reply=None)


def opencode_run(opencode: Path, workspace: Workspace, cluster: Cluster, prompt: str, model: str) -> str:
    """`opencode run` as the README says to run it: the two variables opencode.json reads."""
    result = workspace.run([str(opencode), 'run', '--model', f'mindrouter/{model}', prompt],
                           {'MINDROUTER_URL': cluster.url, 'MINDROUTER_API_KEY': cluster.key})
    assert result.returncode == 0, f'opencode exited {result.returncode}:\n{result.stdout}\n{result.stderr}'
    return result.stdout


def test_a_plain_turn(opencode: Path, workspace: Workspace, scripted: Cluster) -> None:
    scripted.sim_config('sim-ollama', reply='Hello from MindRouter!')
    before = audit_count(scripted, ENDPOINT)
    answer = opencode_run(opencode, workspace, scripted, 'Say hello', 'llama3.2')
    assert 'Hello from MindRouter!' in answer
    entries = audited(scripted, before, endpoint=ENDPOINT, count=1)
    assert any(e['status'] == 'completed' and 'Say hello' in prompt_text(e) for e in entries)


@pytest.mark.parametrize('engine', list(ENGINES))
def test_a_tool_round_trip(opencode: Path, workspace: Workspace, scripted: Cluster, engine: str) -> None:
    backend, model = ENGINES[engine]
    notes = str(workspace.project / 'notes.txt')
    scripted.sim_config(backend, tool_call={'name': 'read', 'arguments': {'filePath': notes}},
                        reply='The file holds the secret word.')
    before = audit_count(scripted, ENDPOINT)
    answer = opencode_run(opencode, workspace, scripted, 'What does notes.txt say?', model)
    assert 'The file holds the secret word.' in answer
    # OpenCode also asks its small model for a session title: a request of its own, without tools
    entries = [e for e in audited(scripted, before, endpoint=ENDPOINT, count=3) if e['backend'] == backend]
    assert entries and all(e['status'] == 'completed' for e in entries)
    with_result = [e for e in entries if SECRET in prompt_text(e)]  # OpenCode read the file and sent it back
    assert len(with_result) == 1 and entries.index(with_result[0]) > 0  # after the request that called read
