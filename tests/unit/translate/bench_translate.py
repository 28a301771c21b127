"""Quick timing of the per-chunk hot path: µs per delta for each encoder and per frame for each parser.

    .venv/bin/python -m tests.unit.translate.bench_translate

Not a test (no assertions on time): numbers for the report and for spotting regressions by eye.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core.translate.anthropic_stream import AnthropicMessagesEncoder
from core.translate.canonical import ChatRequest, Delta, Kind, ToolCallDelta
from core.translate.ollama_engine import OllamaStreamParser
from core.translate.ollama_stream import OllamaChatEncoder, OllamaGenerateEncoder
from core.translate.openai_stream import OpenAIChatEncoder, OpenAICompletionEncoder
from core.translate.vllm_engine import VllmStreamParser

N = 200_000
TEXT = Delta(content=' token')
REASONING = Delta(reasoning=' think')
TOOL = Delta(tool_calls=[ToolCallDelta(index=0, arguments='"Par')])
VLLM_FRAME = (b'data: {"id":"chatcmpl-9a1f","object":"chat.completion.chunk","created":1760000000,'
              b'"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,'
              b'"finish_reason":null}]}\n\n')
OLLAMA_LINE = (b'{"model":"qwen3:8b","created_at":"2025-10-09T12:00:00.300000003Z","message":{"role":"assistant",'
               b'"content":" token"},"done":false}\n')


def per_call_us(fn: Callable[[], object], n: int = N, repeat: int = 5) -> float:
    """Best of `repeat` runs (the least disturbed by other work on the machine)."""
    fn()  # warm up (first delta carries the role / opens a block)
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n // repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / (n // repeat))
    return best * 1e6


def main() -> None:
    chat = ChatRequest(model='m', stream=True)
    completion = ChatRequest(model='m', kind=Kind.completion, stream=True)
    rows: list[tuple[str, float]] = []
    for name, make in (
        ('OpenAIChatEncoder', lambda: OpenAIChatEncoder(chat, request_id='r', model='m', created=1)),
        ('OpenAICompletionEncoder', lambda: OpenAICompletionEncoder(completion, request_id='r', model='m', created=1)),
        ('AnthropicMessagesEncoder', lambda: AnthropicMessagesEncoder(chat, request_id='r', model='m')),
        ('OllamaChatEncoder', lambda: OllamaChatEncoder(chat, model='m')),
        ('OllamaGenerateEncoder', lambda: OllamaGenerateEncoder(completion, model='m')),
    ):
        for label, delta in (('text', TEXT), ('reasoning', REASONING), ('tool args', TOOL)):
            encoder = make()
            encoder.start()
            rows.append((f'{name}.delta ({label})', per_call_us(lambda e=encoder, d=delta: e.delta(d))))  # type: ignore[misc]

    vllm = VllmStreamParser()
    rows.append(('VllmStreamParser.feed (one content frame)', per_call_us(lambda: vllm.feed(VLLM_FRAME))))
    halves = (VLLM_FRAME[:57], VLLM_FRAME[57:])
    rows.append(('VllmStreamParser.feed (frame in two pieces)',
                 per_call_us(lambda: (vllm.feed(halves[0]), vllm.feed(halves[1])))))
    ollama = OllamaStreamParser()
    rows.append(('OllamaStreamParser.feed (one content line)', per_call_us(lambda: ollama.feed(OLLAMA_LINE))))

    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print(f'{name:<{width}}  {us:6.2f} µs')


if __name__ == '__main__':
    main()
