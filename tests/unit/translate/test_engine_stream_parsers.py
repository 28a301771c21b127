"""Golden tests for the engine stream parsers: recorded engine bytes in, the exact canonical deltas out,
however the bytes were cut."""

from __future__ import annotations

import pytest

from core.translate.canonical import Delta, ToolCallDelta, Usage
from core.translate.engine_errors import EngineStreamError
from core.translate.ollama_dialect import OllamaTimings
from core.translate.ollama_engine import OllamaStreamParser
from core.translate.vllm_engine import VllmStreamParser
from tests.unit.translate import recordings as rec

VLLM_CHAT_DELTAS = [
    Delta(reasoning='User wants'),
    Delta(reasoning=' coffee.'),
    Delta(content='café'),
    Delta(content=' ☕'),
    Delta(finish_reason='stop'),
    Delta(usage=Usage(prompt_tokens=12, completion_tokens=28)),
]

VLLM_TOOLS_DELTAS = [
    Delta(reasoning='Need weather.'),
    Delta(tool_calls=[ToolCallDelta(index=0, id='chatcmpl-tool-77e2', name='get_weather')]),
    Delta(tool_calls=[ToolCallDelta(index=0, arguments='{"city": "')]),
    Delta(tool_calls=[ToolCallDelta(index=0, arguments='Paris"}')]),
    Delta(finish_reason='tool_calls'),
    Delta(usage=Usage(prompt_tokens=95, completion_tokens=25)),
]

VLLM_COMPLETION_DELTAS = [
    Delta(content=' Paris'),
    Delta(content='.', finish_reason='stop', stop_sequence='\n\n'),
    Delta(usage=Usage(prompt_tokens=5, completion_tokens=2)),
]

OLLAMA_CHAT_DELTAS = [
    Delta(reasoning='User wants'),
    Delta(reasoning=' coffee.'),
    Delta(content='café'),
    Delta(content=' ☕'),
    Delta(finish_reason='stop', usage=Usage(prompt_tokens=12, completion_tokens=28)),
]

OLLAMA_TOOLS_DELTAS = [
    Delta(tool_calls=[ToolCallDelta(index=0, id='call_k2x9', name='get_weather', arguments='{"city":"Paris"}')]),
    Delta(tool_calls=[ToolCallDelta(index=1, id='call_1', name='get_time', arguments='{"tz":"CET"}')]),
    Delta(finish_reason='tool_calls', usage=Usage(prompt_tokens=95, completion_tokens=25)),
]

OLLAMA_GENERATE_DELTAS = [
    Delta(content='The sky'),
    Delta(content=' is'),
    Delta(finish_reason='length', usage=Usage(prompt_tokens=6, completion_tokens=3)),
]


@pytest.mark.parametrize(('recording', 'expected'), [
    (rec.VLLM_CHAT, VLLM_CHAT_DELTAS),
    (rec.VLLM_TOOLS, VLLM_TOOLS_DELTAS),
    (rec.VLLM_COMPLETION, VLLM_COMPLETION_DELTAS),
], ids=['chat', 'tools', 'completion'])
def test_vllm_stream_gives_the_same_deltas_however_the_bytes_are_cut(recording: bytes, expected: list[Delta]) -> None:
    for pieces in rec.cuts(recording):
        parser = VllmStreamParser()
        assert rec.feed_all(parser, pieces) == expected
        assert parser.done


def test_vllm_stream_tolerates_crlf_framing_and_comment_lines() -> None:
    recording = b': keep-alive\n\n' + rec.VLLM_CHAT.replace(b'\n', b'\r\n')
    for pieces in rec.cuts(recording):
        parser = VllmStreamParser()
        assert rec.feed_all(parser, pieces) == VLLM_CHAT_DELTAS
        assert parser.done


def test_vllm_event_split_over_several_data_lines_is_joined() -> None:
    parser = VllmStreamParser()
    event = b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    assert parser.feed(event) == [Delta(content='hi')]


def test_vllm_done_requires_a_finish_reason_before_the_done_marker() -> None:
    parser = VllmStreamParser()
    parser.feed(rec.VLLM_CHAT.split(b'data: {"id":"chatcmpl-9a1f","object":"chat.completion.chunk","created":'
                                    b'1760000000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":'
                                    b'{"content":""},"logprobs":null,"finish_reason":"stop"')[0])
    assert not parser.done
    parser.feed(b'data: [DONE]\n\n')
    assert not parser.done  # [DONE] without any finish_reason: the stream was cut short


