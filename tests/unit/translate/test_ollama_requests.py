"""Ollama request bodies -> canonical -> each engine's request."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidRequest
from core.translate import ollama_engine, vllm_engine
from core.translate.canonical import ImagePart, Kind, Message, ToolCall
from core.translate.ollama_dialect import parse_chat, parse_embed, parse_embeddings, parse_generate

PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='
JPEG = '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0'
GIF = 'R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7'
WEBP = 'UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA=='


def chat(**fields: Any) -> dict[str, Any]:
    return {'model': 'qwen3:8b', 'messages': [{'role': 'user', 'content': 'hi'}], **fields}


def test_stream_defaults_to_true_and_null_means_absent() -> None:
    assert parse_chat(chat()).stream is True
    assert parse_chat(chat(stream=None)).stream is True
    assert parse_chat(chat(stream=False)).stream is False
    assert parse_generate({'model': 'm', 'prompt': 'x'}).stream is True


def test_options_map_to_canonical_fields_and_the_rest_stay_ollama_options() -> None:
    req = parse_chat(chat(options={'temperature': 0.7, 'top_p': 0.8, 'top_k': 40, 'min_p': 0.1, 'seed': 1,
                                   'stop': ['\n'], 'num_predict': 64, 'presence_penalty': 0.1,
                                   'frequency_penalty': 0.2, 'repeat_penalty': 1.2, 'num_ctx': 8192,
                                   'mirostat': 2}, keep_alive='10m'))
    assert (req.temperature, req.top_p, req.top_k, req.min_p, req.seed, req.stop, req.max_tokens) == (
        0.7, 0.8, 40, 0.1, 1, ['\n'], 64)
    assert (req.presence_penalty, req.frequency_penalty, req.repeat_penalty) == (0.1, 0.2, 1.2)
    assert req.backend_options == {'num_ctx': 8192, 'mirostat': 2}

    assert ollama_engine.chat_request(req) == ('/api/chat', {
        'model': 'qwen3:8b', 'messages': [{'role': 'user', 'content': 'hi'}], 'stream': True,
        'options': {'num_ctx': 8192, 'mirostat': 2, 'num_predict': 64, 'temperature': 0.7, 'top_p': 0.8,
                    'top_k': 40, 'min_p': 0.1, 'seed': 1, 'stop': ['\n'], 'presence_penalty': 0.1,
                    'frequency_penalty': 0.2, 'repeat_penalty': 1.2},
        'keep_alive': '10m'})
    _, body = vllm_engine.chat_request(req)
    assert body['max_tokens'] == 64 and body['repetition_penalty'] == 1.2
    assert 'num_ctx' not in body and 'mirostat' not in body and 'options' not in body


def test_unlimited_num_predict_is_no_max_tokens_but_reaches_ollama() -> None:
    req = parse_chat(chat(options={'num_predict': -1}))
    assert req.max_tokens is None
    assert ollama_engine.chat_request(req)[1]['options'] == {'num_predict': -1}
    assert 'max_tokens' not in vllm_engine.chat_request(req)[1]


def test_format_and_think() -> None:
    req = parse_chat(chat(format='JSON', think='high'))
    assert req.response_format == {'type': 'json_object'}
    assert (req.think, ollama_engine.chat_request(req)[1]['format']) == ('high', 'json')
    assert vllm_engine.chat_request(req)[1]['reasoning_effort'] == 'high'

    schema = {'type': 'object', 'properties': {'a': {'type': 'integer'}}}
    req = parse_chat(chat(format=schema, think=False))
    assert req.response_format == {'type': 'json_schema', 'json_schema': {'name': 'response', 'schema': schema}}
    assert ollama_engine.chat_request(req)[1]['format'] == schema
    assert vllm_engine.chat_request(req)[1]['response_format']['json_schema']['schema'] == schema
    assert ollama_engine.chat_request(req)[1]['think'] is False


@pytest.mark.parametrize(('data', 'mime'), [(PNG, 'image/png'), (JPEG, 'image/jpeg'), (GIF, 'image/gif'),
                                            (WEBP, 'image/webp')])
def test_images_get_their_mime_type_from_the_bytes(data: str, mime: str) -> None:
    req = parse_chat({'model': 'llava', 'messages': [{'role': 'user', 'content': 'what?', 'images': [data]}]})
    assert req.messages[0].images == [ImagePart(data=data, media_type=mime)]
    content = vllm_engine.chat_request(req)[1]['messages'][0]['content']
    assert content[1] == {'type': 'image_url', 'image_url': {'url': f'data:{mime};base64,{data}'}}


def test_tool_calls_get_unique_ids_and_tool_results_are_linked_to_their_calls() -> None:
    req = parse_chat({'model': 'm', 'messages': [
        {'role': 'user', 'content': 'weather and time?'},
        {'role': 'assistant', 'content': '', 'tool_calls': [
            {'function': {'name': 'get_weather', 'arguments': {'city': 'Paris'}}},
            {'function': {'name': 'get_time', 'arguments': {'tz': 'CET'}}}]},
        {'role': 'tool', 'tool_name': 'get_time', 'content': '12:00'},
        {'role': 'tool', 'content': 'sunny'},
        {'role': 'assistant', 'content': '', 'tool_calls': [{'function': {'name': 'get_weather',
                                                                          'arguments': {'city': 'Rome'}}}]},
        {'role': 'tool', 'content': 'rain'},
    ]})
    assert req.messages[1].tool_calls == [ToolCall(id='call_0', name='get_weather', arguments='{"city":"Paris"}'),
                                          ToolCall(id='call_1', name='get_time', arguments='{"tz":"CET"}')]
    assert [(m.tool_call_id, m.name) for m in req.messages if m.role == 'tool'] == [
        ('call_1', 'get_time'), ('call_0', 'get_weather'), ('call_2', 'get_weather')]

    messages = vllm_engine.chat_request(req)[1]['messages']
    assert messages[2] == {'role': 'tool', 'content': '12:00', 'tool_call_id': 'call_1'}
    messages = ollama_engine.chat_request(req)[1]['messages']
    assert messages[1]['tool_calls'][0]['function'] == {'name': 'get_weather', 'arguments': {'city': 'Paris'}}
    assert messages[2] == {'role': 'tool', 'content': '12:00', 'tool_name': 'get_time', 'tool_call_id': 'call_1'}


def test_system_messages_are_merged_at_the_front_for_both_engines() -> None:
    req = parse_chat({'model': 'm', 'messages': [
        {'role': 'system', 'content': 'A'}, {'role': 'user', 'content': 'hi'}, {'role': 'system', 'content': 'B'},
        {'role': 'assistant', 'content': 'yo'}, {'role': 'system', 'content': ''}]})
    expected = [{'role': 'system', 'content': 'A\n\nB'}, {'role': 'user', 'content': 'hi'},
                {'role': 'assistant', 'content': 'yo'}]
    assert ollama_engine.chat_request(req)[1]['messages'] == expected
    assert vllm_engine.chat_request(req)[1]['messages'] == expected


def test_missing_messages_is_the_load_model_request() -> None:
    req = parse_chat({'model': 'qwen3:8b'})
    assert req.messages == []
    assert ollama_engine.chat_request(req)[1]['messages'] == []


def test_generate_is_a_completion_with_its_own_system() -> None:
    req = parse_generate({'model': 'm', 'prompt': 'Why?', 'system': 'Be terse.', 'suffix': 'END', 'stream': False,
                          'options': {'num_predict': 10}})
    assert (req.kind, req.prompt, req.system, req.suffix, req.max_tokens) == (
        Kind.completion, 'Why?', 'Be terse.', 'END', 10)
    assert ollama_engine.chat_request(req) == ('/api/generate', {
        'model': 'm', 'prompt': 'Why?', 'system': 'Be terse.', 'suffix': 'END', 'stream': False,
        'options': {'num_predict': 10}})
    assert vllm_engine.chat_request(req) == ('/v1/completions', {
        'model': 'm', 'prompt': 'Be terse.\n\nWhy?', 'suffix': 'END', 'max_tokens': 10, 'stream': False})


def test_generate_with_images_becomes_a_chat_turn() -> None:
    req = parse_generate({'model': 'llava', 'prompt': 'Describe.', 'system': 'Be terse.', 'images': [PNG]})
    assert req.kind == Kind.chat
    assert req.messages == [Message(role='system', content='Be terse.'),
                            Message(role='user', content='Describe.', images=[ImagePart(PNG, 'image/png')])]
    assert ollama_engine.chat_request(req)[0] == '/api/chat'


def test_embed_batches_and_legacy_embeddings() -> None:
    req = parse_embed({'model': 'nomic', 'input': ['a', 'b'], 'truncate': False, 'options': {'num_ctx': 512}})
    assert (req.inputs, req.truncate, req.backend_options) == (['a', 'b'], False, {'num_ctx': 512})
    assert ollama_engine.embed_request(req) == ('/api/embed', {
        'model': 'nomic', 'input': ['a', 'b'], 'truncate': False, 'options': {'num_ctx': 512}})
    assert parse_embed({'model': 'nomic', 'input': 'a'}).inputs == ['a']

    legacy = parse_embeddings({'model': 'nomic', 'prompt': 'hello'})
    assert ollama_engine.embed_request(legacy) == ('/api/embed', {'model': 'nomic', 'input': ['hello']})


@pytest.mark.parametrize(('body', 'param'), [
    ({'messages': []}, 'model'),
    (chat(messages='hi'), 'messages'),
    (chat(stream='no'), 'stream'),
    (chat(options={'temperature': 5}), 'options.temperature'),
    (chat(options={'top_p': -0.1}), 'options.top_p'),
    (chat(options={'num_predict': 0}), 'options.num_predict'),
    (chat(options={'num_predict': -3}), 'options.num_predict'),
    (chat(options={'seed': 'x'}), 'options.seed'),
    (chat(options={'stop': 5}), 'options.stop'),
    (chat(options='fast'), 'options'),
    (chat(format='xml'), 'format'),
    (chat(think='maximum'), 'think'),
    (chat(keep_alive=[1]), 'keep_alive'),
    ({'model': 'm', 'messages': [{'role': 'user', 'content': 'x', 'images': ['not base64!']}]},
     'messages[0].images[0]'),
    ({'model': 'm', 'messages': [{'role': 'robot', 'content': 'x'}]}, 'messages[0].role'),
    ({'model': 'm', 'messages': [{'role': 'assistant', 'tool_calls': [{'function': {'arguments': {}}}]}]},
     'messages[0].tool_calls[0].function.name'),
    ({'model': 'm', 'messages': [{'role': 'assistant', 'tool_calls': [{'function': {'name': 'f',
                                                                                    'arguments': 3}}]}]},
     'messages[0].tool_calls[0].function.arguments'),
    (chat(format={'type': 'object', 'properties': 3}), 'format'),
    (chat(tools=[{'type': 'function', 'function': {'name': 'f', 'parameters': {'type': 'string'}}}]),
     'tools[0].function.parameters'),
    ({'model': 'm', 'messages': [{'role': 'user', 'content': 'x', 'images': ['aGVsbG8sIG5vdCBhbiBpbWFnZQ==']}]},
     'messages[0].images[0]'),
    ({'model': 'm', 'messages': [
        {'role': 'assistant', 'tool_calls': [{'function': {'name': 'f', 'arguments': {}}}]},
        {'role': 'tool', 'tool_call_id': 'call_77', 'content': 'x'}]}, 'messages[1].tool_call_id'),
])
def test_bad_chat_input_names_the_parameter(body: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_chat(body)
    assert raised.value.param == param


@pytest.mark.parametrize(('parse', 'body', 'param'), [
    (parse_embed, {'model': 'm'}, 'input'),
    (parse_embed, {'model': 'm', 'input': []}, 'input'),
    (parse_embed, {'model': 'm', 'input': 'a', 'truncate': 'yes'}, 'truncate'),
    (parse_embeddings, {'model': 'm'}, 'prompt'),
    (parse_generate, {'model': 'm', 'prompt': 5}, 'prompt'),
])
def test_bad_other_input_names_the_parameter(parse: Any, body: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse(body)
    assert raised.value.param == param
