"""OpenAI stream encoders: exact bytes for recorded engine streams, and the official SDK reading them."""

from __future__ import annotations

import openai
import orjson
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk

from core.translate.canonical import ChatRequest, Delta, Kind, Usage
from core.translate.openai_stream import OpenAIChatEncoder, OpenAICompletionEncoder
from core.translate.streaming import StreamEncoder
from core.translate.vllm_engine import VllmStreamParser
from tests.unit.translate import recordings as rec
from tests.unit.translate.sdk import openai_client

H = (b'data: {"id":"chatcmpl-req1","object":"chat.completion.chunk","created":1760000000,"model":"qwen3-8b",'
     b'"choices":')
OPEN = b'[{"index":0,"delta":'
TAIL = b',"logprobs":null,"finish_reason":null}]}\n\n'


def run(encoder: StreamEncoder, deltas: list[Delta], finish: str, usage: Usage) -> bytes:
    return encoder.start() + b''.join(encoder.delta(d) for d in deltas) + encoder.end(finish, usage)


def chat_encoder(include_usage: bool) -> OpenAIChatEncoder:
    req = ChatRequest(model='qwen3-8b', stream=True, include_usage=include_usage)
    return OpenAIChatEncoder(req, request_id='req1', model='qwen3-8b', created=1760000000)


def vllm_deltas(recording: bytes) -> list[Delta]:
    return VllmStreamParser().feed(recording)


def test_chat_stream_bytes_with_the_usage_chunk_hidden() -> None:
    out = run(chat_encoder(False), vllm_deltas(rec.VLLM_CHAT), 'stop', Usage(12, 28))

    assert out == (
        H + OPEN + b'{"role":"assistant","reasoning_content":"User wants"}' + TAIL
        + H + OPEN + b'{"reasoning_content":" coffee."}' + TAIL
        + H + OPEN + '{"content":"café"}'.encode() + TAIL
        + H + OPEN + '{"content":" ☕"}'.encode() + TAIL
        + H + OPEN + b'{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
        + b'data: [DONE]\n\n'
    )


def test_chat_stream_bytes_with_the_usage_chunk_shown_when_the_client_asked() -> None:
    out = run(chat_encoder(True), vllm_deltas(rec.VLLM_CHAT), 'stop', Usage(12, 28))

    assert out.endswith(
        H + OPEN + b'{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
        + H + b'[],"usage":{"prompt_tokens":12,"completion_tokens":28,"total_tokens":40}}\n\n'
        + b'data: [DONE]\n\n'
    )


def test_tool_call_stream_bytes() -> None:
    out = run(chat_encoder(False), vllm_deltas(rec.VLLM_TOOLS), 'tool_calls', Usage(95, 25))

    assert out == (
        H + OPEN + b'{"role":"assistant","reasoning_content":"Need weather."}' + TAIL
        + H + OPEN + b'{"tool_calls":[{"index":0,"id":"chatcmpl-tool-77e2","type":"function",'
                     b'"function":{"name":"get_weather","arguments":""}}]}' + TAIL
        + H + OPEN + b'{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": \\""}}]}' + TAIL
        + H + OPEN + b'{"tool_calls":[{"index":0,"function":{"arguments":"Paris\\"}"}}]}' + TAIL
        + H + OPEN + b'{},"logprobs":null,"finish_reason":"tool_calls"}]}\n\n'
        + b'data: [DONE]\n\n'
    )


def test_an_answer_with_no_deltas_still_sends_the_role_then_ends() -> None:
    out = run(chat_encoder(False), [], 'length', Usage(3, 0))

    assert out == H + OPEN + b'{"role":"assistant","content":""},"logprobs":null,"finish_reason":"length"}]}\n\n' \
        + b'data: [DONE]\n\n'


def test_error_mid_stream_is_an_error_event_and_never_done() -> None:
    encoder = chat_encoder(True)
    out = encoder.start() + encoder.delta(Delta(content='Hel')) + encoder.error('The engine failed.')

    assert out.endswith(b'data: {"error":{"message":"The engine failed.","type":"server_error","param":null,'
                        b'"code":null}}\n\n')
    assert b'[DONE]' not in out
    assert encoder.end('stop', Usage()) == b''  # nothing clean can follow an error
    assert encoder.delta(Delta(content='more')) == b''


def test_every_chunk_validates_as_the_sdk_chunk_type() -> None:
    for recording, finish in ((rec.VLLM_CHAT, 'stop'), (rec.VLLM_TOOLS, 'tool_calls')):
        out = run(chat_encoder(True), vllm_deltas(recording), finish, Usage(1, 2))
        events = [e.removeprefix(b'data: ') for e in out.split(b'\n\n') if e]
        assert events[-1] == b'[DONE]'
        for event in events[:-1]:
            ChatCompletionChunk.model_validate(orjson.loads(event))


def test_the_openai_sdk_streams_and_accumulates_the_answer() -> None:
    out = run(chat_encoder(True), vllm_deltas(rec.VLLM_CHAT), 'stop', Usage(12, 28))
    with openai_client(out) as client:
        chunks = list(client.chat.completions.create(model='qwen3-8b', messages=[{'role': 'user', 'content': 'hi'}],
                                                     stream=True, stream_options={'include_usage': True}))
    assert ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices) == 'café ☕'
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 40

    out = run(chat_encoder(False), vllm_deltas(rec.VLLM_TOOLS), 'tool_calls', Usage(95, 25))
    with openai_client(out) as client, client.chat.completions.stream(
            model='qwen3-8b', messages=[{'role': 'user', 'content': 'weather?'}]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == 'tool_calls'
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert (calls[0].id, calls[0].function.name, calls[0].function.arguments) == (
        'chatcmpl-tool-77e2', 'get_weather', '{"city": "Paris"}')


def test_the_openai_sdk_raises_on_the_error_event() -> None:
    encoder = chat_encoder(False)
    out = encoder.delta(Delta(content='Hel')) + encoder.error('The engine failed.')
    with openai_client(out) as client, pytest.raises(openai.APIError, match='The engine failed'):
        list(client.chat.completions.create(model='m', messages=[{'role': 'user', 'content': 'hi'}], stream=True))


def completion_encoder(include_usage: bool) -> OpenAICompletionEncoder:
    req = ChatRequest(model='qwen3-8b', kind=Kind.completion, stream=True, include_usage=include_usage)
    return OpenAICompletionEncoder(req, request_id='req2', model='qwen3-8b', created=1760000000)


def test_completion_stream_is_text_completion_chunks() -> None:
    out = run(completion_encoder(True), vllm_deltas(rec.VLLM_COMPLETION), 'stop', Usage(5, 2))
    head = b'data: {"id":"cmpl-req2","object":"text_completion","created":1760000000,"model":"qwen3-8b","choices":'

    assert out == (
        head + b'[{"text":" Paris","index":0' + TAIL
        + head + b'[{"text":".","index":0' + TAIL
        + head + b'[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]}\n\n'
        + head + b'[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
        + b'data: [DONE]\n\n'
    )
    # the SDK's Completion type wants a finish_reason, which only the last chunks carry (OpenAI's own
    # streams send null before that; the SDK builds chunks without validation)
    for event in out.split(b'\n\n')[2:-2]:
        Completion.model_validate(orjson.loads(event.removeprefix(b'data: ')))
    with openai_client(out) as client:
        texts = [c.choices[0].text for c in client.completions.create(model='m', prompt='The capital', stream=True)
                 if c.choices]
    assert ''.join(texts) == ' Paris.'
