"""Counters a test reads to check what a fake engine saw (GET /_sim/stats, or `SimServer.stats`)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any


@dataclasses.dataclass
class ModelCounters:
    """Per-model figures behind vLLM's /metrics series."""

    running: int = 0
    waiting: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    finished: Counter[str] = dataclasses.field(default_factory=Counter)  # finished_reason -> count


@dataclasses.dataclass
class SimStats:
    http_requests: int = 0  # every HTTP request to an engine route (the /_sim routes are not counted)
    requests_total: int = 0  # inference requests (chat, generate, completions, embeddings) received
    requests_served: int = 0  # inference requests answered in full
    in_flight: int = 0  # inference requests accepted and not finished: waiting, generating or hanging
    running: int = 0  # holding a generation slot now
    waiting: int = 0  # queued for a slot now
    peak_running: int = 0  # the most requests ever generating at once
    peak_in_flight: int = 0
    cancelled: int = 0  # the client went away before the answer was complete
    rejected: int = 0  # 503: the queue was full
    faults: int = 0  # requests that met an injected fault
    client_errors: int = 0  # inference requests answered 4xx (unknown model, bad body, ...)
    prompt_tokens: int = 0
    generation_tokens: int = 0
    per_model: dict[str, ModelCounters] = dataclasses.field(default_factory=dict)

    def model(self, name: str) -> ModelCounters:
        counters = self.per_model.get(name)
        if counters is None:
            counters = self.per_model[name] = ModelCounters()
        return counters

    def enter(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != 'per_model'}
        out['per_model'] = {
            name: {
                'running': c.running,
                'waiting': c.waiting,
                'prompt_tokens': c.prompt_tokens,
                'generation_tokens': c.generation_tokens,
                'finished': dict(c.finished),
            }
            for name, c in self.per_model.items()
        }
        return out

    def reset(self) -> None:
        """Zero the totals and peaks; what is in flight now stays counted."""
        fresh = SimStats(
            in_flight=self.in_flight,
            running=self.running,
            waiting=self.waiting,
            peak_running=self.running,
            peak_in_flight=self.in_flight,
        )
        for name, c in self.per_model.items():
            fresh.per_model[name] = ModelCounters(running=c.running, waiting=c.waiting)
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(fresh, f.name))