def test_vllm_stream_is_not_done_until_the_done_marker_arrives() -> None:
    parser = VllmStreamParser()
    parser.feed(rec.VLLM_CHAT[:-len(b'data: [DONE]\n\n')])
    assert not parser.done
    parser.feed(b'data: [DO')
    assert not parser.done
    parser.feed(b'NE]\n\n')
    assert parser.done


def test_vllm_error_event_mid_stream_raises_with_the_engine_message() -> None:
    for pieces in rec.cuts(rec.VLLM_ERROR):
        parser = VllmStreamParser()
        seen: list[Delta] = []
        with pytest.raises(EngineStreamError, match='EngineCore encountered an issue') as raised:
            for piece in pieces:
                seen.extend(parser.feed(piece))
        seen.extend(raised.value.deltas)  # parsed from the same piece, before the error
        assert seen == [Delta(content='Hel')]
        assert not parser.done


def test_vllm_legacy_error_object_and_unreadable_events_raise() -> None:
    with pytest.raises(EngineStreamError, match='bad things'):
        VllmStreamParser().feed(b'data: {"object":"error","message":"bad things","code":400}\n\n')
    with pytest.raises(EngineStreamError, match='unreadable'):
        VllmStreamParser().feed(b'data: {"choices": [\n\n')


@pytest.mark.parametrize(('recording', 'expected'), [
    (rec.OLLAMA_CHAT, OLLAMA_CHAT_DELTAS),
    (rec.OLLAMA_TOOLS, OLLAMA_TOOLS_DELTAS),
    (rec.OLLAMA_GENERATE, OLLAMA_GENERATE_DELTAS),
], ids=['chat', 'tools', 'generate'])
def test_ollama_stream_gives_the_same_deltas_however_the_bytes_are_cut(recording: bytes,
                                                                        expected: list[Delta]) -> None:
    for pieces in rec.cuts(recording):
        parser = OllamaStreamParser()
        assert rec.feed_all(parser, pieces) == expected
        assert parser.done


def test_ollama_final_line_keeps_the_engine_timings() -> None:
    parser = OllamaStreamParser()
    parser.feed(rec.OLLAMA_CHAT)
    assert parser.timings == OllamaTimings(total_duration=1_500_000_000, load_duration=20_000_000,
                                           prompt_eval_duration=80_000_000, eval_duration=1_400_000_000)


def test_ollama_stream_tolerates_crlf_and_is_not_done_before_the_final_line() -> None:
    parser = OllamaStreamParser()
    data = rec.OLLAMA_CHAT.replace(b'\n', b'\r\n')
    last_line_start = data.rindex(b'{')
    assert rec.feed_all(parser, [data[:last_line_start]]) == OLLAMA_CHAT_DELTAS[:-1]
    assert not parser.done
    assert parser.feed(data[last_line_start:]) == OLLAMA_CHAT_DELTAS[-1:]
    assert parser.done


def test_ollama_error_line_mid_stream_raises_with_the_engine_message() -> None:
    for pieces in rec.cuts(rec.OLLAMA_ERROR):
        parser = OllamaStreamParser()
        seen: list[Delta] = []
        with pytest.raises(EngineStreamError, match='unexpected EOF') as raised:
            for piece in pieces:
                seen.extend(parser.feed(piece))
        seen.extend(raised.value.deltas)
        assert seen == [Delta(content='Hel')]
        assert not parser.done


def test_ollama_unreadable_line_raises() -> None:
    with pytest.raises(EngineStreamError, match='unreadable'):
        OllamaStreamParser().feed(b'{"model": \n')


def test_chunks_of_an_unexpected_shape_raise_a_stream_error() -> None:
    with pytest.raises(EngineStreamError, match='unexpected shape'):
        VllmStreamParser().feed(b'data: {"choices":["x"]}\n\n')
    with pytest.raises(EngineStreamError, match='unexpected shape'):
        OllamaStreamParser().feed(b'{"message":{"content":"","tool_calls":[{"function":"get"}]},"done":false}\n')
