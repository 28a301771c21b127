"""OpenAI-compatible surface (/v1): chat, completions, embeddings, rerank and score (as vLLM serves them), and
the model catalog with each model's modality."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import inference, intake
from app.deps import Caller
from app.inference import Exchange
from app.responses import JSONResponse
from core.errors import ModelNotFound
from core.registry.families import modality
from core.registry.view import CatalogEntry, RegistryView
from core.scheduler.cost import CHARS_PER_TOKEN
from core.translate import openai_dialect as dialect
from core.translate import pooling
from core.translate.openai_stream import OpenAIChatEncoder, OpenAICompletionEncoder

router = APIRouter(prefix='/v1', tags=['OpenAI'])


@router.post('/chat/completions')
@intake.route('/v1/chat/completions')
async def chat_completions(exchange: Exchange) -> Response:
    chat = dialect.parse_chat(await intake.read_json(exchange.request))
    if chat.stream:
        return await inference.stream(exchange, chat, lambda req, ex: OpenAIChatEncoder(
            req, request_id=ex.request_id, model=req.model, created=ex.created))
    return await inference.complete(exchange, chat, lambda answer, ex: dialect.render_chat(
        answer, request_id=ex.request_id, created=ex.created, model=chat.model))


@router.post('/completions')
@intake.route('/v1/completions')
async def completions(exchange: Exchange) -> Response:
    chat = dialect.parse_completion(await intake.read_json(exchange.request))
    if chat.stream:
        return await inference.stream(exchange, chat, lambda req, ex: OpenAICompletionEncoder(
            req, request_id=ex.request_id, model=req.model, created=ex.created))
    return await inference.complete(exchange, chat, lambda answer, ex: dialect.render_completion(
        answer, request_id=ex.request_id, created=ex.created, model=chat.model))


@router.post('/embeddings')
@intake.route('/v1/embeddings')
async def embeddings(exchange: Exchange) -> Response:
    wanted = dialect.parse_embeddings(await intake.read_json(exchange.request))
    return await inference.embed(exchange, wanted, lambda answer, ex: dialect.render_embeddings(
        answer, model=wanted.model, encoding_format=wanted.encoding_format))


@router.post('/rerank')
@intake.route('/v1/rerank')
async def rerank(exchange: Exchange) -> Response:
    wanted = pooling.parse_rerank(await intake.read_json(exchange.request))
    wanted.model = exchange.gateway.resolve(wanted.model)
    cost = max(1, (len(wanted.query) * len(wanted.documents) + sum(map(len, wanted.documents))) // CHARS_PER_TOKEN)
    return await inference.one_shot(
        exchange, wanted.model, cost, lambda requester: exchange.gateway.rerank(wanted, requester),
        lambda answer, ex: pooling.render_rerank(answer, wanted, request_id=ex.request_id),
        lambda answer: answer.total_tokens)


@router.post('/score')
@intake.route('/v1/score')
async def score(exchange: Exchange) -> Response:
    wanted = pooling.parse_score(await intake.read_json(exchange.request))
    wanted.model = exchange.gateway.resolve(wanted.model)
    cost = max(1, sum(map(len, wanted.text_1 * len(wanted.text_2) + wanted.text_2)) // CHARS_PER_TOKEN)
    return await inference.one_shot(
        exchange, wanted.model, cost, lambda requester: exchange.gateway.score(wanted, requester),
        lambda answer, ex: pooling.render_score(answer, request_id=ex.request_id, created=ex.created),
        lambda answer: answer.prompt_tokens)


@router.get('/models')
async def list_models(request: Request, caller: Caller) -> JSONResponse:
    registry: RegistryView = request.app.state.registry
    return JSONResponse({'object': 'list', 'data': [_model(entry) for entry in registry.catalog()]})


@router.get('/models/{model:path}')
async def get_model(model: str, request: Request, caller: Caller) -> JSONResponse:
    registry: RegistryView = request.app.state.registry
    name = model if registry.alias_target(model) else registry.resolve(model)  # an alias answers as itself
    entry = next((e for e in registry.catalog() if e.info.name == name), None)
    if entry is None:
        raise ModelNotFound(f"The model '{model}' does not exist", param='model')
    return JSONResponse(_model(entry))


def _model(entry: CatalogEntry) -> dict[str, Any]:
    info = entry.info
    return {'id': info.name, 'object': 'model', 'created': 0, 'owned_by': 'mindrouter',
            'context_length': info.context_length, 'modality': modality(info.capabilities),
            'capabilities': sorted(info.capabilities)} | ({'alias_for': entry.alias_for} if entry.alias_for else {}) \
        | ({'voices': info.voices} if info.voices else {})
