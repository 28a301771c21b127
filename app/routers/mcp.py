"""The MCP server at /mcp (streamable HTTP, the official `mcp` SDK): MindRouter's search, model list, chat and
embeddings as tools an agent calls.

Authentication is the API's own: the caller's key (`Authorization: Bearer` or `X-API-Key`) is checked by
app/deps.py's cached key check before the SDK sees the request, so a bad key is a 401 and no MCP session ever
starts. Each tool then does what a client of the HTTP API would do, as that key: `ask_model`, `embed` and
`web_search` hand a request to this process's own API in-process (app/loopback.py, as the chat page does), so
the caller's limits, the fair-share scheduler, failover and the audit trail apply exactly as to a request sent
over the network (the audit row's user agent says `mindrouter-mcp/<tool>`); `list_models` reads the in-memory
registry like GET /v1/models and is counted and audited as one request. A refusal (a bad argument, a limit, an
unknown model) comes back as a tool error (`isError`) that says why.

The server is stateless (every POST stands alone, so any worker of `serve --workers N` can answer it) and
answers in JSON rather than an SSE stream: its tools return whole answers. The SDK's session manager runs for
the app's lifetime in this router's lifespan (merged into the app's by include_router).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from pydantic import Field
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.deps import LOOPBACK_KEY_DIGEST, presented_api_key, require_api_key
from app.inference import Exchange
from app.loopback import Loopback
from app.responses import JSONResponse
from core import __version__
from core.accounts.security import api_key_digest
from core.errors import LimitExceeded, MindRouterError
from core.registry.families import modality
from core.registry.view import RegistryView
from core.search import MAX_QUERY_CHARS

PATH = '/mcp'
MANAGER_STATE = 'mcp_sessions'
_KEY_DIGEST = 'mindrouter.mcp.key_digest'  # ASGI scope: the caller's key, for the tools' in-process requests

INSTRUCTIONS = (
    "MindRouter is a university's LLM gateway. list_models shows the models you may use (with what each can do "
    "and its context length); ask_model asks one of them; embed turns texts into vectors; web_search searches "
    "the web. Every call counts against your account's limits.")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One MCP server and session manager per app (the SDK's manager runs once), alive as long as the app."""
    manager = _session_manager(build_server())
    setattr(app.state, MANAGER_STATE, manager)
    async with manager.run():
        yield
    setattr(app.state, MANAGER_STATE, None)


router = APIRouter(tags=['MCP'], lifespan=_lifespan)


