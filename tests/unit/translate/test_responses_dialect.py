"""The Responses dialect on its own: request items -> canonical messages, answers -> `response` objects, and the
stream encoder's events, each validated against the official openai SDK's own types (strict pydantic
validation, not the SDK's lenient parsing), then read by the SDK's stream accumulator."""

from __future__ import annotations

import json
from typing import Any, get_args

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from core.errors import InvalidRequest
from core.translate.canonical import ChatResponse, Delta, ToolCall, ToolCallDelta, Usage
from core.translate.responses_dialect import conversation, parse_request, render_response
from core.translate.responses_stream import ResponsesStreamEncoder
from tests.unit.translate.sdk import openai_client

# every event type the SDK knows, by its `type`: validated strictly, without the SDK's lenient parsing
EVENT = {get_args(cls.model_fields['type'].annotation)[0]: cls for cls in get_args(get_args(ResponseStreamEvent)[0])}
WEATHER = {'type': 'function', 'name': 'get_weather',
           'parameters': {'type': 'object', 'properties': {'location': {'type': 'string'}}}}


def _request(**body: Any) -> Any:
    req = parse_request({'model': 'm', **body})
    conversation(req, [])
    return req


def _events(stream: bytes) -> list[dict[str, Any]]:
    events = []
    for frame in stream.decode().split('\n\n'):
        if not frame:
            continue
        kind, data = frame.split('\n')
        event = orjson.loads(data.removeprefix('data: '))
        assert kind == f"event: {event['type']}"
        EVENT[event['type']].model_validate(event)  # every field the SDK's type declares, with the right types
        events.append(event)
    assert [e['sequence_number'] for e in events] == list(range(len(events)))
    return events


def _stream(req: Any, deltas: list[Delta], finish: str = 'stop', usage: Usage | None = None) -> bytes:
    encoder = ResponsesStreamEncoder(req, response_id='resp_1', created=1)
    return encoder.start() + b''.join(encoder.delta(d) for d in deltas) + encoder.end(finish, usage or Usage(3, 4))


def test_input_items_become_one_conversation() -> None:
    req = _request(instructions='Be brief.', input=[
        {'role': 'developer', 'content': 'house rules'},
        {'role': 'user', 'content': [{'type': 'input_text', 'text': 'weather?'}]},
        {'type': 'reasoning', 'id': 'rs_1', 'summary': [{'type': 'summary_text', 'text': 'two cities'}]},
        {'type': 'function_call', 'call_id': 'a', 'name': 'get_weather', 'arguments': '{"location": "Paris"}'},
        {'type': 'function_call', 'call_id': 'b', 'name': 'get_weather', 'arguments': '{"location": "Oslo"}'},
        {'type': 'function_call_output', 'call_id': 'a', 'output': 'warm'},
        {'type': 'function_call_output', 'call_id': 'b', 'output': [{'type': 'input_text', 'text': 'cold'}]},
    ], tools=[WEATHER, {'type': 'web_search'}], tool_choice='auto')
    messages = req.chat.messages
    assert [m.role for m in messages] == ['system', 'system', 'user', 'assistant', 'tool', 'tool']
    assert [c.id for c in messages[3].tool_calls] == ['a', 'b'] and messages[3].reasoning == 'two cities'
    assert (messages[4].content, messages[5].content) == ('warm', 'cold')
    assert [t['function']['name'] for t in req.chat.tools] == ['get_weather']  # hosted tools left out


@pytest.mark.parametrize(('body', 'param'), [
    ({'input': [{'type': 'item_reference', 'id': 'x'}]}, 'input[0].type'),
    ({'input': [{'type': 'function_call_output', 'call_id': 'x', 'output': 'y'}]}, 'input[0].call_id'),
    ({'input': [{'role': 'tool', 'content': 'x'}]}, 'input[0].role'),
    ({'input': [{'role': 'assistant', 'content': [{'type': 'input_image', 'image_url': 'data:x'}]}]},
     'input[0].content[0]'),
    ({'input': 'x', 'text': {'format': {'type': 'json_schema', 'schema': {'type': 'nope'}}}}, 'text.format.schema'),
    ({'input': 'x', 'metadata': {'k': 1}}, 'metadata'),
    ({'input': 'x', 'background': True}, 'background'),
])
def test_bad_items_are_refused_naming_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _request(**body)
    assert refused.value.param == param


