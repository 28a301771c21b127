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


# ---------------------------------------------------------------- one recording per engine x feature
# (test_golden_streams). The two engines' recordings of a feature say the same thing (text, reasoning, tool
# calls, finish, usage), so one table of expectations serves both.

def _v(delta: str, finish: str | None = None) -> str:
    """A vLLM 0.3x chat chunk (`model_dump_json(exclude_unset=True)`) carrying this delta JSON."""
    if finish is None:
        return '{' + _HEAD + ',"choices":[{"index":0,"delta":' + delta + ',"logprobs":null,"finish_reason":null}]}'
    return ('{' + _HEAD + ',"choices":[{"index":0,"delta":' + delta + ',"logprobs":null,"finish_reason":"'
            + finish + '","stop_reason":null}]}')


def _v_usage(prompt: int, completion: int) -> str:
    return ('{' + _HEAD + f',"choices":[],"usage":{{"prompt_tokens":{prompt},"total_tokens":{prompt + completion},'
            f'"completion_tokens":{completion}}}}}')


_V_ROLE = _v('{"role":"assistant","content":""}')

# vLLM, plain answer
VLLM_TEXT = _sse(
    _V_ROLE,
    _v('{"content":"Paris"}'),
    _v('{"content":" is the capital"}'),
    _v('{"content":" of France"}'),
    _v('{"content":" — café ☕."}'),
    _v('{"content":""}', 'stop'),
    _v_usage(14, 9),
    '[DONE]',
)

# vLLM started without --reasoning-parser: the thinking inline in the content, its tags cut across chunks
VLLM_THINK_TAGS = _sse(
    _V_ROLE,
    _v('{"content":"<th"}'),
    _v('{"content":"ink>"}'),
    _v('{"content":"\\n"}'),
    _v('{"content":"Capital"}'),
    _v('{"content":" of France?"}'),
    _v('{"content":"\\n"}'),
    _v('{"content":"</thi"}'),
    _v('{"content":"nk>"}'),
    _v('{"content":"\\n\\n"}'),
    _v('{"content":"Paris"}'),
    _v('{"content":"."}'),
    _v('{"content":""}', 'stop'),
    _v_usage(16, 12),
    '[DONE]',
)

# vLLM, hermes tool parser: one call, its name first, then the arguments in fragments
VLLM_TOOL_CALL = _sse(
    _V_ROLE,
    _v('{"tool_calls":[{"id":"chatcmpl-tool-5b8e0c71","type":"function","index":0,'
       '"function":{"name":"get_weather"}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": \\""}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"Paris"}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"\\"}"}}]}'),
    _v('{}', 'tool_calls'),
    _v_usage(95, 21),
    '[DONE]',
)

# vLLM, hermes: two calls, index 0 then index 1; the last argument fragment rides on the finish chunk
VLLM_PARALLEL_TOOLS = _sse(
    _V_ROLE,
    _v('{"tool_calls":[{"id":"chatcmpl-tool-a1c4e2d0","type":"function","index":0,'
       '"function":{"name":"get_weather"}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": \\""}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"Paris\\"}"}}]}'),
    _v('{"tool_calls":[{"id":"chatcmpl-tool-b7f3a9e5","type":"function","index":1,'
       '"function":{"name":"get_time"}}]}'),
    _v('{"tool_calls":[{"index":1,"function":{"arguments":"{\\"tz\\": \\""}}]}'),
    _v('{"tool_calls":[{"index":1,"function":{"arguments":"Europe/Paris\\"}"}}]}', 'tool_calls'),
    _v_usage(120, 44),
    '[DONE]',
)

# vLLM, qwen3 reasoning parser + hermes: reasoning, then a tool call
VLLM_REASONING_TOOL = _sse(
    _V_ROLE,
    _v('{"reasoning":"The user wants"}'),
    _v('{"reasoning":" the weather in Paris."}'),
    _v('{"tool_calls":[{"id":"chatcmpl-tool-c2d9f0b4","type":"function","index":0,'
       '"function":{"name":"get_weather"}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": \\""}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"Paris\\"}"}}]}'),
    _v('{}', 'tool_calls'),
    _v_usage(95, 30),
    '[DONE]',
)

# vLLM hitting max_tokens: the finish chunk carries the last token
VLLM_LENGTH = _sse(
    _V_ROLE,
    _v('{"content":"Once"}'),
    _v('{"content":" upon"}'),
    _v('{"content":" a"}'),
    _v('{"content":" time"}'),
    _v('{"content":","}'),
    _v('{"content":" in"}'),
    _v('{"content":" a"}', 'length'),
    _v_usage(9, 7),
    '[DONE]',
)