class _McpEndpoint:
    """/mcp as a plain ASGI app (the SDK's transport writes its own responses): the key checked as on every API
    route, then the SDK's streamable-HTTP transport."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _serve(scope, receive, send)


async def _serve(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    if request.method != 'POST':  # stateless, whole answers: no stream to open (GET), no session to end (DELETE)
        refusal = JSONResponse({'jsonrpc': '2.0', 'id': None, 'error': {
            'code': -32000, 'message': f'{request.method} is not supported here: send JSON-RPC messages by POST'}},
            status_code=405, headers={'Allow': 'POST'})
        await refusal(scope, receive, send)
        return
    try:
        await require_api_key(request)
    except MindRouterError as exc:
        challenge = {'WWW-Authenticate': 'Bearer'} if exc.status_code == 401 else {}
        response = JSONResponse({'jsonrpc': '2.0', 'id': None, 'error': {'code': -32001, 'message': exc.message}},
                                status_code=exc.status_code, headers=challenge)
        await response(scope, receive, send)
        return
    scope[_KEY_DIGEST] = scope.get(LOOPBACK_KEY_DIGEST) or api_key_digest(presented_api_key(request) or '')
    manager: StreamableHTTPSessionManager | None = getattr(request.app.state, MANAGER_STATE, None)
    if manager is None:
        response = JSONResponse({'jsonrpc': '2.0', 'id': None, 'error': {
            'code': -32603, 'message': 'the MCP server is not running in this process'}}, status_code=503)
        await response(scope, receive, send)
        return
    await manager.handle_request(scope, receive, send)


# Every method reaches the endpoint, which answers all but POST with 405 itself: left to routing, a GET would
# fall through to the console mounted at / and get an HTML page.
router.routes.append(Route(PATH, _McpEndpoint(), methods=['GET', 'POST', 'DELETE', 'PUT', 'PATCH'],
                           include_in_schema=False))


def build_server() -> MCPServer:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server: MCPServer = MCPServer('mindrouter', version=__version__, instructions=INSTRUCTIONS, log_level='WARNING')
    if not handlers:  # the SDK calls logging.basicConfig; how this process logs is app/logs.py's business
        for handler in root.handlers:
            root.removeHandler(handler)
        root.setLevel(level)

    @server.tool(description='Search the web with the search provider this MindRouter is configured with. '
                             'Returns results with title, url and snippet.')
    async def web_search(query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS,
                                                     description='what to search for')],
                         ctx: Context,
                         max_results: Annotated[int | None, Field(ge=1, le=20, description='results wanted')] = None,
                         ) -> dict[str, Any]:
        body: dict[str, Any] = {'query': query}
        if max_results is not None:
            body['max_results'] = max_results
        answer = await _call_api(ctx, 'web_search', '/v1/search', body)
        return {'query': answer.get('query'), 'provider': answer.get('provider'), 'results': answer.get('data', []),
                'request_id': answer.get('request_id')}

    @server.tool(description='The models you can use: each with what it can do (capabilities such as tools, '
                             'vision, thinking, embedding), its context length, and for an alias the model that '
                             'answers it.')
    async def list_models(ctx: Context) -> dict[str, Any]:
        request = _http_request(ctx)
        exchange = Exchange(request, await require_api_key(request), f'{PATH} list_models')
        try:
            await exchange.admit()
        except LimitExceeded as exc:
            exchange.record(status='failed', http_status=exc.status_code, error=exc.message)  # as the routes do
            raise ToolError(f'refused by your limits: {exc.message}') from exc
        registry: RegistryView = request.app.state.registry
        cap = exchange.settings.context_length_cap
        models = [{'name': entry.info.name, 'capabilities': sorted(entry.info.capabilities),
                   'modality': modality(entry.info.capabilities), 'context_length': entry.info.effective_context(cap),
                   **({'alias_for': entry.alias_for} if entry.alias_for else {})}
                  for entry in registry.catalog()]
        exchange.record(status='completed', http_status=200)
        return {'models': models, 'request_id': exchange.request_id}

    @server.tool(description='Ask a model a question and get its whole answer. The request is queued fairly '
                             'with everyone else\'s and counts against your limits.')
    async def ask_model(model: Annotated[str, Field(min_length=1, description='a name from list_models')],
                        prompt: Annotated[str, Field(min_length=1, description='the question or task')],
                        ctx: Context,
                        system: Annotated[str | None, Field(description='instructions for the model')] = None,
                        max_tokens: Annotated[int | None, Field(ge=1, description='the longest answer')] = None,
                        temperature: Annotated[float | None, Field(ge=0, le=2)] = None) -> dict[str, Any]:
        messages = ([{'role': 'system', 'content': system}] if system else []) + [{'role': 'user', 'content': prompt}]
        body: dict[str, Any] = {'model': model, 'messages': messages}
        if max_tokens is not None:
            body['max_tokens'] = max_tokens
        if temperature is not None:
            body['temperature'] = temperature
        answer = await _call_api(ctx, 'ask_model', '/v1/chat/completions', body)
        choice = (answer.get('choices') or [{}])[0]
        message = choice.get('message') or {}
        result = {'model': answer.get('model'), 'answer': message.get('content') or '',
                  'finish_reason': choice.get('finish_reason'), 'usage': answer.get('usage'),
                  'request_id': answer.get('request_id')}
        if message.get('reasoning_content'):
            result['reasoning'] = message['reasoning_content']
        return result

    @server.tool(description='Turn texts into embedding vectors with an embedding model (see list_models).')
    async def embed(model: Annotated[str, Field(min_length=1, description='an embedding model from list_models')],
                    texts: Annotated[list[str], Field(min_length=1, max_length=256, description='the texts')],
                    ctx: Context) -> dict[str, Any]:
        answer = await _call_api(ctx, 'embed', '/v1/embeddings', {'model': model, 'input': texts})
        vectors = [item.get('embedding') for item in sorted(answer.get('data') or [], key=lambda i: i.get('index', 0))]
        return {'model': answer.get('model'), 'embeddings': vectors, 'usage': answer.get('usage'),
                'request_id': answer.get('request_id')}

    return server


async def _call_api(ctx: Context, tool: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` to this process's own API as the caller's key; its JSON answer (with `request_id`, the audit
    row's id, when the API gave one), or a ToolError saying why not."""
    request = _http_request(ctx)
    client = request.client
    loopback = Loopback(request.app)
    async with loopback.stream(key_digest=request.scope[_KEY_DIGEST], path=path, body=body,
                               user_agent=f'mindrouter-mcp/{tool}',
                               client=(client.host, client.port) if client else ('127.0.0.1', 0)) as response:
        raw = await response.read()
    try:
        answer = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        answer = {}
    if response.status != 200:
        error = answer.get('error') if isinstance(answer, dict) else None
        message = error.get('message') if isinstance(error, dict) else None
        reason = message or f'the API answered {response.status}'
        if response.status == 429:
            raise ToolError(f'refused by your limits: {reason}')
        raise ToolError(reason)
    if not isinstance(answer, dict):
        raise ToolError('the API sent an answer this tool cannot read')
    if 'x-request-id' in response.headers:
        answer['request_id'] = response.headers['x-request-id']
    return answer


def _http_request(ctx: Context) -> Request:
    """The HTTP request that carried this tool call (the transport hands it to the tool's context)."""
    request = ctx.request_context.request
    if not isinstance(request, Request):
        raise ToolError('this tool is served over HTTP only')
    return request


def _session_manager(server: MCPServer) -> StreamableHTTPSessionManager:
    """Stateless JSON transport. No DNS-rebinding guard on the Host header: every request must carry the user's
    API key, which a page in someone's browser does not have, and the gateway is reached under many names."""
    server.streamable_http_app(streamable_http_path=PATH, stateless_http=True, json_response=True, host='0.0.0.0')
    return server.session_manager
