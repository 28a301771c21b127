"""Which backend first, among those that serve the model and take requests: a score, lowest first.

| term | range | why |
|---|---|---|
| slots in use: in flight (all workers) / max_concurrent | 0 to 1 | spread the load |
| cold model: an Ollama backend that has not loaded the model | +1 | a load takes seconds to minutes |
| engine queue: vLLM's waiting requests / max_concurrent | 0 to 0.5 | the engine itself is behind |
| KV cache in use (vLLM) | 0 to 0.25 | long contexts will queue inside the engine |
| GPU utilisation of the backend's own GPUs | 0 to 0.25 | something else may be using them |
| latency: EMA of time to first byte, as ema / (ema + 2 s) | 0 to 0.25 | a slow or overloaded box |
| admin priority | -0.1 per point | an admin's preference, worth a tenth of a backend's slots |

Unhealthy, disabled, draining backends, those on an offline node and those whose circuit breaker is open
(cooling down after a failed request) are never candidates.
"""

from __future__ import annotations

from core.registry.view import BackendState

COLD_MODEL = 1.0
ENGINE_QUEUE = 0.5
KV_CACHE = 0.25
GPU_BUSY = 0.25
LATENCY = 0.25
LATENCY_SCALE_MS = 2000.0
PRIORITY_STEP = 0.1


def score(backend: BackendState, model: str) -> float:
    value = backend.total_in_flight / backend.max_concurrent
    load = backend.load
    if load is not None:
        if load.loaded_models is not None and model not in load.loaded_models:
            value += COLD_MODEL
        if load.waiting:
            value += ENGINE_QUEUE * min(1.0, load.waiting / backend.max_concurrent)
        if load.kv_cache_usage:
            value += KV_CACHE * min(1.0, load.kv_cache_usage)
    if backend.gpu_utilization is not None:
        value += GPU_BUSY * min(1.0, backend.gpu_utilization / 100)
    if backend.latency_ema_ms is not None:
        value += LATENCY * backend.latency_ema_ms / (backend.latency_ema_ms + LATENCY_SCALE_MS)
    value -= PRIORITY_STEP * backend.priority
    return value


def rank(backends: list[BackendState], model: str) -> list[BackendState]:
    """Best first. Sorting is stable: equal scores keep registration order."""
    if len(backends) > 1:
        backends.sort(key=lambda backend: score(backend, model))
    return backends