# vLLM failing after a few tokens: create_streaming_error_response's event, then [DONE]
VLLM_ENGINE_ERROR = _sse(
    _v('{"role":"assistant","content":"The"}'),
    _v('{"content":" answer"}'),
    _v('{"content":" is"}'),
    '{"error":{"message":"EngineCore encountered an issue. See stack trace (above) for the root cause.",'
    '"type":"InternalServerError","param":null,"code":500}}',
    '[DONE]',
)

# vLLM with a named tool_choice (structured output, no tool parser involved): the JSON streams as argument
# fragments, the id and name on the first, and the finish reason is "stop", as OpenAI does for named choices
VLLM_FORCED_TOOL = _sse(
    _V_ROLE,
    _v('{"tool_calls":[{"id":"chatcmpl-tool-d4e5f6a7","type":"function","index":0,'
       '"function":{"name":"get_weather","arguments":"{\\""}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"city"}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"\\": \\""}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"Paris"}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":"\\"}"}}]}'),
    _v('{"tool_calls":[{"index":0,"function":{"arguments":""}}]}', 'stop'),
    _v_usage(60, 8),
    '[DONE]',
)


def _o(n: int, message: str) -> str:
    """Ollama 0.12 /api/chat line number `n` (Go's json.Marshal: `<`, `>` and `&` come as \\u003c...)."""
    return '{' + _OLLAMA.format(n // 9, f'{n % 9 + 1}{n + 1:07d}1') + ',"message":' + message + ',"done":false}'


def _o_done(n: int, reason: str, prompt: int, completion: int) -> str:
    return ('{' + _OLLAMA.format(n // 9, f'{n % 9 + 1}{n + 1:07d}1') + ',"message":{"role":"assistant",'
            f'"content":""}},"done_reason":"{reason}","done":true,"total_duration":{1_000_000_000 + n},'
            f'"load_duration":12000000,"prompt_eval_count":{prompt},"prompt_eval_duration":60000000,'
            f'"eval_count":{completion},"eval_duration":{900_000_000 + n}}}')


def _o_content(n: int, text: str) -> str:
    return _o(n, '{"role":"assistant","content":"' + text + '"}')


def _o_thinking(n: int, text: str) -> str:
    return _o(n, '{"role":"assistant","content":"","thinking":"' + text + '"}')


def _o_calls(n: int, calls: str) -> str:
    return _o(n, '{"role":"assistant","content":"","tool_calls":[' + calls + ']}')


# Ollama, plain answer
OLLAMA_TEXT = _ndjson(
    _o_content(0, 'Paris'),
    _o_content(1, ' is the capital'),
    _o_content(2, ' of France'),
    _o_content(3, ' — café ☕.'),
    _o_done(4, 'stop', 14, 9),
)

# Ollama (think not set, or an older build): the thinking inline, its tags cut across lines
OLLAMA_THINK_TAGS = _ndjson(
    *(_o_content(n, text) for n, text in enumerate(
        ('\\u003cth', 'ink\\u003e', '\\n', 'Capital', ' of France?', '\\n', '\\u003c/thi', 'nk\\u003e', '\\n\\n',
         'Paris', '.'))),
    _o_done(11, 'stop', 16, 12),
)

# Ollama with tools: the call whole on one line, arguments an object, no id (function.index 0 is omitempty)
OLLAMA_TOOL_CALL = _ndjson(
    _o_calls(0, '{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}'),
    _o_done(1, 'stop', 95, 21),
)

# Ollama, two calls in one line's tool_calls
OLLAMA_PARALLEL_TOOLS = _ndjson(
    _o_calls(0, '{"function":{"name":"get_weather","arguments":{"city":"Paris"}}},'
                '{"function":{"index":1,"name":"get_time","arguments":{"tz":"Europe/Paris"}}}'),
    _o_done(1, 'stop', 120, 44),
)

# Ollama with think and tools: thinking, then the call
OLLAMA_REASONING_TOOL = _ndjson(
    _o_thinking(0, 'The user wants'),
    _o_thinking(1, ' the weather in Paris.'),
    _o_calls(2, '{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}'),
    _o_done(3, 'stop', 95, 30),
)

# Ollama hitting num_predict
OLLAMA_LENGTH = _ndjson(
    *(_o_content(n, text) for n, text in enumerate(('Once', ' upon', ' a', ' time', ',', ' in', ' a'))),
    _o_done(7, 'length', 9, 7),
)

# Ollama failing after a few tokens
OLLAMA_ENGINE_ERROR = _ndjson(
    _o_content(0, 'The'),
    _o_content(1, ' answer'),
    _o_content(2, ' is'),
    '{"error":"an error was encountered while running the model: CUDA error: out of memory"}',
)

# Ollama asked for a forced tool, emulated with `format` = the tool's parameters: the model streams JSON text
OLLAMA_FORCED_TOOL = _ndjson(
    *(_o_content(n, text) for n, text in enumerate(('{\\"', 'city', '\\":', ' \\"', 'Paris', '\\"}'))),
    _o_done(6, 'stop', 60, 8),
)
