"""The rules that turn an engine's own signals into the max_concurrent they support (core.registry.capacity)."""

from __future__ import annotations

from core.registry.capacity import (
    ADVICE_FRESH_SECONDS,
    CapacityAdvice,
    OllamaWatch,
    VllmWatch,
    ollama_queue_ms,
    vllm_queueing,
)
from core.registry.engine_load import EngineLoad
from core.translate.ollama_dialect import OllamaTimings

MS = 1_000_000  # nanoseconds


def test_vllm_queueing_below_our_limit_is_evidence_and_at_or_above_it_is_not() -> None:
    assert vllm_queueing(EngineLoad(running=4, waiting=3), max_concurrent=8) == 4
    assert vllm_queueing(EngineLoad(running=8, waiting=3), max_concurrent=8) is None  # others use it too
    assert vllm_queueing(EngineLoad(running=4, waiting=0), max_concurrent=8) is None
    assert vllm_queueing(EngineLoad(running=0, waiting=2), max_concurrent=8) == 1  # never advise 0
    assert vllm_queueing(EngineLoad(), max_concurrent=8) is None  # an engine that does not say
    assert vllm_queueing(None, max_concurrent=8) is None


def test_vllm_evidence_must_hold_on_consecutive_checks() -> None:
    watch = VllmWatch()
    queued, idle = EngineLoad(running=3, waiting=2), EngineLoad(running=1, waiting=0)
    assert watch.check(1, queued, max_concurrent=8) is None
    assert watch.check(1, idle, max_concurrent=8) is None  # the streak is broken
    assert watch.check(1, queued, max_concurrent=8) is None
    advice = watch.check(1, EngineLoad(running=4, waiting=1), max_concurrent=8)
    assert advice is not None and (advice.suggested, advice.registered) == (4, 8)  # the most seen running


def test_ollama_wait_is_what_its_durations_leave_unexplained() -> None:
    timings = OllamaTimings(total_duration=900 * MS, load_duration=100 * MS, prompt_eval_duration=50 * MS,
                            eval_duration=250 * MS)
    assert ollama_queue_ms(timings) == 500.0
    assert ollama_queue_ms(OllamaTimings(total_duration=40 * MS, load_duration=1 * MS)) is None  # an embedding
    assert ollama_queue_ms(OllamaTimings()) is None


def test_ollama_advice_is_one_below_the_least_concurrency_that_waited_and_said_once() -> None:
    watch = OllamaWatch()
    for concurrency, waited in [(1, 0.0), (2, 3.0), (3, 400.0), (4, 800.0), (5, 1200.0), (2, 20.0)]:
        watch.observe(7, concurrency=concurrency, waited_ms=waited)
    advice = watch.advice(7, max_concurrent=6)
    assert advice is not None and (advice.suggested, advice.signal) == (2, 'ollama_queue_time')
    assert watch.advice(7, max_concurrent=6) is None  # already reported
    assert watch.advice(7, max_concurrent=2) is None  # already at what the evidence supports
    assert watch.advice(7, max_concurrent=8) is not None  # a new limit: the same evidence, reported again


def test_a_few_slow_answers_are_not_enough() -> None:
    watch = OllamaWatch()
    watch.observe(1, concurrency=3, waited_ms=500.0)
    watch.observe(1, concurrency=4, waited_ms=500.0)
    assert watch.advice(1, max_concurrent=6) is None


def test_advice_is_shown_while_fresh_and_below_the_limit() -> None:
    advice = CapacityAdvice(suggested=2, registered=6, signal='vllm_waiting', evidence='...', observed_at=1000.0)
    assert advice.applies_to(6, now=1001.0)
    assert not advice.applies_to(2, now=1001.0)
    assert not advice.applies_to(6, now=1000.0 + ADVICE_FRESH_SECONDS + 1)
    assert CapacityAdvice.from_json(advice.to_json()) == advice
    assert CapacityAdvice.from_json({'suggested': 'x'}) is None and CapacityAdvice.from_json(None) is None
