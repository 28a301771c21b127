"""Ask an engine what it serves: Ollama `/api/tags` + `/api/show`, vLLM `/v1/models`, speech servers (Speaches,
Kokoro-FastAPI) `/v1/models` + `/v1/audio/voices`."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.models import Engine
from core.registry.families import speech_capabilities, vllm_capabilities

_SHOW_CONCURRENCY = 4  # /api/show calls in flight per backend during discovery


@dataclass(slots=True)
class DiscoveredModel:
    name: str
    family: str | None = None
    context_length: int | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    size_bytes: int | None = None
    capabilities: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Discovery:
    models: list[DiscoveredModel]
    version: str | None = None


class DiscoveryError(Exception):
    """The engine could not be asked, or answered something unusable; the message says which."""


async def discover(client: httpx.AsyncClient, url: str, engine: str, *, timeout: float = 10.0) -> Discovery:
    base = url.rstrip('/')
    try:
        if engine == Engine.ollama:
            return await _discover_ollama(client, base, timeout)
        if engine == Engine.vllm:
            return await _discover_vllm(client, base, timeout)
        if engine in (Engine.tts, Engine.stt):
            return await _discover_speech(client, base, engine, timeout)
    except httpx.HTTPStatusError as exc:
        raise DiscoveryError(f'{exc.request.url} answered HTTP {exc.response.status_code}') from exc
    except httpx.HTTPError as exc:
        raise DiscoveryError(f'cannot reach {base}: {exc.__class__.__name__}: {exc}'.rstrip(': ')) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DiscoveryError(f'{base} answered something that is not a {engine} model list: {exc}') from exc
    raise DiscoveryError(f'unknown engine {engine!r}')


async def _discover_ollama(client: httpx.AsyncClient, base: str, timeout: float) -> Discovery:
    tags = await _get_json(client, f'{base}/api/tags', timeout)
    semaphore = asyncio.Semaphore(_SHOW_CONCURRENCY)

    async def describe(entry: dict[str, Any]) -> DiscoveredModel:
        name = str(entry['name'])
        details = entry.get('details') or {}
        async with semaphore:
            show = await _post_json(client, f'{base}/api/show', {'model': name}, timeout)
        info = show.get('model_info') or {}
        context = next((int(v) for k, v in info.items() if k.endswith('.context_length') and isinstance(v, int)),
                       None)
        return DiscoveredModel(
            name=name, family=details.get('family'), context_length=context,
            parameter_size=details.get('parameter_size'), quantization=details.get('quantization_level'),
            size_bytes=entry.get('size'), capabilities=list(show.get('capabilities') or []),
            details={'digest': entry.get('digest'), 'modified_at': entry.get('modified_at'), 'details': details},
        )

    models = await asyncio.gather(*(describe(entry) for entry in tags.get('models') or []))
    version = None
    with contextlib.suppress(httpx.HTTPError):  # an old Ollama without /api/version still serves
        version = (await _get_json(client, f'{base}/api/version', timeout)).get('version')
    return Discovery(models=list(models), version=version)


async def _discover_vllm(client: httpx.AsyncClient, base: str, timeout: float) -> Discovery:
    listing = await _get_json(client, f'{base}/v1/models', timeout)
    models = []
    for entry in listing['data']:
        name = str(entry['id'])
        models.append(DiscoveredModel(
            name=name, context_length=entry.get('max_model_len'),
            capabilities=vllm_capabilities(name),  # vLLM does not say what a model does: its family does
            details={'owned_by': entry.get('owned_by'), 'root': entry.get('root')},
        ))
    version = None
    with contextlib.suppress(httpx.HTTPError):
        version = (await _get_json(client, f'{base}/version', timeout)).get('version')
    return Discovery(models=models, version=version)


async def _discover_speech(client: httpx.AsyncClient, base: str, engine: str, timeout: float) -> Discovery:
    """A speech server's models, what each does (Speaches says `task`; Kokoro-FastAPI says nothing: its names and
    the engine decide), and the voices of its text-to-speech models (`/v1/audio/voices`, when it has it)."""
    listing = await _get_json(client, f'{base}/v1/models', timeout)
    models = []
    for entry in listing['data']:
        name = str(entry['id'])
        task = entry.get('task') if isinstance(entry.get('task'), str) else None
        models.append(DiscoveredModel(name=name, capabilities=speech_capabilities(name, task=task, engine=engine),
                                      details={'owned_by': entry.get('owned_by'), 'task': task}))
    if any('speech' in m.capabilities for m in models):
        voices: dict[str | None, list[str]] = {}
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):  # voices unknown: any is sent on
            for entry in (await _get_json(client, f'{base}/v1/audio/voices', timeout)).get('voices') or []:
                voice, owner = _voice(entry)
                if voice:
                    voices.setdefault(owner, []).append(voice)
        for found in models:
            listed = voices.get(found.name, []) + voices.get(None, [])
            if 'speech' in found.capabilities and listed:
                found.details['voices'] = sorted(set(listed))
    return Discovery(models=models)


def _voice(entry: object) -> tuple[str | None, str | None]:
    """(voice, model it belongs to or None for every model) from a voice listing's entry: Kokoro-FastAPI's
    `{"id", "name"}` or legacy plain string, Speaches' `{"voice_id"/"name", "model_id"}`."""
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict):
        name = entry.get('voice_id') or entry.get('id') or entry.get('name')
        model = entry.get('model_id')
        return (str(name) if name else None), (str(model) if model else None)
    return None, None


async def _get_json(client: httpx.AsyncClient, url: str, timeout: float) -> dict[str, Any]:
    response = await client.get(url, timeout=timeout)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def _post_json(client: httpx.AsyncClient, url: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    response = await client.post(url, json=payload, timeout=timeout)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body
