"""Ollama dialect stream encoders: NDJSON, one object per line, a final `done: true` line with the metrics.

`/api/chat` streams `message` fragments, `/api/generate` streams `response` fragments. Ollama clients expect
each tool call whole, with object arguments, so tool-call fragments (vLLM streams arguments piece by piece)
are collected and sent on one line just before the final line.

Timings: the encoder measures them itself (construction -> first delta -> end) unless the caller passes the
ones it measured to `end(..., timings=...)`. Pass `started_ns` (a `time.perf_counter_ns()` value) to count
from when the request arrived rather than from when the encoder was built.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.translate.canonical import ChatRequest, Delta, ToolCall, ToolCallDelta, Usage
from core.translate.ollama_dialect import OllamaTimings, done_reason, metrics, rfc3339_ns, tool_calls_body
from core.translate.streaming import NDJSON


class _OllamaEncoder:
    media_type = NDJSON
    __slots__ = ('_closed', '_first_ns', '_model', '_now', '_now_ns', '_started_ns')

    def __init__(self, req: ChatRequest, *, model: str, started_ns: int | None = None,
                 wall_clock: Callable[[], int] = time.time_ns,
                 perf_clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self._model = orjson.dumps(model)
        self._now = wall_clock  # created_at of each line
        self._now_ns = perf_clock  # durations
        self._started_ns = perf_clock() if started_ns is None else started_ns
        self._first_ns: int | None = None
        self._closed = False

    def start(self) -> bytes:
        return b''

    def error(self, message: str) -> bytes:
        if self._closed:
            return b''
        self._closed = True
        return orjson.dumps({'error': message}) + b'\n'

    def _line(self, fields: dict[str, Any], done: bool) -> bytes:
        # built by hand around one orjson call: model and timestamp first, as Ollama orders them
        return (self._prefix() + orjson.dumps(fields)[1:-1]
                + (b',"done":true}\n' if done else b',"done":false}\n'))

    def _prefix(self) -> bytes:
        return b'{"model":' + self._model + b',"created_at":"' + rfc3339_ns(self._now()).encode() + b'",'

    def _mark_first(self) -> None:
        if self._first_ns is None:
            self._first_ns = self._now_ns()

    def _timings(self, timings: OllamaTimings | None) -> OllamaTimings:
        if timings is not None:
            return timings
        now = self._now_ns()
        first = self._first_ns if self._first_ns is not None else now
        return OllamaTimings(total_duration=now - self._started_ns, prompt_eval_duration=first - self._started_ns,
                             eval_duration=now - first)


class OllamaChatEncoder(_OllamaEncoder):
    """`/api/chat` stream: `message` fragments (content, thinking), tool calls whole, final metrics line."""

    __slots__ = ('_calls',)

    def __init__(self, req: ChatRequest, *, model: str, started_ns: int | None = None,
                 wall_clock: Callable[[], int] = time.time_ns,
                 perf_clock: Callable[[], int] = time.perf_counter_ns) -> None:
        super().__init__(req, model=model, started_ns=started_ns, wall_clock=wall_clock, perf_clock=perf_clock)
        self._calls: dict[int, _PendingCall] = {}

    def delta(self, d: Delta) -> bytes:
        if self._closed:
            return b''
        if d.tool_calls:
            self._collect(d.tool_calls)
        if not d.content and not d.reasoning:
            return b''
        self._mark_first()
        thinking = b',"thinking":' + orjson.dumps(d.reasoning) if d.reasoning else b''
        return (self._prefix() + b'"message":{"role":"assistant","content":' + orjson.dumps(d.content) + thinking
                + b'},"done":false}\n')

    def end(self, finish_reason: str, usage: Usage, *, timings: OllamaTimings | None = None) -> bytes:
        if self._closed:
            return b''
        self._closed = True
        out = b''
        if self._calls:
            self._mark_first()
            calls = tool_calls_body([self._calls[i].whole() for i in sorted(self._calls)])
            out = self._line({'message': {'role': 'assistant', 'content': '', 'tool_calls': calls}}, False)
        fields = {'message': {'role': 'assistant', 'content': ''}, 'done_reason': done_reason(finish_reason),
                  **metrics(usage, self._timings(timings))}
        return out + self._line(fields, True)

    def _collect(self, deltas: list[ToolCallDelta]) -> None:
        for tc in deltas:
            call = self._calls.get(tc.index)
            if call is None:
                call = self._calls[tc.index] = _PendingCall(id=tc.id or f'call_{tc.index}', name=tc.name or '')
            call.parts.append(tc.arguments)  # joined once at the end: no quadratic string building
            if tc.name:
                call.name = tc.name
            if tc.id:
                call.id = tc.id


@dataclass(slots=True)
class _PendingCall:
    id: str
    name: str
    parts: list[str] = field(default_factory=list)

    def whole(self) -> ToolCall:
        return ToolCall(id=self.id, name=self.name, arguments=''.join(self.parts))


class OllamaGenerateEncoder(_OllamaEncoder):
    """`/api/generate` stream: `response` fragments (and `thinking`), final metrics line. No tool calls."""

    __slots__ = ()

    def delta(self, d: Delta) -> bytes:
        if self._closed or (not d.content and not d.reasoning):
            return b''
        self._mark_first()
        thinking = b',"thinking":' + orjson.dumps(d.reasoning) if d.reasoning else b''
        return self._prefix() + b'"response":' + orjson.dumps(d.content) + thinking + b',"done":false}\n'

    def end(self, finish_reason: str, usage: Usage, *, timings: OllamaTimings | None = None) -> bytes:
        if self._closed:
            return b''
        self._closed = True
        fields = {'response': '', 'done_reason': done_reason(finish_reason), **metrics(usage, self._timings(timings))}
        return self._line(fields, True)
