"""How busy an engine says it is: vLLM's own Prometheus metrics (running and waiting requests, KV-cache
use), Ollama's `/api/ps` (models loaded in memory now). Read with each health check; a backend that
cannot say is not unhealthy for it (the figures are just unknown)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from core.models import Engine

# vLLM renamed gpu_cache_usage_perc to kv_cache_usage_perc (0.x); accept either.
_KV_CACHE = ('vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc')


@dataclass(frozen=True, slots=True)
class EngineLoad:
    running: int | None = None  # requests the engine is generating for now
    waiting: int | None = None  # requests queued inside the engine
    kv_cache_usage: float | None = None  # 0..1
    loaded_models: tuple[str, ...] | None = None  # Ollama: models in memory now

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> EngineLoad | None:
        if not data:
            return None
        loaded = data.get('loaded_models')
        return cls(running=data.get('running'), waiting=data.get('waiting'), kv_cache_usage=data.get('kv_cache_usage'),
                   loaded_models=tuple(loaded) if loaded is not None else None)


async def read_load(client: httpx.AsyncClient, url: str, engine: str) -> EngineLoad | None:
    try:
        if engine == Engine.vllm:
            return await _vllm(client, url)
        if engine == Engine.ollama:
            return await _ollama(client, url)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return None


async def _vllm(client: httpx.AsyncClient, url: str) -> EngineLoad:
    response = await client.get(f'{url}/metrics', timeout=5.0)
    response.raise_for_status()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:  # one sample per model (label model_name): add them up
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    kv = next((totals[name] for name in _KV_CACHE if name in totals), None)
    running = totals.get('vllm:num_requests_running')
    waiting = totals.get('vllm:num_requests_waiting')
    return EngineLoad(running=int(running) if running is not None else None,
                      waiting=int(waiting) if waiting is not None else None,
                      kv_cache_usage=round(kv, 4) if kv is not None else None)


async def _ollama(client: httpx.AsyncClient, url: str) -> EngineLoad:
    response = await client.get(f'{url}/api/ps', timeout=5.0)
    response.raise_for_status()
    models = response.json().get('models') or []
    return EngineLoad(loaded_models=tuple(str(m['name']) for m in models if isinstance(m, dict) and 'name' in m))