def test_a_whole_answer_is_a_valid_sdk_response() -> None:
    req = _request(input='hi', tools=[WEATHER], metadata={'a': 'b'}, reasoning={'effort': 'low'})
    answer = ChatResponse(model='m', content='', reasoning='think', usage=Usage(5, 10), finish_reason='tool_calls',
                          tool_calls=[ToolCall('c1', 'get_weather', '{"location":"Paris"}')])
    body = render_response(answer, req, response_id='resp_1', created=1, completed_at=2)
    parsed = Response.model_validate(body)
    assert [item.type for item in parsed.output] == ['reasoning', 'function_call']
    assert parsed.usage is not None and parsed.usage.output_tokens_details.reasoning_tokens == 10
    assert req.chat.think == 'low'


def test_a_streamed_answer_walks_every_item_through_its_events() -> None:
    req = _request(input='hi', tools=[WEATHER])
    stream = _stream(req, [
        Delta(reasoning='hm'), Delta(reasoning='m'), Delta(content='Sure. '),
        Delta(tool_calls=[ToolCallDelta(0, 'c1', 'get_weather', '')]),
        Delta(tool_calls=[ToolCallDelta(0, None, None, '{"location": '), ToolCallDelta(1, 'c2', 'get_weather', '')]),
        Delta(tool_calls=[ToolCallDelta(0, None, None, '"Paris"}'), ToolCallDelta(1, None, None, '{}')]),
    ], finish='tool_calls')
    events = _events(stream)
    kinds = [e['type'] for e in events]
    assert kinds[:5] == ['response.created', 'response.in_progress', 'response.output_item.added',
                         'response.reasoning_summary_part.added', 'response.reasoning_summary_text.delta']
    assert kinds[-1] == 'response.completed'
    final = events[-1]['response']
    assert [i['type'] for i in final['output']] == ['reasoning', 'message', 'function_call', 'function_call']
    assert [i['arguments'] for i in final['output'][2:]] == ['{"location": "Paris"}', '{}']
    done = [e['item']['type'] for e in events if e['type'] == 'response.output_item.done']
    assert done == ['reasoning', 'message', 'function_call', 'function_call']
    with openai_client(stream) as client, client.responses.stream(model='m', input='hi') as sdk_stream:
        sdk_final = sdk_stream.get_final_response()
    assert sdk_final.output_text == 'Sure. ' and json.loads(sdk_final.output[2].arguments) == {'location': 'Paris'}


def test_a_cut_answer_is_incomplete_and_an_empty_one_is_still_a_message() -> None:
    req = _request(input='hi')
    events = _events(_stream(req, [Delta(content='a')], finish='length'))
    assert events[-1]['type'] == 'response.incomplete'
    assert events[-1]['response']['incomplete_details'] == {'reason': 'max_output_tokens'}
    empty = _events(_stream(req, []))[-1]['response']
    assert [i['type'] for i in empty['output']] == ['message'] and empty['output'][0]['content'][0]['text'] == ''


def test_an_engine_dying_mid_stream_ends_with_error_then_failed() -> None:
    encoder = ResponsesStreamEncoder(_request(input='hi'), response_id='resp_1', created=1)
    stream = encoder.start() + encoder.delta(Delta(content='par')) + encoder.error('engine died')
    events = _events(stream)
    assert [e['type'] for e in events[-2:]] == ['error', 'response.failed']
    assert events[-1]['response']['error']['message'] == 'engine died'
    assert encoder.end('stop', Usage()) == b'' and encoder.delta(Delta(content='x')) == b''


def test_the_finished_response_is_handed_over_once() -> None:
    kept: list[dict[str, Any]] = []
    encoder = ResponsesStreamEncoder(_request(input='hi'), response_id='resp_1', created=1, on_done=kept.append)
    encoder.start()
    encoder.delta(Delta(content='hello'))
    encoder.end('stop', Usage(1, 1))
    encoder.end('stop', Usage(1, 1))
    assert len(kept) == 1 and kept[0]['output'][0]['content'][0]['text'] == 'hello'
