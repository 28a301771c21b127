"""Engine stream -> parser -> encoder, the way the gateway relays it: every engine recording, cut awkwardly,
through every client dialect, read back by that dialect's official client."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import ollama
import openai
import pytest

from core.translate.anthropic_stream import AnthropicMessagesEncoder
from core.translate.canonical import ChatRequest, Usage
from core.translate.engine_errors import EngineStreamError
from core.translate.ollama_engine import OllamaStreamParser
from core.translate.ollama_stream import OllamaChatEncoder
from core.translate.openai_stream import OpenAIChatEncoder
from core.translate.streaming import StreamEncoder, StreamParser, StreamTally
from core.translate.vllm_engine import VllmStreamParser
from tests.unit.translate import recordings as rec
from tests.unit.translate.sdk import anthropic_client, ollama_client, openai_client

REQ = ChatRequest(model='m', stream=True, include_usage=True)


def relay(parser: StreamParser, encoder: StreamEncoder, pieces: list[bytes]) -> bytes:
    """The gateway's loop, minus the sockets."""
    tally = StreamTally()
    out = [encoder.start()]
    try:
        for piece in pieces:
            for d in parser.feed(piece):
                tally.observe(d)
                out.append(encoder.delta(d))
    except EngineStreamError as exc:
        out.extend(encoder.delta(d) for d in exc.deltas)
        out.append(encoder.error(exc.message))
        return b''.join(out)
    if not parser.done:
        out.append(encoder.error('The engine stream ended early.'))
    else:
        out.append(encoder.end(tally.finish_reason or 'stop', tally.usage or Usage()))
    return b''.join(out)


ENGINES: dict[str, tuple[Callable[[], StreamParser], bytes, bytes]] = {
    'vllm': (VllmStreamParser, rec.VLLM_CHAT, rec.VLLM_ERROR),
    'ollama': (OllamaStreamParser, rec.OLLAMA_CHAT, rec.OLLAMA_ERROR),
}


@pytest.mark.parametrize('engine', ENGINES)
def test_openai_client_gets_the_whole_answer(engine: str) -> None:
    make_parser, recording, _ = ENGINES[engine]
    for pieces in list(rec.cuts(recording))[:6]:
        out = relay(make_parser(), OpenAIChatEncoder(REQ, request_id='r', model='m', created=1), pieces)
        with openai_client(out) as client:
            chunks = list(client.chat.completions.create(model='m', messages=[{'role': 'user', 'content': 'x'}],
                                                         stream=True))
        assert ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices) == 'café ☕'
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == 'stop'
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 28


@pytest.mark.parametrize('engine', ENGINES)
def test_anthropic_client_gets_the_whole_answer(engine: str) -> None:
    make_parser, recording, _ = ENGINES[engine]
    out = relay(make_parser(), AnthropicMessagesEncoder(REQ, request_id='r', model='m'), [recording])
    with anthropic_client(out) as client, client.messages.stream(
            model='m', max_tokens=50, messages=[{'role': 'user', 'content': 'x'}]) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ['thinking', 'text']
    assert message.content[1].text == 'café ☕'  # type: ignore[union-attr]
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ('end_turn', 12, 28)


@pytest.mark.parametrize('engine', ENGINES)
def test_ollama_client_gets_the_whole_answer(engine: str) -> None:
    make_parser, recording, _ = ENGINES[engine]
    out = relay(make_parser(), OllamaChatEncoder(REQ, model='m'), [recording])
    with ollama_client(out) as client:
        parts = list(client.chat(model='m', messages=[{'role': 'user', 'content': 'x'}], stream=True))
    assert ''.join(p.message.content or '' for p in parts) == 'café ☕'
    assert (parts[-1].done, parts[-1].done_reason, parts[-1].eval_count) == (True, 'stop', 28)


@pytest.mark.parametrize('engine', ENGINES)
def test_an_engine_error_reaches_every_client_as_an_error(engine: str) -> None:
    make_parser, _, failing = ENGINES[engine]
    messages = [{'role': 'user', 'content': 'x'}]

    out = relay(make_parser(), OpenAIChatEncoder(REQ, request_id='r', model='m', created=1), [failing])
    assert b'[DONE]' not in out
    with openai_client(out) as oa, pytest.raises(openai.APIError):
        list(oa.chat.completions.create(model='m', messages=messages, stream=True))  # type: ignore[arg-type]

    out = relay(make_parser(), AnthropicMessagesEncoder(REQ, request_id='r', model='m'), [failing])
    assert b'message_stop' not in out
    with anthropic_client(out) as an, pytest.raises(anthropic.APIStatusError), \
            an.messages.stream(model='m', max_tokens=5, messages=messages) as stream:  # type: ignore[arg-type]
        stream.get_final_message()

    out = relay(make_parser(), OllamaChatEncoder(REQ, model='m'), [failing])
    assert b'"done":true' not in out
    with ollama_client(out) as ol, pytest.raises(ollama.ResponseError):
        list(ol.chat(model='m', messages=messages, stream=True))


def test_a_stream_that_stops_before_its_ending_is_an_error_not_a_clean_end() -> None:
    cut_short = rec.VLLM_CHAT[:rec.VLLM_CHAT.index(b'data: [DONE]')]
    out = relay(VllmStreamParser(), OpenAIChatEncoder(REQ, request_id='r', model='m', created=1), [cut_short])
    assert out.endswith(b'data: {"error":{"message":"The engine stream ended early.","type":"server_error",'
                        b'"param":null,"code":null}}\n\n')
