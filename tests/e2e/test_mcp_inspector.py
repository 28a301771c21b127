"""The MCP server as the MCP Inspector sees it: `@modelcontextprotocol/inspector-cli` (from npm, pinned, cached
under ${XDG_CACHE_HOME:-~/.cache}/mindrouter/agents/) lists the tools of a real `mindrouter serve` and calls one.
Without npm or its registry the tests skip and say why, except under CI (CI=true), where that fails the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim.text import expected_text
from tests.e2e.cluster import Cluster, running_cluster

INSPECTOR = ('@modelcontextprotocol/inspector-cli', '1.0.3', 'mcp-inspector-cli')  # npm name, version, command
QUIET = {'NO_UPDATE_NOTIFIER': '1', 'npm_config_update_notifier': 'false'}


def _cache_root() -> Path:
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'mindrouter' / 'agents'


def _install(name: str, version: str, command: str) -> Path:
    """The package's executable, installed into the cache on first use; pytest.skip (fail under CI) when npm or
    its registry cannot be reached."""
    prefix = _cache_root() / f"{name.replace('/', '+')}@{version}"
    executable = prefix / 'node_modules' / '.bin' / command
    if executable.exists():
        return executable
    npm = shutil.which('npm')
    reason = f'npm is not installed, so {name} cannot be installed' if npm is None else ''
    if npm is not None:
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / 'package.json').write_text('{"private": true}\n')  # npm installs here, not in a parent
        try:
            result = subprocess.run([npm, 'install', '--prefix', '.', '--no-audit', '--no-fund', '--no-save',
                                     f'{name}@{version}'], cwd=prefix, capture_output=True, text=True, timeout=600,
                                    env={**os.environ, **QUIET})
            if result.returncode != 0 or not executable.exists():
                reason = f'npm install {name}@{version} failed (is the npm registry reachable?): ' \
                         f'{result.stderr.strip()[-500:]}'
        except subprocess.TimeoutExpired:
            reason = f'npm install {name}@{version} timed out (is the npm registry reachable?)'
    if reason:
        if os.environ.get('CI'):
            pytest.fail(f'{reason}; CI must run the MCP Inspector')
        pytest.skip(reason)
    return executable


@pytest.fixture(scope='module')
def inspector() -> Path:
    return _install(*INSPECTOR)


@pytest.fixture(scope='module')
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp('inspector'), {'sim-ollama': ('ollama', [])}) as cluster:
        yield cluster


def inspect(inspector: Path, cluster: Cluster, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    # Run from the package's build/ folder: 1.0.3 looks for its own package.json at ../package.json relative to
    # the working directory (and imports it relative to itself), so from anywhere else it fails to start.
    build = inspector.resolve().parent
    return subprocess.run([str(inspector), '--cli', f'{cluster.url}/mcp', '--transport', 'http',
                           '--header', f'Authorization: Bearer {key or cluster.key}', *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **QUIET}, cwd=build)


def answer(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_inspector_lists_the_tools(inspector: Path, cluster: Cluster) -> None:
    tools = answer(inspect(inspector, cluster, '--method', 'tools/list'))['tools']
    assert {tool['name'] for tool in tools} == {'web_search', 'list_models', 'ask_model', 'embed'}
    ask = next(tool for tool in tools if tool['name'] == 'ask_model')
    assert set(ask['inputSchema']['required']) == {'model', 'prompt'}


def test_the_inspector_calls_a_tool(inspector: Path, cluster: Cluster) -> None:
    result = answer(inspect(inspector, cluster, '--method', 'tools/call', '--tool-name', 'ask_model',
                            '--tool-arg', 'model=llama3.2', 'prompt=Say hello', 'max_tokens=3'))
    assert not result.get('isError'), result
    assert result['structuredContent']['answer'] == expected_text('Say hello', 3)


def test_the_inspector_is_refused_with_a_bad_key(inspector: Path, cluster: Cluster) -> None:
    refused = inspect(inspector, cluster, '--method', 'tools/list', key='mr-not-a-key')
    assert refused.returncode != 0
    assert 'Invalid API key' in refused.stderr
