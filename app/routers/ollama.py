"""Native Ollama surface (/api): chat, generate, embeddings and the model listings Ollama clients use."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request
from starlette.responses import Response

from app import inference, intake
from app.deps import Caller, require_api_key
from app.inference import Exchange
from app.responses import JSONResponse
from core.errors import ModelNotFound
from core.models import Engine
from core.registry.view import ModelInfo, RegistryView
from core.translate import ollama_dialect as dialect
from core.translate.canonical import ChatRequest
from core.translate.ollama_dialect import OllamaTimings
from core.translate.ollama_stream import OllamaChatEncoder, OllamaGenerateEncoder

router = APIRouter(prefix='/api', tags=['Ollama'])

# What /api/version reports: the Ollama API level this gateway speaks (clients gate features on it).
OLLAMA_COMPAT_VERSION = '0.12.0'


@router.post('/chat')
@intake.route('/api/chat')
async def chat(exchange: Exchange) -> Response:
    req = dialect.parse_chat(await intake.read_json(exchange.request))
    if not req.messages:
        return _loaded(exchange, req, 'message')
    if req.stream:
        return await inference.stream(exchange, req, lambda r, ex: OllamaChatEncoder(
            r, model=r.model, started_ns=ex.started_ns))
    return await inference.complete(exchange, req, lambda answer, ex: dialect.render_chat(
        answer, model=req.model, created=time.time(), timings=_timings(ex)))


@router.post('/generate')
@intake.route('/api/generate')
async def generate(exchange: Exchange) -> Response:
    req = dialect.parse_generate(await intake.read_json(exchange.request))
    if not req.prompt and not req.messages:
        return _loaded(exchange, req, 'response')
    if req.stream:
        return await inference.stream(exchange, req, lambda r, ex: OllamaGenerateEncoder(
            r, model=r.model, started_ns=ex.started_ns))
    return await inference.complete(exchange, req, lambda answer, ex: dialect.render_generate(
        answer, model=req.model, created=time.time(), timings=_timings(ex)))


@router.post('/embed')
@intake.route('/api/embed')
async def embed(exchange: Exchange) -> Response:
    req = dialect.parse_embed(await intake.read_json(exchange.request))
    return await inference.embed(exchange, req, lambda answer, ex: dialect.render_embed(
        answer, model=req.model, timings=_timings(ex)))


@router.post('/embeddings')
@intake.route('/api/embeddings')
async def embeddings(exchange: Exchange) -> Response:
    """The legacy single-prompt endpoint: `{"embedding": [...]}`."""
    req = dialect.parse_embeddings(await intake.read_json(exchange.request))
    return await inference.embed(exchange, req, lambda answer, ex: dialect.render_embeddings(answer))


@router.get('/tags')
async def tags(request: Request, caller: Caller) -> JSONResponse:
    registry: RegistryView = request.app.state.registry
    return JSONResponse({'models': [_tag(entry.info) | ({'alias_for': entry.alias_for} if entry.alias_for else {})
                                    for entry in registry.catalog(speech=False)]})


@router.get('/ps')
async def running(request: Request, caller: Caller) -> JSONResponse:
    """Models loaded now: what each Ollama backend reports in its own /api/ps, plus every vLLM model
    (vLLM keeps its model loaded while it runs)."""
    registry: RegistryView = request.app.state.registry
    client: httpx.AsyncClient = request.app.state.control_client
    entries = registry.catalog(include_aliases=False)
    ollama_urls = {b.url for entry in entries for b in entry.backends if b.engine == Engine.ollama}
    loaded: dict[str, dict[str, Any]] = {}
    for listing in await asyncio.gather(*(_ps(client, url) for url in sorted(ollama_urls))):
        for model in listing:
            loaded.setdefault(str(model.get('name')), model)
    for entry in entries:
        if any(b.engine == Engine.vllm for b in entry.backends) and entry.info.name not in loaded:
            loaded[entry.info.name] = {**_tag(entry.info), 'expires_at': '0001-01-01T00:00:00Z',
                                       'size_vram': entry.info.size_bytes or 0,
                                       'context_length': entry.info.context_length or 0}
    return JSONResponse({'models': list(loaded.values())})


@router.post('/show')
async def show(request: Request) -> JSONResponse:
    await require_api_key(request)
    body = await intake.read_json(request)
    name = str(body.get('model') or body.get('name') or '') if isinstance(body, dict) else ''
    registry: RegistryView = request.app.state.registry
    info = registry.model_info(name)
    if info is None:
        raise ModelNotFound(f"model '{name}' not found", param='model')
    arch = info.family or 'unknown'
    return JSONResponse({
        'license': '', 'modelfile': '', 'parameters': '', 'template': '',
        'details': _details(info), 'capabilities': sorted(info.capabilities),
        'model_info': {'general.architecture': arch, f'{arch}.context_length': info.context_length or 0},
        'modified_at': _modified(info),
    })


@router.get('/version')
async def version(caller: Caller) -> JSONResponse:
    return JSONResponse({'version': OLLAMA_COMPAT_VERSION})


def _loaded(exchange: Exchange, req: ChatRequest, field: str) -> JSONResponse:
    """Ollama's "load the model" request (no messages / empty prompt): answered without a backend call."""
    model = exchange.gateway.resolve(req.model)
    body: dict[str, Any] = {'model': model, 'created_at': dialect.rfc3339(time.time())}
    body[field] = {'role': 'assistant', 'content': ''} if field == 'message' else ''
    body.update(done_reason='load', done=True)
    exchange.record(status='completed', http_status=200, model=model)
    response = JSONResponse(body)
    response.headers['X-Request-ID'] = exchange.request_id
    return response


def _timings(exchange: Exchange) -> OllamaTimings:
    return OllamaTimings(total_duration=time.perf_counter_ns() - exchange.started_ns)


def _tag(info: ModelInfo) -> dict[str, Any]:
    digest = info.details.get('digest') if isinstance(info.details, dict) else None
    return {'name': info.name, 'model': info.name, 'modified_at': _modified(info), 'size': info.size_bytes or 0,
            'digest': digest or '', 'details': _details(info)}


def _details(info: ModelInfo) -> dict[str, Any]:
    listed = info.details.get('details') if isinstance(info.details, dict) else None
    if isinstance(listed, dict):
        return listed
    return {'parent_model': '', 'format': '', 'family': info.family or '', 'families': [info.family] if info.family
            else None, 'parameter_size': info.parameter_size or '', 'quantization_level': info.quantization or ''}


def _modified(info: ModelInfo) -> str:
    modified = info.details.get('modified_at') if isinstance(info.details, dict) else None
    return str(modified) if modified else '1970-01-01T00:00:00Z'


async def _ps(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    try:
        response = await client.get(f'{url}/api/ps', timeout=2.0)
        response.raise_for_status()
        models = response.json().get('models') or []
        return [m for m in models if isinstance(m, dict)]
    except (httpx.HTTPError, ValueError):
        return []  # a backend that does not answer has nothing loaded, as far as we can tell
