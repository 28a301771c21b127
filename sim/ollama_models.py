"""The fake Ollama's model side: errors, the model registry, and the informational and management routes
(`/`, `/api/version`, `/api/tags`, `/api/ps`, `/api/show`, `/api/pull`, `/api/delete`). The inference routes are
in sim.ollama, whose `OllamaEngine` extends `OllamaModels`."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

from sim.catalog import LICENSE, ModelCard, model_card, normalize_name
from sim.config import SimConfig
from sim.engine import BaseEngine, dumps, json_object
from sim.http import Request, Response, StreamResponse
from sim.stats import SimStats

NDJSON = 'application/x-ndjson'
DEFAULT_KEEP_ALIVE_S = 300.0
FOREVER_S = 100 * 365 * 86400.0  # a negative keep_alive keeps the model loaded "forever"
BUSY_MESSAGE = 'server busy, please try again.  maximum pending requests exceeded'
FAULT_MESSAGE = 'llama runner process has terminated: exit status 2'

_second_cache: tuple[int, str] = (-1, '')


def rfc3339_nano(ns: int | None = None) -> str:
    """Go's time.RFC3339Nano for a UTC instant: nanoseconds with trailing zeros trimmed, 'Z' suffix."""
    global _second_cache
    if ns is None:
        ns = time.time_ns()
    seconds, frac = divmod(ns, 1_000_000_000)
    if _second_cache[0] != seconds:
        _second_cache = (seconds, time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds)))
    base = _second_cache[1]
    if not frac:
        return base + 'Z'
    return f'{base}.{frac:09d}'.rstrip('0') + 'Z'


_DURATION_PART = re.compile(r'(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)')
_UNIT_S = {'ns': 1e-9, 'us': 1e-6, 'µs': 1e-6, 'ms': 1e-3, 's': 1.0, 'm': 60.0, 'h': 3600.0}


