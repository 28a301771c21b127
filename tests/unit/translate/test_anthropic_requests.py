"""Anthropic request bodies -> canonical -> each engine's request."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidRequest
from core.translate import ollama_engine, vllm_engine
from core.translate.anthropic_dialect import parse_messages
from core.translate.canonical import ImagePart, Message, ToolCall

PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='


def body(**fields: Any) -> dict[str, Any]:
    return {'model': 'claude-ish', 'max_tokens': 256, 'messages': [{'role': 'user', 'content': 'hi'}], **fields}


def test_basics_system_and_sampling() -> None:
    req = parse_messages(body(system=[{'type': 'text', 'text': 'You are terse.'}, {'type': 'text', 'text': 'Really.'}],
                              temperature=0.5, top_p=0.9, top_k=10, stop_sequences=['###'],
                              metadata={'user_id': 'u-1'}))
    assert (req.stream, req.max_tokens, req.temperature, req.top_p, req.top_k, req.stop, req.user) == (
        False, 256, 0.5, 0.9, 10, ['###'], 'u-1')
    assert req.messages == [Message(role='system', content='You are terse.\nReally.'),
                            Message(role='user', content='hi')]
    _, vllm = vllm_engine.chat_request(req)
    assert vllm['messages'][0] == {'role': 'system', 'content': 'You are terse.\nReally.'}
    assert (vllm['max_tokens'], vllm['stop'], vllm['top_k']) == (256, ['###'], 10)
    _, ollama = ollama_engine.chat_request(req)
    assert ollama['options'] == {'num_predict': 256, 'temperature': 0.5, 'top_p': 0.9, 'top_k': 10, 'stop': ['###']}


def test_tool_use_and_tool_results_become_calls_and_tool_messages() -> None:
    req = parse_messages(body(messages=[
        {'role': 'user', 'content': 'weather?'},
        {'role': 'assistant', 'content': [
            {'type': 'thinking', 'thinking': 'need tool', 'signature': 'sig'},
            {'type': 'text', 'text': 'Let me check.'},
            {'type': 'tool_use', 'id': 'toolu_1', 'name': 'get_weather', 'input': {'city': 'Paris'}}]},
        {'role': 'user', 'content': [
            {'type': 'tool_result', 'tool_use_id': 'toolu_1', 'content': [{'type': 'text', 'text': 'sunny'}]},
            {'type': 'text', 'text': 'And tomorrow?'}]},
    ]))
    assert req.messages == [
        Message(role='user', content='weather?'),
        Message(role='assistant', content='Let me check.', reasoning='need tool',
                tool_calls=[ToolCall(id='toolu_1', name='get_weather', arguments='{"city":"Paris"}')]),
        Message(role='tool', content='sunny', tool_call_id='toolu_1'),
        Message(role='user', content='And tomorrow?'),
    ]
    assert vllm_engine.chat_request(req)[1]['messages'][2] == {'role': 'tool', 'content': 'sunny',
                                                               'tool_call_id': 'toolu_1'}


CALLS = {'role': 'assistant', 'content': [{'type': 'tool_use', 'id': 't1', 'name': 'f', 'input': {}},
                                          {'type': 'tool_use', 'id': 't2', 'name': 'f', 'input': {'a': 1}}]}
CALLED = Message(role='assistant', tool_calls=[ToolCall('t1', 'f', '{}'), ToolCall('t2', 'f', '{"a":1}')])


def test_a_turn_of_only_tool_results_adds_no_empty_user_message() -> None:
    req = parse_messages(body(messages=[
        CALLS, {'role': 'user', 'content': [{'type': 'tool_result', 'tool_use_id': 't1', 'content': 'ok'},
                                            {'type': 'tool_result', 'tool_use_id': 't2', 'is_error': True}]}]))
    assert req.messages == [CALLED, Message(role='tool', content='ok', tool_call_id='t1'),
                            Message(role='tool', content='', tool_call_id='t2')]


def test_images_in_messages_and_in_tool_results() -> None:
    image = {'type': 'image', 'source': {'type': 'base64', 'media_type': 'image/png', 'data': PNG}}
    req = parse_messages(body(messages=[CALLS, {'role': 'user', 'content': [
        {'type': 'tool_result', 'tool_use_id': 't1', 'content': [{'type': 'text', 'text': 'chart'}, image]},
        image, {'type': 'text', 'text': 'compare'}]}]))
    assert req.messages == [
        CALLED,
        Message(role='tool', content='chart', tool_call_id='t1'),
        Message(role='user', content='compare', images=[ImagePart(PNG, 'image/png'), ImagePart(PNG, 'image/png')]),
    ]


def test_tools_tool_choice_thinking_and_output_format() -> None:
    req = parse_messages(body(
        tools=[{'name': 'get_weather', 'description': 'Weather now', 'input_schema': {'type': 'object'}}],
        tool_choice={'type': 'any'}, thinking={'type': 'enabled', 'budget_tokens': 2048},
        output_format={'type': 'json_schema', 'schema': {'type': 'object'}}))
    assert req.tools == [{'type': 'function', 'function': {'name': 'get_weather', 'description': 'Weather now',
                                                           'parameters': {'type': 'object'}}}]
    assert (req.tool_choice, req.think) == ('required', True)
    assert req.response_format == {'type': 'json_schema',
                                   'json_schema': {'name': 'response', 'schema': {'type': 'object'}}}
    assert req.think_budget == 2048
    _, vllm = vllm_engine.chat_request(req)
    assert (vllm['tool_choice'], vllm['chat_template_kwargs']) == ('required', {'enable_thinking': True})
    assert vllm['thinking_token_budget'] == 2048

    tools = [{'name': 'f', 'input_schema': {'type': 'object'}}]
    named = parse_messages(body(tools=tools,
                                tool_choice={'type': 'tool', 'name': 'f', 'disable_parallel_tool_use': True}))
    assert named.tool_choice == {'type': 'function', 'function': {'name': 'f'}}
    assert named.parallel_tool_calls is False
    assert parse_messages(body(tool_choice={'type': 'auto'})).tool_choice == 'auto'
    assert parse_messages(body(thinking={'type': 'disabled'})).think is False
    assert parse_messages(body(stream=True)).stream is True


@pytest.mark.parametrize(('fields', 'param'), [
    ({'max_tokens': None}, 'max_tokens'),
    ({'max_tokens': 0}, 'max_tokens'),
    ({'model': None}, 'model'),
    ({'messages': []}, 'messages'),
    ({'temperature': 1.5}, 'temperature'),
    ({'top_p': 2}, 'top_p'),
    ({'stop_sequences': 'END'}, 'stop_sequences'),
    ({'system': 5}, 'system'),
    ({'system': [{'type': 'image'}]}, 'system[0].type'),
    ({'messages': [{'role': 'tool', 'content': 'x'}]}, 'messages[0].role'),
    ({'messages': [{'role': 'user', 'content': [{'type': 'document'}]}]}, 'messages[0].content[0].type'),
    ({'messages': [{'role': 'user', 'content': [{'type': 'tool_use', 'id': 'x', 'name': 'f', 'input': {}}]}]},
     'messages[0].content[0].type'),
    ({'messages': [{'role': 'user', 'content': [{'type': 'image', 'source': {'type': 'url', 'url': 'file:///x'}}]}]},
     'messages[0].content[0].source.url'),
    ({'messages': [{'role': 'user', 'content': [{'type': 'image', 'source': {'type': 'file', 'file_id': 'f'}}]}]},
     'messages[0].content[0].source.type'),
    ({'messages': [{'role': 'user', 'content': [{'type': 'tool_result', 'tool_use_id': 'nope', 'content': 'x'}]}]},
     'messages[0].content[0].tool_use_id'),
    ({'tools': [{'name': 'f', 'input_schema': {'type': 'object', 'properties': {'a': {'type': 'nonsense'}}}}]},
     'tools[0].input_schema'),
    ({'tools': [{'name': 'f', 'input_schema': {'type': 'string'}}]}, 'tools[0].input_schema'),
    ({'tools': [{'name': 'f', 'input_schema': {}}, {'name': 'f', 'input_schema': {}}]}, 'tools[1]'),
    ({'tool_choice': {'type': 'tool', 'name': 'f'}}, 'tool_choice'),
    ({'tools': [{'name': 'f', 'input_schema': {}}], 'tool_choice': {'type': 'tool', 'name': 'g'}}, 'tool_choice'),
    ({'output_format': {'type': 'json_schema', 'schema': {'type': 7}}}, 'output_format.schema'),
    ({'thinking': {'type': 'enabled', 'budget_tokens': 0}}, 'thinking.budget_tokens'),
    ({'messages': [{'role': 'user', 'content': [{'type': 'image', 'source': {
        'type': 'base64', 'media_type': 'image/tiff', 'data': PNG}}]}]}, 'messages[0].content[0].source.media_type'),
    ({'messages': [{'role': 'user', 'content': [{'type': 'tool_result', 'content': 'x'}]}]},
     'messages[0].content[0].tool_use_id'),
    ({'tools': [{'name': 'f'}]}, 'tools[0].input_schema'),
    ({'tools': [{'type': 'web_search_20250305', 'name': 'web_search'}]}, 'tools[0].type'),
    ({'tool_choice': {'type': 'sometimes'}}, 'tool_choice.type'),
    ({'thinking': {'type': 'deep'}}, 'thinking.type'),
    ({'output_format': {'type': 'json_schema'}}, 'output_format'),
])
def test_bad_input_names_the_parameter(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_messages(body(**fields))
    assert raised.value.param == param


def test_system_turns_inside_messages_join_the_system_prompt_in_order() -> None:
    req = parse_messages(body(system=[{'type': 'text', 'text': 'Be brief.', 'cache_control': {'type': 'ephemeral'}}],
                              messages=[{'role': 'user', 'content': 'hi'},
                                        {'role': 'system', 'content': [{'type': 'text', 'text': 'cwd: /src'}]},
                                        {'role': 'assistant', 'content': 'hello'},
                                        {'role': 'system', 'content': 'Reminder: tests first.'},
                                        {'role': 'user', 'content': 'go'}]))
    assert req.messages == [Message(role='system', content='Be brief.\n\ncwd: /src\n\nReminder: tests first.'),
                            Message(role='user', content='hi'), Message(role='assistant', content='hello'),
                            Message(role='user', content='go')]
    only_turns = parse_messages(body(messages=[{'role': 'system', 'content': 'x'}, {'role': 'user', 'content': 'y'}]))
    assert only_turns.messages == [Message(role='system', content='x'), Message(role='user', content='y')]


@pytest.mark.parametrize(('fields', 'think'), [
    ({'thinking': {'type': 'adaptive', 'display': 'omitted'}}, True),
    ({'thinking': {'type': 'adaptive'}, 'output_config': {'effort': 'high'}}, 'high'),
    ({'thinking': {'type': 'enabled', 'budget_tokens': 2048}, 'output_config': {'effort': 'low'}}, 'low'),
    ({'output_config': {'effort': 'max'}}, 'max'),
    ({'thinking': {'type': 'disabled'}, 'output_config': {'effort': 'high'}}, False),
    ({}, None),
])
def test_adaptive_thinking_and_effort_become_the_thinking_level(fields: dict[str, Any], think: object) -> None:
    assert parse_messages(body(**fields)).think == think


def test_what_open_engines_cannot_honour_is_accepted_and_ignored() -> None:
    req = parse_messages(body(
        context_management={'edits': [{'type': 'clear_thinking_20251015', 'keep': 'all'}]},
        metadata={'user_id': '{"device_id":"d"}'},
        tools=[{'name': 'Read', 'input_schema': {'type': 'object'}, 'cache_control': {'type': 'ephemeral'}},
               {'name': 'Later', 'input_schema': {'type': 'object'}, 'defer_loading': True}],
        messages=[{'role': 'user', 'content': [{'type': 'text', 'text': 'hi',
                                                'cache_control': {'type': 'ephemeral'}}]}]))
    assert req.messages == [Message(role='user', content='hi')]
    assert req.tools is not None and [t['function']['name'] for t in req.tools] == ['Read', 'Later']
    assert req.tools[0]['function'] == {'name': 'Read', 'parameters': {'type': 'object'}}


@pytest.mark.parametrize(('fields', 'param'), [
    ({'output_config': {'effort': 'extreme'}}, 'output_config.effort'),
    ({'messages': [{'role': 'system', 'content': [{'type': 'image'}]}]}, 'messages[0].content[0].type'),
    ({'messages': [{'role': 'system', 'content': 7}]}, 'messages[0].content'),
])
def test_invalid_claude_code_fields_name_the_parameter(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_messages(body(**fields))
    assert raised.value.param == param
