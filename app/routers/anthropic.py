"""Anthropic Messages surface (/anthropic/v1): point the Anthropic SDK's base_url at /anthropic.

`POST /v1/messages` (and its count_tokens) answer at the server root too, so that a client that appends
`/v1/messages` to its base URL (Claude Code's ANTHROPIC_BASE_URL, the Anthropic SDK) may be given the server
itself. No other Anthropic path is aliased: `/v1/models` is the OpenAI list, which these clients do not call.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import inference, intake
from app.deps import Caller
from app.inference import Exchange
from app.responses import JSONResponse
from core.gateway.service import Gateway
from core.registry.view import RegistryView
from core.translate import anthropic_dialect as dialect
from core.translate.anthropic_stream import AnthropicMessagesEncoder
from core.translate.canonical import ChatRequest

router = APIRouter(prefix='/anthropic/v1', tags=['Anthropic'])
root_router = APIRouter(prefix='/v1', tags=['Anthropic'])

_CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text with BPE tokenizers


async def _messages(exchange: Exchange) -> Response:
    req = dialect.parse_messages(await intake.read_json(exchange.request))
    if req.stream:
        return await inference.stream(exchange, req, lambda r, ex: AnthropicMessagesEncoder(
            r, request_id=ex.request_id, model=r.model, input_tokens=estimate_tokens(r)))
    return await inference.complete(exchange, req, lambda answer, ex: dialect.render_message(
        answer, request_id=ex.request_id, model=req.model))


# One pipeline, two doors; each is audited under the path the client called.
messages = router.post('/messages')(intake.route('/anthropic/v1/messages')(_messages))
root_messages = root_router.post('/messages')(intake.route('/v1/messages')(_messages))


@router.post('/messages/count_tokens')
@root_router.post('/messages/count_tokens')
async def count_tokens(request: Request, caller: Caller) -> JSONResponse:
    """An estimate (characters / 4): the gateway has no tokenizer for every model it serves."""
    body = await intake.read_json(request)
    if isinstance(body, dict):
        body.setdefault('max_tokens', 1)  # count_tokens takes no max_tokens; the parser requires one
    req = dialect.parse_messages(body)
    gateway: Gateway = request.app.state.gateway
    gateway.resolve(req.model)  # an unknown model is a 404 here too
    return JSONResponse({'input_tokens': estimate_tokens(req)})


@router.get('/models')
async def list_models(request: Request, caller: Caller) -> JSONResponse:
    registry: RegistryView = request.app.state.registry
    data: list[dict[str, Any]] = [
        {'type': 'model', 'id': entry.info.name,
         'display_name': f'{entry.info.name} → {entry.alias_for}' if entry.alias_for else entry.info.name,
         'created_at': '1970-01-01T00:00:00Z'} for entry in registry.catalog(speech=False)]
    return JSONResponse({'data': data, 'has_more': False, 'first_id': data[0]['id'] if data else None,
                         'last_id': data[-1]['id'] if data else None})


def estimate_tokens(req: ChatRequest) -> int:
    characters = len(req.prompt) + sum(len(m.content) + 4 for m in req.messages)
    return max(1, characters // _CHARS_PER_TOKEN)