def keep_alive_seconds(value: Any) -> float | None:
    """`keep_alive` as seconds: a number of seconds or a Go duration ("5m", "1h30m", "-1"). None if invalid."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith('-') else 1.0
    text = text.lstrip('+-')
    parts = _DURATION_PART.findall(text)
    if not parts or ''.join(n + u for n, u in parts) != text:
        return None
    return sign * sum(float(n) * _UNIT_S[u] for n, u in parts)


class OllamaModels(BaseEngine):
    engine = 'ollama'
    json_content_type = 'application/json; charset=utf-8'

    def __init__(self, config: SimConfig, stats: SimStats) -> None:
        super().__init__(config, stats)
        started = rfc3339_nano()
        self.modified_at: dict[str, str] = {normalize_name(m): started for m in config.models or []}
        # model -> (expires at, time.time() seconds; context length it was loaded with)
        self.loaded: dict[str, tuple[float, int]] = {}
        self._index_key: tuple[str, ...] | None = None
        self._index_cache: dict[str, ModelCard] = {}
        for method, path in (('GET', '/'), ('HEAD', '/')):
            self.route(method, path, self.root)
        self.route('GET', '/api/version', self.version)
        self.route('GET', '/api/tags', self.tags)
        self.route('GET', '/api/ps', self.ps)
        self.route('POST', '/api/show', self.show)
        self.route('POST', '/api/pull', self.pull)
        self.route('DELETE', '/api/delete', self.delete)

    # -- errors -------------------------------------------------------------------------------------------------
    def error_response(self, status: int, message: str) -> Response:
        return self.json({'error': message}, status)

    def busy_response(self) -> Response:
        return self.error_response(503, BUSY_MESSAGE)

    def fault_response(self) -> Response:
        return self.error_response(500, FAULT_MESSAGE)

    def _not_found_model(self, name: str) -> Response:
        return self.error_response(404, f"model '{name}' not found")

    def _body(self, request: Request) -> dict[str, Any] | Response:
        if not request.body.strip():
            return self.error_response(400, 'missing request body')
        body = json_object(request.body)
        if body is None:
            return self.error_response(400, 'invalid character in request body: expected a JSON object')
        return body

    # -- model registry -----------------------------------------------------------------------------------------
    def _index(self) -> dict[str, ModelCard]:
        """Normalised name -> card for the configured models (rebuilt when the model list changes)."""
        models = tuple(self.config.models or ())
        if self._index_key != models:
            self._index_cache = {normalize_name(m): model_card(normalize_name(m)) for m in models}
            self._index_key = models
            now = rfc3339_nano()
            for name in self._index_cache:
                self.modified_at.setdefault(name, now)  # a model added through the knobs was "created" now
        return self._index_cache

    def find(self, name: Any) -> ModelCard | None:
        if not isinstance(name, str) or not name:
            return None
        return self._index().get(normalize_name(name))

    def _cards(self) -> list[ModelCard]:
        return list(self._index().values())

    def _touch(self, card: ModelCard, keep_alive_s: float, num_ctx: int | None) -> float:
        """Mark `card` loaded (until now + keep_alive) and return the load delay this request pays, in seconds."""
        now = time.time()
        entry = self.loaded.get(card.name)
        cold = entry is None or entry[0] <= now
        ttl = FOREVER_S if keep_alive_s < 0 else keep_alive_s
        ctx = num_ctx if num_ctx and num_ctx > 0 else (entry[1] if entry else self.config.context_length)
        self.loaded[card.name] = (now + ttl, ctx)
        return self.config.load_ms / 1000 if cold else 0.0

    def _entry(self, card: ModelCard, expires: float, ctx: int) -> dict[str, Any]:
        return {
            'name': card.name,
            'model': card.name,
            'size': card.size,
            'digest': card.digest,
            'details': card.details(),
            'expires_at': rfc3339_nano(int(expires * 1e9)),
            'size_vram': card.size,
            'context_length': ctx,
        }

    # -- informational routes -----------------------------------------------------------------------------------
    async def root(self, request: Request) -> Response:
        return Response(200, b'Ollama is running', 'text/plain; charset=utf-8')

    async def version(self, request: Request) -> Response:
        return self.json({'version': self.config.version or '0.12.0'})

    async def tags(self, request: Request) -> Response:
        models = [
            {
                'name': c.name,
                'model': c.name,
                'modified_at': self.modified_at[c.name],
                'size': c.size,
                'digest': c.digest,
                'details': c.details(),
            }
            for c in self._cards()
        ]
        return self.json({'models': models})

    async def ps(self, request: Request) -> Response:
        now = time.time()
        known = {c.name: c for c in self._cards()}
        models = [
            self._entry(known[name], expires, ctx)
            for name, (expires, ctx) in self.loaded.items()
            if expires > now and name in known
        ]
        return self.json({'models': models})

    async def show(self, request: Request) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        name = body.get('model') or body.get('name')
        if not name:
            return self.error_response(400, 'model is required')
        card = self.find(name)
        if card is None:
            return self._not_found_model(name)
        return self.json(
            {
                'license': LICENSE,
                'modelfile': card.modelfile(),
                'parameters': card.parameters(),
                'template': card.template(),
                'details': card.details(),
                'model_info': card.model_info(self.config.context_length),
                'capabilities': list(card.capabilities),
                'modified_at': self.modified_at[card.name],
            }
        )

    # -- model management ---------------------------------------------------------------------------------------
    async def pull(self, request: Request) -> Response | StreamResponse:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        name = body.get('model') or body.get('name')
        if not isinstance(name, str) or not name:
            return self.error_response(400, 'model is required')
        normalized = normalize_name(name)
        card = model_card(normalized)
        if self.find(normalized) is None:
            models = self.config.models if self.config.models is not None else []
            models.append(normalized)
            self.config.models = models
        self.modified_at[normalized] = rfc3339_nano()
        if body.get('stream') is False:
            return self.json({'status': 'success'})
        return StreamResponse(self._pull_lines(card), NDJSON)

    async def _pull_lines(self, card: ModelCard) -> AsyncIterator[bytes]:
        yield dumps({'status': 'pulling manifest'}) + b'\n'
        layers = [(card.digest, card.size), (card.digest[::-1], 12_403)]
        for digest, total in layers:
            status = f'pulling {digest[:12]}'
            for completed in (0, total // 2, total):
                line = {'status': status, 'digest': f'sha256:{digest}', 'total': total, 'completed': completed}
                yield dumps(line) + b'\n'
        for status in ('verifying sha256 digest', 'writing manifest', 'success'):
            yield dumps({'status': status}) + b'\n'

    async def delete(self, request: Request) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        name = body.get('model') or body.get('name')
        card = self.find(name)
        if card is None:
            return self._not_found_model(str(name or ''))
        self.config.models = [m for m in self.config.models or [] if normalize_name(m) != card.name]
        self.loaded.pop(card.name, None)
        return Response(200, b'', None)
