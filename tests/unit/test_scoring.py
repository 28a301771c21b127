"""The backend score: each term moves a backend the way docs/scheduler.md says."""

from __future__ import annotations

from core.registry.engine_load import EngineLoad
from core.registry.view import BackendState, ModelInfo
from core.scheduler.scoring import rank, score


def backend(backend_id: int, **fields: object) -> BackendState:
    state = BackendState(id=backend_id, name=f'b{backend_id}', url=f'http://b{backend_id}', engine='ollama',
                         max_concurrent=4, status='healthy', models={'m': ModelInfo(name='m')})
    for name, value in fields.items():
        setattr(state, name, value)
    return state


def order(*backends: BackendState) -> list[int]:
    return [b.id for b in rank(list(backends), 'm')]


def test_an_idle_backend_goes_before_a_busy_one() -> None:
    assert order(backend(1, in_flight=3), backend(2, in_flight=1)) == [2, 1]
    assert order(backend(1, fleet_in_flight=3), backend(2, in_flight=1)) == [2, 1]  # other workers' count too


def test_a_backend_with_the_model_loaded_beats_an_idle_one_that_would_load_it() -> None:
    cold = backend(1, load=EngineLoad(loaded_models=('other',)))
    warm = backend(2, in_flight=3, load=EngineLoad(loaded_models=('m',)))
    assert order(cold, warm) == [2, 1]
    unknown = backend(3, in_flight=1)  # residency unknown (vLLM, or not checked yet): no penalty
    assert order(cold, unknown) == [3, 1]


def test_engine_queue_kv_cache_gpu_use_and_latency_each_count_against() -> None:
    base = backend(1)
    for heavier in (backend(2, load=EngineLoad(waiting=4)), backend(2, load=EngineLoad(kv_cache_usage=0.9)),
                    backend(2, gpu_utilization=95.0), backend(2, latency_ema_ms=3000.0)):
        assert score(heavier, 'm') > score(base, 'm')
        assert order(heavier, base) == [1, 2]


def test_admin_priority_breaks_ties() -> None:
    assert order(backend(1), backend(2, priority=3)) == [2, 1]
    assert order(backend(1, in_flight=1), backend(2, priority=5)) == [2, 1]  # 0.5 of priority beats a quarter load


def test_the_latency_average_follows_observations() -> None:
    state = backend(1)
    state.observe_latency(100.0)
    assert state.latency_ema_ms == 100.0
    state.observe_latency(600.0)
    assert state.latency_ema_ms == 200.0
