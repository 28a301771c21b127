"""The MCP server as npm's MCP clients see it, against a real `mindrouter serve`: the MCP Inspector
(`@modelcontextprotocol/inspector-cli`) lists the tools and calls one, and agentic_ai/claude-desktop's
claude_desktop_config.json, as a user copies it (only the server's address and the key filled in), is started the
way Claude Desktop starts it (its command, args and env: `npx mcp-remote`) and serves the tools over stdio.
The npm packages are pinned and cached under ${XDG_CACHE_HOME:-~/.cache}/mindrouter/agents/. Without npm or its
registry the tests skip and say why, except under CI (CI=true), where that fails the run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from sim.text import expected_text
from tests.agents.clis import Package, installed_or_skip
from tests.e2e.cluster import Cluster, running_cluster
from tests.e2e.processes import REPO

INSPECTOR = Package('@modelcontextprotocol/inspector-cli', '1.0.3', 'mcp-inspector-cli')
MCP_REMOTE = Package('mcp-remote', '0.15.1', 'mcp-remote')  # the version claude_desktop_config.json pins
DESKTOP_CONFIG = REPO / 'agentic_ai' / 'claude-desktop' / 'claude_desktop_config.json'
PLACEHOLDERS = ('https://mindrouter.example.edu/mcp', 'YOUR_MINDROUTER_API_KEY')  # what a user replaces
QUIET = {'NO_UPDATE_NOTIFIER': '1', 'npm_config_update_notifier': 'false'}


@pytest.fixture(scope='module')
def inspector() -> Path:
    return installed_or_skip(INSPECTOR)


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


def test_the_claude_desktop_config_serves_the_tools_through_mcp_remote(cluster: Cluster) -> None:
    mcp_remote = installed_or_skip(MCP_REMOTE)
    config = json.loads(DESKTOP_CONFIG.read_text())['mcpServers']['mindrouter']
    assert config['command'] == 'npx' and f"{MCP_REMOTE.name}@{MCP_REMOTE.version}" in config['args']
    url, key = PLACEHOLDERS
    args = [arg.replace(url, f'{cluster.url}/mcp') for arg in config['args']]
    env = {name: value.replace(key, cluster.key) for name, value in config['env'].items()}
    # npx finds the pinned mcp-remote installed in its folder (no download) when started from there
    server = StdioServerParameters(command=config['command'], args=args, env={**env, **QUIET},
                                   cwd=mcp_remote.parents[2])

    async def session_tools() -> tuple[set[str], dict[str, Any]]:
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {tool.name for tool in (await session.list_tools()).tools}
            called = await session.call_tool('ask_model', {'model': 'llama3.2', 'prompt': 'Say hello',
                                                           'max_tokens': 2})
            assert not called.is_error and called.structured_content is not None
            return tools, called.structured_content

    # bounded: refused, mcp-remote would start an OAuth sign-in in a browser and wait for it
    tools, answered = asyncio.run(asyncio.wait_for(session_tools(), timeout=90))
    assert tools == {'web_search', 'list_models', 'ask_model', 'embed'}
    assert answered['answer'] == expected_text('Say hello', 2)
