"""Anthropic stream encoder: exact events (block indexes, every block closed), and the official SDK
accumulating them into a Message."""

from __future__ import annotations

import anthropic
import orjson
import pytest
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from core.translate.anthropic_stream import AnthropicMessagesEncoder
from core.translate.canonical import ChatRequest, Delta, ToolCallDelta, Usage
from core.translate.vllm_engine import VllmStreamParser
from tests.unit.translate import recordings as rec
from tests.unit.translate.sdk import anthropic_client

EVENT = TypeAdapter(RawMessageStreamEvent)

MIXED = [
    Delta(reasoning='Weather '),
    Delta(reasoning='and time.'),
    Delta(content='Checking.'),
    Delta(tool_calls=[ToolCallDelta(index=0, id='call_a', name='get_weather')]),
    Delta(tool_calls=[ToolCallDelta(index=0, arguments='{"city":')]),
    Delta(tool_calls=[ToolCallDelta(index=0, arguments=' "Paris"}')]),
    Delta(tool_calls=[ToolCallDelta(index=1, id='call_b', name='get_time', arguments='{"tz": "CET"}')]),
    Delta(finish_reason='tool_calls'),
    Delta(usage=Usage(40, 30)),
]


def encoder(input_tokens: int = 0) -> AnthropicMessagesEncoder:
    return AnthropicMessagesEncoder(ChatRequest(model='qwen3', stream=True), request_id='req1', model='qwen3',
                                    input_tokens=input_tokens)


def events(*pairs: tuple[str, str]) -> bytes:
    return b''.join(f'event: {name}\ndata: {data}\n\n'.encode() for name, data in pairs)


def run(enc: AnthropicMessagesEncoder, deltas: list[Delta], finish: str, usage: Usage) -> bytes:
    return enc.start() + b''.join(enc.delta(d) for d in deltas) + enc.end(finish, usage)


START = (
    ('message_start', '{"type":"message_start","message":{"id":"msg_req1","type":"message","role":"assistant",'
                      '"model":"qwen3","content":[],"stop_reason":null,"stop_sequence":null,'
                      '"usage":{"input_tokens":40,"output_tokens":0,"cache_creation_input_tokens":0,'
                      '"cache_read_input_tokens":0}}}'),
    ('ping', '{"type":"ping"}'),
)


def test_thinking_text_and_two_tool_calls_get_increasing_indexes_and_every_block_is_closed() -> None:
    out = run(encoder(40), MIXED, 'tool_calls', Usage(40, 30))

    assert out == events(
        *START,
        ('content_block_start', '{"type":"content_block_start","index":0,"content_block":'
                                '{"type":"thinking","thinking":"","signature":""}}'),
        ('content_block_delta', '{"type":"content_block_delta","index":0,"delta":'
                                '{"type":"thinking_delta","thinking":"Weather "}}'),
        ('content_block_delta', '{"type":"content_block_delta","index":0,"delta":'
                                '{"type":"thinking_delta","thinking":"and time."}}'),
        ('content_block_stop', '{"type":"content_block_stop","index":0}'),
        ('content_block_start', '{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}'),
        ('content_block_delta', '{"type":"content_block_delta","index":1,"delta":'
                                '{"type":"text_delta","text":"Checking."}}'),
        ('content_block_stop', '{"type":"content_block_stop","index":1}'),
        ('content_block_start', '{"type":"content_block_start","index":2,"content_block":'
                                '{"type":"tool_use","id":"call_a","name":"get_weather","input":{}}}'),
        ('content_block_delta', '{"type":"content_block_delta","index":2,"delta":'
                                '{"type":"input_json_delta","partial_json":"{\\"city\\":"}}'),
        ('content_block_delta', '{"type":"content_block_delta","index":2,"delta":'
                                '{"type":"input_json_delta","partial_json":" \\"Paris\\"}"}}'),
        ('content_block_stop', '{"type":"content_block_stop","index":2}'),
        ('content_block_start', '{"type":"content_block_start","index":3,"content_block":'
                                '{"type":"tool_use","id":"call_b","name":"get_time","input":{}}}'),
        ('content_block_delta', '{"type":"content_block_delta","index":3,"delta":'
                                '{"type":"input_json_delta","partial_json":"{\\"tz\\": \\"CET\\"}"}}'),
        ('content_block_stop', '{"type":"content_block_stop","index":3}'),
        ('message_delta', '{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
                          '"usage":{"input_tokens":40,"output_tokens":30,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}'),
        ('message_stop', '{"type":"message_stop"}'),
    )


