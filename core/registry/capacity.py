"""Hidden engine queues: evidence that a backend's `max_concurrent` is above what its engine runs at once.

A vLLM started with `--max-num-seqs 4` or an Ollama with `OLLAMA_NUM_PARALLEL=4`, registered here with
`max_concurrent` 8, accepts the four extra requests and queues them inside the engine, where fair share
cannot reach them: a student's burst waits ahead of everyone the scheduler would have let in first. The
engines say so themselves, and this module reads what they say:

- vLLM reports `num_requests_waiting` in its metrics (read with every health check). Requests waiting
  inside it while it runs fewer than `max_concurrent` means it cannot run more than it runs: that count
  is the `max_concurrent` the evidence supports. One check can catch a request between arrival and the
  engine's next step, so the evidence has to hold on consecutive checks.
- Ollama reports no queue, but its final answer carries its own durations: `total_duration` counts from
  the moment the request arrived, `load_duration`, `prompt_eval_duration` and `eval_duration` what it spent
  working. What is left is time the request waited for a parallel slot. Requests that waited when this
  gateway had `n` in flight on the backend (itself included) say the engine runs fewer than `n`.

The advice is stored on the backend (every process can observe, any process can show it) and stays until
an admin applies it, changes `max_concurrent` or a newer observation replaces it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from core.registry.engine_load import EngineLoad
from core.translate.ollama_dialect import OllamaTimings

VLLM_CHECKS_NEEDED = 2  # consecutive health checks showing requests queued inside the engine
OLLAMA_WAITS_NEEDED = 3  # answers that waited for a slot, among the recent ones
OLLAMA_RECENT = 50  # answers per backend kept as evidence
OLLAMA_MIN_WAIT_MS = 50.0  # below this a "wait" is scheduling noise, not a queue
ADVICE_FRESH_SECONDS = 3600.0  # older advice is not shown: the engine may have been restarted with more slots


@dataclass(frozen=True, slots=True)
class CapacityAdvice:
    suggested: int  # the max_concurrent the evidence supports
    registered: int  # the max_concurrent the backend had when the evidence was seen
    signal: str  # vllm_waiting | ollama_queue_time
    evidence: str  # one sentence an admin can check
    observed_at: float  # Unix time

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CapacityAdvice | None:
        if not data:
            return None
        try:
            return cls(suggested=int(data['suggested']), registered=int(data['registered']),
                       signal=str(data['signal']), evidence=str(data['evidence']),
                       observed_at=float(data['observed_at']))
        except (KeyError, TypeError, ValueError):
            return None

    def applies_to(self, max_concurrent: int, *, now: float | None = None) -> bool:
        """Worth showing: still below what the backend allows, and seen recently."""
        fresh = (now if now is not None else time.time()) - self.observed_at < ADVICE_FRESH_SECONDS
        return fresh and self.suggested < max_concurrent


def vllm_queueing(load: EngineLoad | None, *, max_concurrent: int) -> int | None:
    """What vLLM runs at once when it queues requests below our limit (None: no sign of a hidden queue)."""
    if load is None or load.waiting is None or load.running is None:
        return None
    if load.waiting > 0 and load.running < max_concurrent:
        return max(1, load.running)
    return None


class VllmWatch:
    """Consecutive health checks of each vLLM backend that saw requests queued inside the engine."""

    def __init__(self) -> None:
        self._seen: dict[int, list[tuple[int, int]]] = {}  # backend id -> (running, waiting) per check in a row

    def check(self, backend_id: int, load: EngineLoad | None, *, max_concurrent: int) -> CapacityAdvice | None:
        running = vllm_queueing(load, max_concurrent=max_concurrent)
        if running is None or load is None:
            self._seen.pop(backend_id, None)
            return None
        seen = self._seen.setdefault(backend_id, [])
        seen.append((running, load.waiting or 0))
        if len(seen) < VLLM_CHECKS_NEEDED:
            return None
        del seen[:-VLLM_CHECKS_NEEDED]
        suggested = max(r for r, _ in seen)  # the most it was seen running while queueing: never too low
        waiting = max(w for _, w in seen)
        return CapacityAdvice(
            suggested=suggested, registered=max_concurrent, signal='vllm_waiting', observed_at=time.time(),
            evidence=f'vLLM queued up to {waiting} requests inside the engine while running {suggested} '
                     f'(checked {VLLM_CHECKS_NEEDED} times in a row); max_concurrent is {max_concurrent}, so its '
                     f'--max-num-seqs (or KV cache) allows about {suggested}')

    def forget(self, backend_id: int) -> None:
        self._seen.pop(backend_id, None)


def ollama_queue_ms(timings: OllamaTimings) -> float | None:
    """Milliseconds an Ollama request waited for a slot, from its final object's durations (None: not said)."""
    if timings.total_duration <= 0 or not (timings.prompt_eval_duration or timings.eval_duration):
        return None  # no answer generated (an embedding, an error): nothing to tell waiting from working
    worked = timings.load_duration + timings.prompt_eval_duration + timings.eval_duration
    return max(0, timings.total_duration - worked) / 1e6


@dataclass(frozen=True, slots=True)
class _Answer:
    concurrency: int  # requests this gateway had on the backend when it was sent, itself included
    waited_ms: float


class OllamaWatch:
    """This process's recent Ollama answers per backend; what they say about the engine's parallel slots."""

    def __init__(self) -> None:
        self._answers: dict[int, deque[_Answer]] = {}
        self._advised: dict[int, tuple[int, int]] = {}  # backend id -> (suggested, max_concurrent) reported

    def observe(self, backend_id: int, *, concurrency: int, waited_ms: float) -> None:
        answers = self._answers.get(backend_id)
        if answers is None:
            answers = self._answers[backend_id] = deque(maxlen=OLLAMA_RECENT)
        answers.append(_Answer(concurrency, waited_ms))

    def advice(self, backend_id: int, *, max_concurrent: int) -> CapacityAdvice | None:
        """New advice for a backend (each suggestion reported once), or None."""
        answers = self._answers.get(backend_id) or ()
        waited = [a for a in answers if a.waited_ms >= OLLAMA_MIN_WAIT_MS]
        if len(waited) < OLLAMA_WAITS_NEEDED:
            return None
        suggested = max(1, min(a.concurrency for a in waited) - 1)
        if suggested >= max_concurrent or self._advised.get(backend_id) == (suggested, max_concurrent):
            return None
        self._advised[backend_id] = (suggested, max_concurrent)
        longest = max(a.waited_ms for a in waited)
        return CapacityAdvice(
            suggested=suggested, registered=max_concurrent, signal='ollama_queue_time', observed_at=time.time(),
            evidence=f'{len(waited)} of the last {len(answers)} answers waited inside Ollama for a slot (up to '
                     f'{longest:.0f} ms) with {suggested + 1} or more requests on it; max_concurrent is '
                     f'{max_concurrent}, so its OLLAMA_NUM_PARALLEL is about {suggested}')

    def backends(self) -> list[int]:
        return list(self._answers)

    def forget(self, backend_id: int) -> None:
        self._answers.pop(backend_id, None)
        self._advised.pop(backend_id, None)
