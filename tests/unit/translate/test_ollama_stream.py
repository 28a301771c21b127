"""Ollama stream encoders: exact NDJSON lines (fixed clocks), the final metrics line, and the official
client reading them."""

from __future__ import annotations

import itertools

import ollama
import orjson
import pytest

from core.translate.canonical import ChatRequest, Delta, Kind, Usage
from core.translate.ollama_dialect import OllamaTimings
from core.translate.ollama_stream import OllamaChatEncoder, OllamaGenerateEncoder
from core.translate.vllm_engine import VllmStreamParser
from tests.unit.translate import recordings as rec
from tests.unit.translate.sdk import ollama_client

T0 = 1760000000_250000000  # 2025-10-09T08:53:20.25Z, in ns


def clocks() -> dict[str, object]:
    """Wall clock advancing 0.1 s per line; a performance clock advancing 1 ms per reading."""
    wall = itertools.count(0)
    perf = itertools.count(0, 1_000_000)
    return {'wall_clock': lambda: T0 + next(wall) * 100_000_000, 'perf_clock': lambda: next(perf)}


def chat_encoder() -> OllamaChatEncoder:
    return OllamaChatEncoder(ChatRequest(model='qwen3:8b', stream=True), model='qwen3:8b', **clocks())  # type: ignore[arg-type]


def generate_encoder() -> OllamaGenerateEncoder:
    req = ChatRequest(model='qwen3:8b', kind=Kind.completion, stream=True)
    return OllamaGenerateEncoder(req, model='qwen3:8b', **clocks())  # type: ignore[arg-type]


def lines(out: bytes) -> list[dict[str, object]]:
    assert out.endswith(b'\n')
    return [orjson.loads(line) for line in out.split(b'\n')[:-1]]


def test_chat_stream_lines_from_a_vllm_stream_with_measured_timings() -> None:
    enc = chat_encoder()
    out = enc.start() + b''.join(enc.delta(d) for d in VllmStreamParser().feed(rec.VLLM_CHAT)) \
        + enc.end('stop', Usage(12, 28))

    assert out == (
        b'{"model":"qwen3:8b","created_at":"2025-10-09T08:53:20.250000000Z","message":{"role":"assistant",'
        b'"content":"","thinking":"User wants"},"done":false}\n'
        b'{"model":"qwen3:8b","created_at":"2025-10-09T08:53:20.350000000Z","message":{"role":"assistant",'
        b'"content":"","thinking":" coffee."},"done":false}\n'
        + '{"model":"qwen3:8b","created_at":"2025-10-09T08:53:20.450000000Z","message":{"role":"assistant",'
          '"content":"café"},"done":false}\n'.encode()
        + '{"model":"qwen3:8b","created_at":"2025-10-09T08:53:20.550000000Z","message":{"role":"assistant",'
          '"content":" ☕"},"done":false}\n'.encode()
        # perf clock: built at 0 ms, first token at 1 ms, end at 2 ms
        + b'{"model":"qwen3:8b","created_at":"2025-10-09T08:53:20.650000000Z","message":{"role":"assistant",'
          b'"content":""},"done_reason":"stop","total_duration":2000000,"load_duration":0,"prompt_eval_count":12,'
          b'"prompt_eval_duration":1000000,"eval_count":28,"eval_duration":1000000,"done":true}\n'
    )


def test_final_line_uses_the_timings_the_caller_measured() -> None:
    enc = chat_encoder()
    enc.delta(Delta(content='hi'))
    timings = OllamaTimings(total_duration=9, load_duration=8, prompt_eval_duration=7, eval_duration=6)
    final = lines(enc.end('length', Usage(3, 4), timings=timings))[-1]

    assert {k: final[k] for k in ('done', 'done_reason', 'total_duration', 'load_duration', 'prompt_eval_count',
                                  'prompt_eval_duration', 'eval_count', 'eval_duration')} == {
        'done': True, 'done_reason': 'length', 'total_duration': 9, 'load_duration': 8, 'prompt_eval_count': 3,
        'prompt_eval_duration': 7, 'eval_count': 4, 'eval_duration': 6}


def test_streamed_tool_call_fragments_are_sent_whole_with_object_arguments() -> None:
    enc = chat_encoder()
    out = b''.join(enc.delta(d) for d in VllmStreamParser().feed(rec.VLLM_TOOLS)) + enc.end('tool_calls', Usage(95, 25))
    sent = lines(out)

    assert [s['message'] for s in sent] == [
        {'role': 'assistant', 'content': '', 'thinking': 'Need weather.'},
        {'role': 'assistant', 'content': '', 'tool_calls': [
            {'id': 'chatcmpl-tool-77e2', 'function': {'index': 0, 'name': 'get_weather',
                                                      'arguments': {'city': 'Paris'}}}]},
        {'role': 'assistant', 'content': ''},
    ]
    assert (sent[-1]['done'], sent[-1]['done_reason']) == (True, 'stop')  # Ollama reports tool calls as stop


def test_generate_stream_sends_response_fragments() -> None:
    enc = generate_encoder()
    out = enc.delta(Delta(reasoning='hmm')) + enc.delta(Delta(content='The sky')) + enc.end('length', Usage(6, 3))
    sent = lines(out)

    assert [{k: s[k] for k in s if k in ('response', 'thinking', 'done')} for s in sent] == [
        {'response': '', 'thinking': 'hmm', 'done': False},
        {'response': 'The sky', 'done': False},
        {'response': '', 'done': True},
    ]
    assert 'message' not in sent[0]
    assert sent[-1]['done_reason'] == 'length' and sent[-1]['eval_count'] == 3


def test_every_line_validates_as_the_ollama_client_types() -> None:
    enc = chat_encoder()
    out = b''.join(enc.delta(d) for d in VllmStreamParser().feed(rec.VLLM_TOOLS)) + enc.end('tool_calls', Usage(1, 2))
    for line in lines(out):
        ollama.ChatResponse.model_validate(line)
    enc2 = generate_encoder()
    for line in lines(enc2.delta(Delta(content='x')) + enc2.end('stop', Usage(1, 1))):
        ollama.GenerateResponse.model_validate(line)


def test_the_ollama_client_reads_the_chat_stream() -> None:
    enc = chat_encoder()
    out = b''.join(enc.delta(d) for d in VllmStreamParser().feed(rec.VLLM_CHAT)) + enc.end('stop', Usage(12, 28))
    with ollama_client(out) as client:
        parts = list(client.chat(model='qwen3:8b', messages=[{'role': 'user', 'content': 'hi'}], stream=True))

    assert ''.join(p.message.content or '' for p in parts) == 'café ☕'
    assert ''.join(p.message.thinking or '' for p in parts) == 'User wants coffee.'
    assert (parts[-1].done, parts[-1].eval_count, parts[-1].prompt_eval_count) == (True, 28, 12)


def test_error_mid_stream_is_an_error_line_and_the_client_raises() -> None:
    enc = chat_encoder()
    out = enc.delta(Delta(content='Hel')) + enc.error('The engine failed.')

    assert out.endswith(b'\n{"error":"The engine failed."}\n')
    assert enc.end('stop', Usage()) == b''
    with ollama_client(out) as client, pytest.raises(ollama.ResponseError, match='The engine failed'):
        list(client.chat(model='m', messages=[{'role': 'user', 'content': 'hi'}], stream=True))
