"""Model management on an Ollama backend: pull (with progress) and delete, as an admin asks."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx
import orjson

from core.errors import InvalidRequest, NotFound, UpstreamError

# A pull downloads gigabytes: no read timeout, but a connect timeout so a dead backend fails fast.
_PULL_TIMEOUT = httpx.Timeout(10.0, read=None)


async def pull(client: httpx.AsyncClient, url: str, model: str) -> AsyncGenerator[dict[str, Any], None]:
    """Ollama's progress objects as they come (`{"status": ..., "total", "completed"}`), ending with
    `{"status": "success"}`; an `{"error": ...}` object from Ollama is raised as UpstreamError."""
    _require(model)
    try:
        async with client.stream('POST', f'{url}/api/pull', json={'model': model, 'stream': True},
                                 timeout=_PULL_TIMEOUT) as response:
            if response.status_code >= 400:
                raise UpstreamError(_message(await response.aread()), status_code=_status(response.status_code))
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                try:
                    progress = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn or foreign line: progress is informational
                if isinstance(progress, dict) and 'error' in progress:
                    raise UpstreamError(str(progress['error']))
                if isinstance(progress, dict):
                    yield progress
    except httpx.HTTPError as exc:
        raise UpstreamError(f'the pull from {url} failed: {exc.__class__.__name__}') from exc


async def delete(client: httpx.AsyncClient, url: str, model: str) -> None:
    _require(model)
    try:
        response = await client.request('DELETE', f'{url}/api/delete', json={'model': model}, timeout=30.0)
    except httpx.HTTPError as exc:
        raise UpstreamError(f'cannot reach {url}: {exc.__class__.__name__}') from exc
    if response.status_code == 404:
        raise NotFound(f"model '{model}' is not on this backend", param='model')
    if response.status_code >= 400:
        raise UpstreamError(_message(response.content), status_code=_status(response.status_code))


def _require(model: str) -> None:
    if not model or len(model) > 255 or any(c.isspace() for c in model):
        raise InvalidRequest(f'model must be an Ollama model name like llama3.2:3b, not {model!r}', param='model')


def _message(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors='replace')[:300] or 'no message'
    return str(parsed.get('error') or parsed) if isinstance(parsed, dict) else str(parsed)


def _status(status: int) -> int:
    return status if 400 <= status < 500 else 502