def test_thinking_followed_directly_by_a_tool_call_closes_the_thinking_block() -> None:
    out = run(encoder(), VllmStreamParser().feed(rec.VLLM_TOOLS), 'tool_calls', Usage(95, 25))
    parsed = [(e.split(b'\n')[0], orjson.loads(e.split(b'\ndata: ')[1])) for e in out.split(b'\n\n') if e]

    blocks = [(name, data.get('index')) for name, data in parsed if name.startswith(b'event: content_block_st')]
    assert blocks == [(b'event: content_block_start', 0), (b'event: content_block_stop', 0),
                      (b'event: content_block_start', 1), (b'event: content_block_stop', 1)]


def test_every_event_validates_as_the_sdk_stream_event_type() -> None:
    out = run(encoder(), MIXED, 'tool_calls', Usage(40, 30))
    for event in out.split(b'\n\n'):
        if event and not event.startswith(b'event: ping'):
            EVENT.validate_python(orjson.loads(event.split(b'\ndata: ')[1]))


def test_the_anthropic_sdk_accumulates_the_stream_into_a_message() -> None:
    out = run(encoder(40), MIXED, 'tool_calls', Usage(40, 30))
    with anthropic_client(out) as client, client.messages.stream(
            model='qwen3', max_tokens=100, messages=[{'role': 'user', 'content': 'hi'}]) as stream:
        message = stream.get_final_message()

    assert [block.type for block in message.content] == ['thinking', 'text', 'tool_use', 'tool_use']
    assert message.content[0].thinking == 'Weather and time.'  # type: ignore[union-attr]
    assert message.content[2].input == {'city': 'Paris'}  # type: ignore[union-attr]
    assert message.content[3].input == {'tz': 'CET'}  # type: ignore[union-attr]
    assert (message.stop_reason, message.usage.output_tokens) == ('tool_use', 30)


def test_a_stop_sequence_is_reported_as_such() -> None:
    deltas = [Delta(content='Paris.'), Delta(finish_reason='stop', stop_sequence='\n\n')]
    out = run(encoder(), deltas, 'stop', Usage(5, 2))
    assert b'"delta":{"stop_reason":"stop_sequence","stop_sequence":"\\n\\n"}' in out

    out = run(encoder(), deltas[:1], 'length', Usage(5, 2))
    assert b'"delta":{"stop_reason":"max_tokens","stop_sequence":null}' in out


def test_error_mid_stream_is_an_error_event_without_message_stop() -> None:
    enc = encoder()
    out = enc.start() + enc.delta(Delta(content='Hel')) + enc.error('The engine failed.')

    assert out.endswith(b'event: error\ndata: {"type":"error","error":{"type":"api_error",'
                        b'"message":"The engine failed."}}\n\n')
    assert b'message_stop' not in out and b'message_delta' not in out
    assert enc.end('stop', Usage()) == b''
    with anthropic_client(out) as client, pytest.raises(anthropic.APIStatusError, match='The engine failed'), \
            client.messages.stream(model='m', max_tokens=10, messages=[{'role': 'user', 'content': 'hi'}]) as s:
        s.get_final_message()


def test_delta_before_start_still_opens_with_message_start() -> None:
    enc = encoder()
    out = enc.delta(Delta(content='hi'))
    assert out.startswith(b'event: message_start\n')
    assert enc.start() == b''
