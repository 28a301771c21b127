"""Engine stream recordings (as vLLM 0.3x and Ollama 0.1x put them on the wire) and ways to cut them up.

Each recording is the exact byte stream an engine sends; `cuts()` yields the same bytes cut the ways a
socket can deliver them: byte by byte, inside the multi-byte UTF-8 of "café ☕", inside `data:`, between
`\\r` and `\\n`, and at seeded random offsets.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from core.translate.canonical import Delta
from core.translate.streaming import StreamParser


def _sse(*events: str) -> bytes:
    return b''.join(b'data: ' + e.encode() + b'\n\n' for e in events)


_HEAD = '"id":"chatcmpl-9a1f","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen3-8B"'

# vLLM /v1/chat/completions, --reasoning-parser qwen3: reasoning, then content, finish, usage chunk, [DONE]
VLLM_CHAT = _sse(
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
    '"finish_reason":null}],"prompt_token_ids":null}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"reasoning":"User wants"},"logprobs":null,"finish_reason":null}]}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"reasoning":" coffee."},"logprobs":null,"finish_reason":null}]}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"content":"café"},"logprobs":null,"finish_reason":null}]}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"content":" ☕"},"logprobs":null,"finish_reason":null}]}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop",'
    '"stop_reason":null,"token_ids":null}]}',
    '{' + _HEAD + ',"choices":[],"usage":{"prompt_tokens":12,"total_tokens":40,"completion_tokens":28}}',
    '[DONE]',
)

# vLLM, hermes tool parser: a tool call whose arguments stream in fragments, finish tool_calls
VLLM_TOOLS = _sse(
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
    '"finish_reason":null}]}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"reasoning_content":"Need weather."},"logprobs":null,'
    '"finish_reason":null}]}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-77e2","type":"function",'
    '"index":0,"function":{"name":"get_weather"}}]},"logprobs":null,"finish_reason":null}]}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
    '"{\\"city\\": \\""}}]},"logprobs":null,"finish_reason":null}]}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
    '"Paris\\"}"}}]},"logprobs":null,"finish_reason":null}]}',
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"tool_calls",'
    '"stop_reason":null}]}',
    '{' + _HEAD + ',"choices":[],"usage":{"prompt_tokens":95,"total_tokens":120,"completion_tokens":25}}',
    '[DONE]',
)

_CMPL = '"id":"cmpl-3c2e","object":"text_completion","created":1760000000,"model":"Qwen/Qwen3-8B"'

# vLLM /v1/completions ending on a client stop string (stop_reason names it)
VLLM_COMPLETION = _sse(
    '{' + _CMPL + ',"choices":[{"index":0,"text":" Paris","logprobs":null,"finish_reason":null,'
    '"stop_reason":null}],"usage":null}',
    '{' + _CMPL + ',"choices":[{"index":0,"text":".","logprobs":null,"finish_reason":"stop",'
    '"stop_reason":"\\n\\n"}],"usage":null}',
    '{' + _CMPL + ',"choices":[],"usage":{"prompt_tokens":5,"total_tokens":7,"completion_tokens":2}}',
    '[DONE]',
)

# vLLM failing mid-stream: an error event, then [DONE] (which must not count as a clean ending)
VLLM_ERROR = _sse(
    '{' + _HEAD + ',"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,'
    '"finish_reason":null}]}',
    '{"error":{"message":"EngineCore encountered an issue.","type":"InternalServerError","param":null,"code":500}}',
    '[DONE]',
)


def _ndjson(*lines: str) -> bytes:
    return b''.join(line.encode() + b'\n' for line in lines)


_OLLAMA = '"model":"qwen3:8b","created_at":"2025-10-09T12:00:0{}.{}Z"'

# Ollama /api/chat with think: thinking, content, final line with metrics
OLLAMA_CHAT = _ndjson(
    '{' + _OLLAMA.format(0, '100000001') + ',"message":{"role":"assistant","content":"","thinking":"User wants"},'
    '"done":false}',
    '{' + _OLLAMA.format(0, '200000002') + ',"message":{"role":"assistant","content":"","thinking":" coffee."},'
    '"done":false}',
    '{' + _OLLAMA.format(0, '300000003') + ',"message":{"role":"assistant","content":"café"},"done":false}',
    '{' + _OLLAMA.format(0, '400000004') + ',"message":{"role":"assistant","content":" ☕"},"done":false}',
    '{' + _OLLAMA.format(1, '500000005') + ',"message":{"role":"assistant","content":""},"done_reason":"stop",'
    '"done":true,"total_duration":1500000000,"load_duration":20000000,"prompt_eval_count":12,'
    '"prompt_eval_duration":80000000,"eval_count":28,"eval_duration":1400000000}',
)

# Ollama /api/chat with tools: each call arrives whole, arguments as an object
OLLAMA_TOOLS = _ndjson(
    '{' + _OLLAMA.format(0, '100000001') + ',"message":{"role":"assistant","content":"","tool_calls":[{"id":'
    '"call_k2x9","function":{"index":0,"name":"get_weather","arguments":{"city":"Paris"}}}]},"done":false}',
    '{' + _OLLAMA.format(0, '200000002') + ',"message":{"role":"assistant","content":"","tool_calls":[{'
    '"function":{"index":1,"name":"get_time","arguments":{"tz":"CET"}}}]},"done":false}',
    '{' + _OLLAMA.format(0, '300000003') + ',"message":{"role":"assistant","content":""},"done_reason":"stop",'
    '"done":true,"total_duration":900000000,"load_duration":1000000,"prompt_eval_count":95,'
    '"prompt_eval_duration":50000000,"eval_count":25,"eval_duration":800000000}',
)

# Ollama /api/generate hitting num_predict
OLLAMA_GENERATE = _ndjson(
    '{"model":"gemma3:270m","created_at":"2025-10-09T12:00:00.1Z","response":"The sky","done":false}',
    '{"model":"gemma3:270m","created_at":"2025-10-09T12:00:00.2Z","response":" is","done":false}',
    '{"model":"gemma3:270m","created_at":"2025-10-09T12:00:00.3Z","response":"","done":true,"done_reason":"length",'
    '"context":[1,2,3],"total_duration":300000000,"load_duration":1000000,"prompt_eval_count":6,'
    '"prompt_eval_duration":10000000,"eval_count":3,"eval_duration":280000000}',
)

# Ollama failing mid-stream: an error line
OLLAMA_ERROR = _ndjson(
    '{' + _OLLAMA.format(0, '100000001') + ',"message":{"role":"assistant","content":"Hel"},"done":false}',
    '{"error":"an error was encountered while running the model: unexpected EOF"}',
)


def cuts(data: bytes) -> Iterator[list[bytes]]:
    """The same stream delivered in awkward pieces."""
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]  # byte by byte: every split point at once
    for marker in ('é'.encode(), '☕'.encode(), b'data:', b'\r\n', b'\n'):
        at = data.find(marker)
        if at >= 0:
            middle = at + max(1, len(marker) // 2)
            yield [data[:middle], data[middle:]]
    rng = random.Random(1234)
    for _ in range(20):
        points = sorted(rng.sample(range(1, len(data)), k=min(7, len(data) - 1)))
        yield [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def feed_all(parser: StreamParser, pieces: list[bytes]) -> list[Delta]:
    deltas: list[Delta] = []
    for piece in pieces:
        deltas.extend(parser.feed(piece))
    return deltas
