"""OpenAI request bodies -> canonical -> each engine's request."""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import pytest

from core.errors import InvalidRequest
from core.translate import ollama_engine, vllm_engine
from core.translate.canonical import ImagePart, Kind, Message, ToolCall, ToolCallDelta
from core.translate.openai_dialect import parse_chat, parse_completion, parse_embeddings

PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='


def FN(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {'type': 'function', 'function': {'name': name, 'parameters': parameters}}


def chat(**fields: Any) -> dict[str, Any]:
    return {'model': 'qwen3-8b', 'messages': [{'role': 'user', 'content': 'hi'}], **fields}


def test_defaults_stream_false_and_no_sampling() -> None:
    req = parse_chat(chat())
    assert (req.model, req.kind, req.stream, req.include_usage, req.max_tokens, req.temperature) == (
        'qwen3-8b', Kind.chat, False, False, None, None)
    assert req.messages == [Message(role='user', content='hi')]


def test_sampling_fields_map_to_both_engines() -> None:
    req = parse_chat(chat(stream=True, stream_options={'include_usage': True}, max_tokens=50,
                          max_completion_tokens=100, temperature=0.2, top_p=0.9, top_k=20, min_p=0.05, seed=7,
                          stop='END', presence_penalty=0.5, frequency_penalty=-0.5, repetition_penalty=1.1,
                          user='u1'))
    assert (req.stream, req.include_usage, req.max_tokens, req.stop, req.repeat_penalty) == (
        True, True, 100, ['END'], 1.1)

    path, body = vllm_engine.chat_request(req)
    assert path == '/v1/chat/completions'
    assert body == {
        'model': 'qwen3-8b', 'messages': [{'role': 'user', 'content': 'hi'}], 'max_tokens': 100, 'temperature': 0.2,
        'top_p': 0.9, 'top_k': 20, 'min_p': 0.05, 'seed': 7, 'stop': ['END'], 'presence_penalty': 0.5,
        'frequency_penalty': -0.5, 'repetition_penalty': 1.1, 'user': 'u1', 'stream': True,
        'stream_options': {'include_usage': True},
    }
    path, body = ollama_engine.chat_request(req)
    assert path == '/api/chat'
    assert body == {
        'model': 'qwen3-8b', 'messages': [{'role': 'user', 'content': 'hi'}], 'stream': True,
        'options': {'num_predict': 100, 'temperature': 0.2, 'top_p': 0.9, 'top_k': 20, 'min_p': 0.05, 'seed': 7,
                    'stop': ['END'], 'presence_penalty': 0.5, 'frequency_penalty': -0.5, 'repeat_penalty': 1.1},
    }


def test_vllm_always_gets_usage_in_streams_even_when_the_client_did_not_ask() -> None:
    req = parse_chat(chat(stream=True))
    assert req.include_usage is False
    assert vllm_engine.chat_request(req)[1]['stream_options'] == {'include_usage': True}
    assert 'stream_options' not in vllm_engine.chat_request(parse_chat(chat()))[1]


def test_content_parts_images_tool_calls_and_tool_results() -> None:
    req = parse_chat({'model': 'm', 'messages': [
        {'role': 'developer', 'content': [{'type': 'text', 'text': 'Be brief.'}]},
        {'role': 'user', 'content': [{'type': 'text', 'text': 'What is'}, {'type': 'text', 'text': 'this?'},
                                     {'type': 'image_url', 'image_url': {'url': f'data:image/png;base64,{PNG}'}}]},
        {'role': 'assistant', 'content': None, 'reasoning_content': 'look',
         'tool_calls': [{'id': 'c1', 'type': 'function', 'function': {'name': 'f', 'arguments': '{"a":1}'}}]},
        {'role': 'tool', 'tool_call_id': 'c1', 'content': [{'type': 'text', 'text': '42'}]},
    ]})
    assert req.messages == [
        Message(role='system', content='Be brief.'),
        Message(role='user', content='What is\nthis?', images=[ImagePart(data=PNG, media_type='image/png')]),
        Message(role='assistant', reasoning='look', tool_calls=[ToolCall(id='c1', name='f', arguments='{"a":1}')]),
        Message(role='tool', content='42', tool_call_id='c1'),
    ]
    _, body = vllm_engine.chat_request(req)
    assert body['messages'][1]['content'] == [
        {'type': 'text', 'text': 'What is\nthis?'},
        {'type': 'image_url', 'image_url': {'url': f'data:image/png;base64,{PNG}'}}]
    assert body['messages'][2] == {'role': 'assistant', 'content': None, 'reasoning': 'look', 'tool_calls': [
        {'id': 'c1', 'type': 'function', 'function': {'name': 'f', 'arguments': '{"a":1}'}}]}
    assert body['messages'][3] == {'role': 'tool', 'content': '42', 'tool_call_id': 'c1'}
    _, body = ollama_engine.chat_request(req)
    assert body['messages'][1] == {'role': 'user', 'content': 'What is\nthis?', 'images': [PNG]}
    assert body['messages'][2] == {'role': 'assistant', 'content': '', 'thinking': 'look',
                                   'tool_calls': [{'id': 'c1', 'function': {'name': 'f', 'arguments': {'a': 1}}}]}
    assert body['messages'][3] == {'role': 'tool', 'content': '42', 'tool_call_id': 'c1'}


@pytest.mark.parametrize(('fields', 'think', 'vllm', 'ollama'), [
    ({}, None, {}, {}),
    ({'think': False}, False, {'chat_template_kwargs': {'enable_thinking': False}}, {'think': False}),
    ({'thinking': {'type': 'enabled'}}, True, {'chat_template_kwargs': {'enable_thinking': True}}, {'think': True}),
    ({'chat_template_kwargs': {'enable_thinking': False}}, False,
     {'chat_template_kwargs': {'enable_thinking': False}}, {'think': False}),
    ({'reasoning_effort': 'high'}, 'high', {'reasoning_effort': 'high'}, {'think': 'high'}),
    ({'reasoning_effort': 'minimal'}, 'minimal', {'reasoning_effort': 'minimal'}, {'think': 'low'}),
    ({'reasoning_effort': 'none'}, False, {'chat_template_kwargs': {'enable_thinking': False}}, {'think': False}),
    ({'think': False, 'reasoning_effort': 'low'}, False,
     {'chat_template_kwargs': {'enable_thinking': False}}, {'think': False}),
])
def test_thinking_controls(fields: dict[str, Any], think: object, vllm: dict[str, Any],
                           ollama: dict[str, Any]) -> None:
    req = parse_chat(chat(**fields))
    assert req.think == think
    body = vllm_engine.chat_request(req)[1]
    assert {k: body[k] for k in ('chat_template_kwargs', 'reasoning_effort') if k in body} == vllm
    body = ollama_engine.chat_request(req)[1]
    assert {k: body[k] for k in ('think',) if k in body} == ollama


@pytest.mark.parametrize(('response_format', 'vllm', 'ollama'), [
    ({'type': 'json_object'},
     {'type': 'json_schema', 'json_schema': {'name': 'json_response', 'schema': {'type': 'object'}}}, 'json'),
    ({'type': 'json_schema', 'json_schema': {'schema': {'type': 'array'}}},
     {'type': 'json_schema', 'json_schema': {'schema': {'type': 'array'}, 'name': 'response'}}, {'type': 'array'}),
    ({'type': 'json_schema', 'json_schema': {'name': 'pts', 'strict': True, 'schema': {'type': 'object'}}},
     {'type': 'json_schema', 'json_schema': {'name': 'pts', 'strict': True, 'schema': {'type': 'object'}}},
     {'type': 'object'}),
])
def test_structured_output(response_format: dict[str, Any], vllm: dict[str, Any], ollama: object) -> None:
    req = parse_chat(chat(response_format=response_format))
    assert vllm_engine.chat_request(req)[1]['response_format'] == vllm
    assert ollama_engine.chat_request(req)[1]['format'] == ollama
    assert parse_chat(chat(response_format={'type': 'text'})).response_format is None


def test_tools_pass_to_vllm_and_ollama_gets_none_when_tool_choice_is_none() -> None:
    tools = [{'type': 'function', 'function': {'name': 'f', 'parameters': {'type': 'object'}}},
             {'type': 'function', 'function': {'name': 'g', 'parameters': {'type': 'object'}}}]
    req = parse_chat(chat(tools=tools, tool_choice='required', parallel_tool_calls=False))
    assert vllm_engine.chat_request(req)[1]['tools'] == tools
    assert vllm_engine.chat_request(req)[1]['tool_choice'] == 'required'
    assert vllm_engine.chat_request(req)[1]['parallel_tool_calls'] is False
    assert ollama_engine.chat_request(req)[1]['tools'] == tools  # several tools: Ollama cannot be made to call one
    assert 'tool_choice' not in ollama_engine.chat_request(req)[1]
    assert 'tools' not in ollama_engine.chat_request(parse_chat(chat(tools=tools, tool_choice='none')))[1]


def test_a_forced_tool_is_emulated_on_ollama_with_format_and_comes_back_as_a_call() -> None:
    schema = {'type': 'object', 'properties': {'city': {'type': 'string'}}, 'required': ['city']}
    tools = [{'type': 'function', 'function': {'name': 'f', 'parameters': {'type': 'object'}}},
             {'type': 'function', 'function': {'name': 'weather', 'parameters': schema}}]
    req = parse_chat(chat(tools=tools, tool_choice={'type': 'function', 'function': {'name': 'weather'}}))
    req.request_id = 'abc'
    body = ollama_engine.chat_request(req)[1]
    assert body['format'] == schema and 'tools' not in body
    answer = ollama_engine.parse_chat_response(
        {'model': 'm', 'message': {'role': 'assistant', 'content': '{"city": "Oslo"}'}, 'done': True,
         'done_reason': 'stop'}, req)
    assert answer.content == '' and answer.finish_reason == 'tool_calls'
    assert answer.tool_calls == [ToolCall(id='call_abc_0', name='weather', arguments='{"city": "Oslo"}')]
    parser = ollama_engine.OllamaStreamParser(req)
    deltas = parser.feed(b'{"message":{"role":"assistant","content":"{\\"city\\": "},"done":false}\n'
                         b'{"message":{"role":"assistant","content":"\\"Oslo\\"}"},"done":false}\n'
                         b'{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}\n')
    assert [d.content for d in deltas] == ['']
    assert deltas[0].tool_calls == [ToolCallDelta(index=0, id='call_abc_0', name='weather',
                                                  arguments='{"city": "Oslo"}')]
    assert deltas[0].finish_reason == 'tool_calls'


def test_completion_prompt_and_engines() -> None:
    req = parse_completion({'model': 'm', 'prompt': ['Once upon'], 'max_tokens': 16, 'suffix': 'end', 'stream': True})
    assert (req.kind, req.prompt, req.suffix, req.max_tokens) == (Kind.completion, 'Once upon', 'end', 16)
    assert vllm_engine.chat_request(req) == ('/v1/completions', {
        'model': 'm', 'prompt': 'Once upon', 'suffix': 'end', 'max_tokens': 16, 'stream': True,
        'stream_options': {'include_usage': True}})
    assert ollama_engine.chat_request(req) == ('/api/generate', {
        'model': 'm', 'prompt': 'Once upon', 'suffix': 'end', 'stream': True, 'options': {'num_predict': 16}})


def test_embeddings() -> None:
    req = parse_embeddings({'model': 'e5', 'input': ['a', 'b'], 'dimensions': 256, 'encoding_format': 'base64'})
    assert (req.inputs, req.dimensions, req.encoding_format) == (['a', 'b'], 256, 'base64')
    assert vllm_engine.embed_request(req) == ('/v1/embeddings', {
        'model': 'e5', 'input': ['a', 'b'], 'encoding_format': 'float', 'dimensions': 256})
    assert ollama_engine.embed_request(req) == ('/api/embed', {'model': 'e5', 'input': ['a', 'b'], 'dimensions': 256})
    assert parse_embeddings({'model': 'e5', 'input': 'one'}).inputs == ['one']


@pytest.mark.parametrize(('body', 'param'), [
    ([], None),
    ({'messages': []}, 'model'),
    ({'model': 'm'}, 'messages'),
    ({'model': 'm', 'messages': []}, 'messages'),
    ({'model': 3, 'messages': [{'role': 'user', 'content': 'x'}]}, 'model'),
    (chat(temperature=2.5), 'temperature'),
    (chat(temperature='hot'), 'temperature'),
    (chat(temperature=True), 'temperature'),
    (chat(top_p=1.5), 'top_p'),
    (chat(max_tokens=0), 'max_tokens'),
    (chat(max_tokens=1.5), 'max_tokens'),
    (chat(max_completion_tokens=-1), 'max_completion_tokens'),
    (chat(n=2), 'n'),
    (chat(presence_penalty=3), 'presence_penalty'),
    (chat(stop=[1]), 'stop'),
    (chat(stream='yes'), 'stream'),
    (chat(logprobs=True), 'logprobs'),
    (chat(reasoning_effort='extreme'), 'reasoning_effort'),
    (chat(response_format={'type': 'yaml'}), 'response_format.type'),
    (chat(response_format={'type': 'json_schema', 'json_schema': {'name': 'x'}}), 'response_format.json_schema.schema'),
    (chat(tools=[{'type': 'web_search'}]), 'tools[0].type'),
    (chat(tools=[{'type': 'function', 'function': {}}]), 'tools[0].function.name'),
    (chat(tool_choice='sometimes'), 'tool_choice'),
    ({'model': 'm', 'messages': [{'content': 'x'}]}, 'messages[0].role'),
    ({'model': 'm', 'messages': [{'role': 'wizard', 'content': 'x'}]}, 'messages[0].role'),
    ({'model': 'm', 'messages': [{'role': 'user', 'content': 5}]}, 'messages[0].content'),
    ({'model': 'm', 'messages': [{'role': 'user', 'content': [{'type': 'input_audio'}]}]},
     'messages[0].content[0].type'),
    ({'model': 'm', 'messages': [{'role': 'user', 'content': [
        {'type': 'image_url', 'image_url': {'url': 'ftp://example.com/cat.png'}}]}]},
     'messages[0].content[0].image_url.url'),
    ({'model': 'm', 'messages': [{'role': 'user', 'content': [
        {'type': 'image_url', 'image_url': {'url': 'data:image/png;base64,%%%'}}]}]},
     'messages[0].content[0].image_url.url'),
    ({'model': 'm', 'messages': [{'role': 'assistant', 'tool_calls': [{'function': {'arguments': '{}'}}]}]},
     'messages[0].tool_calls[0].function.name'),
    # tools whose schema is not a JSON Schema, duplicate or odd names, choices that name no tool
    (chat(tools=[FN('f', {'type': 'object', 'properties': {'a': {'type': 'nonsense'}}})]),
     'tools[0].function.parameters'),
    (chat(tools=[FN('f', {'type': 'object', 'required': 'a'})]), 'tools[0].function.parameters'),
    (chat(tools=[FN('f', {'type': 'array'})]), 'tools[0].function.parameters'),
    (chat(tools=[FN('f', {}), FN('f', {})]), 'tools[1]'),
    (chat(tools=[FN('get weather', {})]), 'tools[0]'),
    (chat(tool_choice='required'), 'tool_choice'),
    (chat(tools=[FN('f', {})], tool_choice={'type': 'function', 'function': {'name': 'g'}}), 'tool_choice'),
    (chat(parallel_tool_calls='yes'), 'parallel_tool_calls'),
    # a tool result must answer a call made earlier in the conversation
    ({'model': 'm', 'messages': [{'role': 'tool', 'tool_call_id': 'call_9', 'content': 'sunny'}]},
     'messages[0].tool_call_id'),
    ({'model': 'm', 'messages': [
        {'role': 'assistant', 'tool_calls': [{'id': 'call_1', 'function': {'name': 'f', 'arguments': '{}'}}]},
        {'role': 'tool', 'tool_call_id': 'call_2', 'content': 'sunny'}]}, 'messages[1].tool_call_id'),
    ({'model': 'm', 'messages': [{'role': 'tool', 'content': 'sunny'}]}, 'messages[0].tool_call_id'),
    # a JSON schema that is not a schema; an image that is not an image
    (chat(response_format={'type': 'json_schema', 'json_schema': {'name': 'x', 'schema': {'type': 'objekt'}}}),
     'response_format.json_schema.schema'),
    ({'model': 'm', 'messages': [{'role': 'user', 'content': [
        {'type': 'image_url', 'image_url': {'url': 'data:image/png;base64,' + b64encode(b'not an image').decode()}}]}]},
     'messages[0].content[0].image_url.url'),
])
def test_bad_chat_input_names_the_parameter(body: object, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_chat(body)
    assert raised.value.param == param
    assert raised.value.status_code == 400


@pytest.mark.parametrize(('body', 'param'), [
    ({'model': 'm'}, 'prompt'),
    ({'model': 'm', 'prompt': ['a', 'b']}, 'prompt'),
    ({'model': 'm', 'prompt': [1, 2, 3]}, 'prompt'),
    ({'model': 'm', 'prompt': ''}, 'prompt'),  # Ollama would load the model and answer nothing (Schemathesis found)
    ({'model': 'm', 'prompt': [''], 'suffix': 'end'}, 'prompt'),
    ({'model': 'm', 'prompt': 'a', 'echo': True}, 'echo'),
    ({'model': 'm', 'prompt': 'a', 'best_of': 3}, 'best_of'),
    ({'model': 'm', 'prompt': 'a', 'logprobs': 2}, 'logprobs'),
])
def test_bad_completion_input_names_the_parameter(body: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_completion(body)
    assert raised.value.param == param


@pytest.mark.parametrize(('body', 'param'), [
    ({'model': 'm'}, 'input'),
    ({'model': 'm', 'input': []}, 'input'),
    ({'model': 'm', 'input': [[1, 2]]}, 'input'),
    ({'model': 'm', 'input': 'a', 'dimensions': 0}, 'dimensions'),
    ({'model': 'm', 'input': 'a', 'encoding_format': 'hex'}, 'encoding_format'),
])
def test_bad_embedding_input_names_the_parameter(body: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_embeddings(body)
    assert raised.value.param == param
