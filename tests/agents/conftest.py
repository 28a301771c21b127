"""The real coding-agent CLIs against a real `mindrouter serve` with simulated Ollama and vLLM engines.

The CLIs come from npm (tests/agents/clis.py pins them) into a cache folder. Without npm or the registry the
tests skip and say why, except under CI (CI=true), where a missing CLI fails the run: CI must test them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.clis import CLAUDE_CODE, OPENCODE, installed_or_skip
from tests.e2e.cluster import Cluster, running_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker('agents')


@pytest.fixture(scope='session')
def claude_code() -> Path:
    return installed_or_skip(CLAUDE_CODE)


@pytest.fixture(scope='session')
def opencode() -> Path:
    return installed_or_skip(OPENCODE)


@pytest.fixture(scope='package')
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Both engine dialects; alice's limits lifted (an agent's turn is several requests)."""
    args = ['--tokens', '8', '--context-length', '32768']  # Claude Code's prompt alone is ~12k tokens
    engines = {'sim-ollama': ('ollama', args), 'sim-vllm': ('vllm', args)}
    with running_cluster(tmp_path_factory.mktemp('agents'), engines, unlimited=True) as cluster:
        yield cluster
