"""The MCP server at /mcp, driven by the official MCP client (Python SDK, streamable HTTP) against a real
`mindrouter serve` with simulated engines and a fake SearXNG: initialize, list the tools, call each one; a bad
key is refused, a bad argument and a refused limit come back as tool errors, and the calls are in the audit
trail under the caller's name."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from sim.search import expected_results
from sim.text import expected_text
from tests.e2e.cluster import Cluster, cli, running_cluster
from tests.e2e.processes import free_port, running

TOOLS = {'web_search', 'list_models', 'ask_model', 'embed'}


@pytest.fixture(scope='module')
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp('mcp')
    searxng = f'http://127.0.0.1:{free_port()}'
    port = searxng.rsplit(':', 1)[1]
    with running([sys.executable, '-m', 'sim', 'searxng', '--port', port], {}, log_path=root / 'searxng.log',
                 ready_url=f'{searxng}/_sim/config'), \
            running_cluster(root, {'sim-ollama': ('ollama', [])}, unlimited=True,
                            settings={'SEARCH_PROVIDER': 'searxng', 'SEARXNG_URL': searxng}) as cluster:
        alias = httpx.put(f'{cluster.url}/api/admin/model-aliases/claude-haiku-4-5',
                          headers={'X-API-Key': cluster.admin_key}, json={'target': 'qwen3:0.6b'})
        assert alias.status_code == 200, alias.text
        yield cluster


@asynccontextmanager
async def mcp_session(cluster: Cluster, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
            streamable_http_client(f'{cluster.url}/mcp', http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


def text(result: CallToolResult) -> str:
    return ' '.join(part.text for part in result.content if isinstance(part, TextContent))


async def call(cluster: Cluster, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> httpx.Response:
    """One plain HTTP request to the gateway, as the admin unless `key` says otherwise."""
    headers = {'X-API-Key': key or cluster.admin_key, **kwargs.pop('headers', {})}
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as http:
        return await http.request(method, path, headers={k: v for k, v in headers.items() if v}, **kwargs)


async def audit_row(cluster: Cluster, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = await call(cluster, 'GET', f'/api/admin/audit/{request_id}')
        if found.status_code == 200:
            row: dict[str, Any] = found.json()
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f'no audit row for {request_id}')


async def test_an_agent_lists_the_tools_and_calls_each_one_as_its_user(cluster: Cluster) -> None:
    async with mcp_session(cluster, {'Authorization': f'Bearer {cluster.key}'}) as session:
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS

        models = {m['name']: m for m in structured(await session.call_tool('list_models', {}))['models']}
        assert models['llama3.2:latest']['context_length'] and 'completion' in models['llama3.2:latest'][
            'capabilities']
        assert models['nomic-embed-text:latest']['modality'] == 'embedding'
        assert models['claude-haiku-4-5']['alias_for'] == 'qwen3:0.6b'

        answer = structured(await session.call_tool('ask_model', {
            'model': 'llama3.2', 'prompt': 'Say hello', 'max_tokens': 4}))
        assert answer['answer'] == expected_text('Say hello', 4)
        assert answer['finish_reason'] == 'length' and answer['usage']['completion_tokens'] == 4

        vectors = structured(await session.call_tool('embed', {
            'model': 'nomic-embed-text', 'texts': ['one', 'two']}))['embeddings']
        assert len(vectors) == 2 and len(vectors[0]) > 0 and vectors[0] != vectors[1]

        found = structured(await session.call_tool('web_search', {'query': 'northern lights', 'max_results': 3}))
        assert found['provider'] == 'searxng'
        assert found['results'] == expected_results('searxng', 'northern lights', 3)

    row = await audit_row(cluster, answer['request_id'])
    assert (row['user'], row['endpoint'], row['status']) == ('alice', '/v1/chat/completions', 'completed')
    assert row['user_agent'] == 'mindrouter-mcp/ask_model' and row['completion_tokens'] == 4
    assert (await audit_row(cluster, found['request_id']))['user_agent'] == 'mindrouter-mcp/web_search'
    listing = (await call(cluster, 'GET', '/api/admin/audit',  # written with the ask_model row (awaited above)
                          params={'endpoint': '/mcp list_models', 'user': 'alice'})).json()
    assert listing['total'] >= 1


async def test_the_x_api_key_header_is_accepted_too(cluster: Cluster) -> None:
    async with mcp_session(cluster, {'X-API-Key': cluster.key}) as session:
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS


async def test_a_bad_key_is_refused_before_any_session(cluster: Cluster) -> None:
    hello = {'jsonrpc': '2.0', 'id': 1, 'method': 'initialize', 'params': {
        'protocolVersion': '2025-06-18', 'capabilities': {}, 'clientInfo': {'name': 'probe', 'version': '1'}}}
    accept = {'Accept': 'application/json, text/event-stream'}
    for headers in ({'X-API-Key': ''}, {'Authorization': 'Bearer mr-not-a-key', 'X-API-Key': ''},
                    {'X-API-Key': 'mr-not-a-key'}):
        refused = await call(cluster, 'POST', '/mcp', json=hello, headers={**accept, **headers})
        assert refused.status_code == 401, headers
        assert refused.headers['www-authenticate'] == 'Bearer'
    with pytest.raises(Exception):  # noqa: B017 -- the SDK's own error type for a refused HTTP call varies
        async with mcp_session(cluster, {'Authorization': 'Bearer mr-not-a-key'}):
            pass
    accepted = await call(cluster, 'POST', '/mcp', key=cluster.key, json=hello, headers=accept)
    assert accepted.status_code == 200


async def test_only_post_is_served_no_stream_is_opened(cluster: Cluster) -> None:
    for method in ('GET', 'DELETE'):
        refused = await call(cluster, method, '/mcp', key=cluster.key, headers={'Accept': 'text/event-stream'})
        assert refused.status_code == 405 and refused.headers['allow'] == 'POST'
        assert refused.json()['error']['message'].startswith(method)


async def test_bad_arguments_come_back_as_tool_errors_that_say_why(cluster: Cluster) -> None:
    async with mcp_session(cluster, {'Authorization': f'Bearer {cluster.key}'}) as session:
        unknown = await session.call_tool('ask_model', {'model': 'no-such-model', 'prompt': 'hi'})
        assert unknown.is_error and "'no-such-model' is not served" in text(unknown)
        negative = await session.call_tool('ask_model', {'model': 'llama3.2', 'prompt': 'hi', 'max_tokens': 0})
        assert negative.is_error and 'max_tokens' in text(negative)
        missing = await session.call_tool('embed', {'model': 'nomic-embed-text'})
        assert missing.is_error and 'texts' in text(missing)
        empty = await session.call_tool('web_search', {'query': ''})
        assert empty.is_error and 'query' in text(empty)


async def test_a_call_past_the_callers_limit_is_a_tool_error_and_audited(cluster: Cluster) -> None:
    cli(cluster.env, 'create-user', 'bob', '--role', 'student')
    bob_key = cli(cluster.env, 'create-key', 'bob').strip()
    (await call(cluster, 'PUT', '/api/admin/users/bob/quota',
                json={'rpm_limit': 2, 'note': 'mcp test'})).raise_for_status()
    async with mcp_session(cluster, {'Authorization': f'Bearer {bob_key}'}) as session:
        assert not (await session.call_tool('list_models', {})).is_error
        assert not (await session.call_tool('ask_model', {'model': 'llama3.2', 'prompt': 'hi'})).is_error
        refused = await session.call_tool('ask_model', {'model': 'llama3.2', 'prompt': 'hi'})
        assert refused.is_error and 'refused by your limits' in text(refused)
        also = await session.call_tool('list_models', {})
        assert also.is_error and 'refused by your limits' in text(also)
    refusals: set[str] = set()
    deadline = time.monotonic() + 10
    while len(refusals) < 2 and time.monotonic() < deadline:  # the audit trail is written in batches
        await asyncio.sleep(0.1)
        rows = (await call(cluster, 'GET', '/api/admin/audit', params={'user': 'bob'})).json()['rows']
        refusals = {row['endpoint'] for row in rows if row['http_status'] == 429}
    assert refusals == {'/mcp list_models', '/v1/chat/completions'}
