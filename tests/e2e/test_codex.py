"""The real Codex CLI (`codex exec`, pinned, installed from npm by tests/e2e/codex_cli.py) against a real
`mindrouter serve` with simulated engines, using agentic_ai/codex/config.toml as a user copies it: a turn
completes, and a tool round trip completes — the simulated model asks for Codex's own shell tool
(`exec_command`), Codex runs it in its sandbox and sends the result back, and the final answer arrives — on
both engines. Codex must never try to leave the machine (tests/e2e/codex_cli.py's proxy trap)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.text import expected_text, expected_thinking
from tests.e2e.cluster import Cluster, running_cluster
from tests.e2e.codex_cli import Codex, codex_home, install_codex

TOKENS = 8
MODELS = {'sim-ollama': 'llama3.2', 'sim-vllm': 'meta-llama/Llama-3.2-1B-Instruct'}
THINKERS = {'sim-ollama': 'qwen3:0.6b', 'sim-vllm': 'Qwen/Qwen3-8B'}
THINKING_TOKENS = 8
BACKENDS = pytest.mark.parametrize('backend', ['sim-ollama', 'sim-vllm'], ids=['ollama', 'vllm'])


@pytest.fixture(scope='module')
def codex_binary() -> Path:
    return install_codex()


@pytest.fixture(scope='module')
def cluster(tmp_path_factory: pytest.TempPathFactory, codex_binary: Path) -> Iterator[Cluster]:
    engines = {backend: (backend.removeprefix('sim-'), ['--models', f'{MODELS[backend]},{THINKERS[backend]}',
                                                        '--tokens', str(TOKENS)]) for backend in MODELS}
    with running_cluster(tmp_path_factory.mktemp('codex'), engines, unlimited=True) as cluster:
        yield cluster


@pytest.fixture
def codex(codex_binary: Path, tmp_path: Path, cluster: Cluster) -> Iterator[Codex]:
    cluster_tool_off(cluster)
    agent = Codex(codex_binary, codex_home(tmp_path))
    yield agent
    agent.trap.close()
    assert agent.trap.attempts == [], 'Codex tried to reach the internet'


def cluster_tool_off(cluster: Cluster) -> None:
    for backend in MODELS:
        cluster.sim_config(backend, tool_call=None)


def workdir(tmp_path: Path) -> Path:
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'marker.txt').write_text('the marker is 42\n')
    return work


def responses_prompts(cluster: Cluster) -> list[list[dict[str, str]]]:
    """The conversations the gateway sent on for /v1/responses, oldest first (the audit trail keeps them)."""
    with sqlite3.connect(cluster.data_dir / 'mindrouter.db') as db:
        rows = db.execute("SELECT prompt FROM request_log WHERE endpoint = '/v1/responses' ORDER BY id").fetchall()
    return [json.loads(prompt) for (prompt,) in rows if prompt]


@BACKENDS
def test_codex_completes_a_turn(codex: Codex, cluster: Cluster, tmp_path: Path, backend: str) -> None:
    run = codex.run(workdir(tmp_path), 'Say hello', base_url=f'{cluster.url}/v1', model=MODELS[backend],
                    api_key=cluster.key)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.last_message.strip() == expected_text('Say hello', TOKENS)


@BACKENDS
def test_codex_runs_its_own_tool_and_sends_the_result_back(codex: Codex, cluster: Cluster, tmp_path: Path,
                                                           backend: str) -> None:
    cluster.sim_config(backend, tool_call={'name': 'exec_command', 'arguments': {'cmd': 'cat marker.txt'}})
    work = workdir(tmp_path)
    marker = f'the marker is {backend}-{tmp_path.name}'  # unique: this run's result, not an earlier test's
    (work / 'marker.txt').write_text(marker + '\n')
    run = codex.run(work, 'What does marker.txt say?', base_url=f'{cluster.url}/v1', model=MODELS[backend],
                    api_key=cluster.key)
    assert run.returncode == 0, run.stderr[-3000:]
    tool_result = _tool_result_sent(cluster, marker)  # Codex ran `cat` and sent its output back
    assert run.last_message.strip() == expected_text(tool_result, TOKENS), run.stdout[-3000:]  # the answer it seeded


@BACKENDS
def test_codex_shows_the_models_reasoning(codex: Codex, cluster: Cluster, tmp_path: Path, backend: str) -> None:
    prompt = 'Why is the sky blue?'
    run = codex.run(workdir(tmp_path), prompt, base_url=f'{cluster.url}/v1', model=THINKERS[backend],
                    api_key=cluster.key, options=['-c', 'model_reasoning_effort="high"', '--json'])
    assert run.returncode == 0, run.stderr[-3000:]
    items = [event['item'] for event in map(json.loads, run.stdout.splitlines())
             if event.get('type') == 'item.completed']
    shown = [(item['type'], item['text']) for item in items if item['type'] in ('reasoning', 'agent_message')]
    assert shown == [('reasoning', expected_thinking(prompt, THINKING_TOKENS)),
                     ('agent_message', expected_text(prompt, TOKENS))]


def _tool_result_sent(cluster: Cluster, marker: str) -> str:
    """The tool result holding `marker` that the gateway sent on (the audit trail is written within a second)."""
    deadline = time.monotonic() + 10
    while True:
        for turn in responses_prompts(cluster):
            if turn and turn[-1]['role'] == 'tool' and marker in turn[-1]['content']:
                return turn[-1]['content']
        assert time.monotonic() < deadline, f'no tool result with {marker!r} reached an engine'
        time.sleep(0.1)
