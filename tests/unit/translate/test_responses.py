"""Non-streamed answers: engine bodies -> canonical -> each dialect's body, read back by the official SDKs."""

from __future__ import annotations

import math
from typing import Any

import ollama
import orjson
import pytest

from core.translate import anthropic_dialect, ollama_dialect, ollama_engine, openai_dialect, vllm_engine
from core.translate.canonical import ChatResponse, EmbeddingResponse, ToolCall, Usage
from core.translate.engine_errors import EngineResponseError
from core.translate.ollama_dialect import OllamaTimings
from tests.unit.translate.sdk import anthropic_client, ollama_client, openai_client

VLLM_CHAT = {
    'id': 'chatcmpl-1', 'object': 'chat.completion', 'created': 1760000000, 'model': 'Qwen/Qwen3-8B',
    'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': 'Paris.', 'refusal': None,
                                         'annotations': None, 'audio': None, 'function_call': None,
                                         'tool_calls': [], 'reasoning': 'Capital of France.'},
                 'logprobs': None, 'finish_reason': 'stop', 'stop_reason': None, 'token_ids': None}],
    'usage': {'prompt_tokens': 10, 'total_tokens': 15, 'completion_tokens': 5, 'prompt_tokens_details': None},
    'prompt_logprobs': None, 'kv_transfer_params': None,
}
VLLM_TOOL = {
    'id': 'chatcmpl-2', 'object': 'chat.completion', 'created': 1760000000, 'model': 'Qwen/Qwen3-8B',
    'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': None, 'reasoning_content': 'tool time',
                                         'tool_calls': [{'id': 'chatcmpl-tool-1', 'type': 'function', 'function': {
                                             'name': 'get_weather', 'arguments': '{"city": "Paris"}'}}]},
                 'logprobs': None, 'finish_reason': 'tool_calls', 'stop_reason': None}],
    'usage': {'prompt_tokens': 90, 'total_tokens': 110, 'completion_tokens': 20},
}
VLLM_COMPLETION = {
    'id': 'cmpl-1', 'object': 'text_completion', 'created': 1760000000, 'model': 'Qwen/Qwen3-8B',
    'choices': [{'index': 0, 'text': ' Paris.', 'logprobs': None, 'finish_reason': 'stop', 'stop_reason': '###'}],
    'usage': {'prompt_tokens': 4, 'total_tokens': 7, 'completion_tokens': 3},
}
OLLAMA_CHAT = {
    'model': 'qwen3:8b', 'created_at': '2025-10-09T12:00:00.5Z',
    'message': {'role': 'assistant', 'content': 'Paris.', 'thinking': 'Capital of France.'},
    'done_reason': 'stop', 'done': True, 'total_duration': 500, 'load_duration': 100, 'prompt_eval_count': 10,
    'prompt_eval_duration': 200, 'eval_count': 5, 'eval_duration': 200,
}
OLLAMA_TOOL = {
    'model': 'qwen3:8b', 'created_at': '2025-10-09T12:00:00.5Z',
    'message': {'role': 'assistant', 'content': '', 'tool_calls': [
        {'function': {'index': 0, 'name': 'get_weather', 'arguments': {'city': 'Paris'}}}]},
    'done_reason': 'stop', 'done': True, 'prompt_eval_count': 90, 'eval_count': 20,
}
OLLAMA_GENERATE = {'model': 'gemma3', 'created_at': '2025-10-09T12:00:00.5Z', 'response': ' Paris', 'done': True,
                   'done_reason': 'length', 'context': [1, 2], 'prompt_eval_count': 4, 'eval_count': 3}

ANSWER = ChatResponse(model='Qwen/Qwen3-8B', content='Paris.', reasoning='Capital of France.', usage=Usage(10, 5))
TOOL_ANSWER = ChatResponse(model='Qwen/Qwen3-8B', reasoning='tool time', finish_reason='tool_calls',
                           tool_calls=[ToolCall('chatcmpl-tool-1', 'get_weather', '{"city": "Paris"}')],
                           usage=Usage(90, 20))


def test_vllm_answers_to_canonical() -> None:
    assert vllm_engine.parse_chat_response(VLLM_CHAT) == ANSWER
    assert vllm_engine.parse_chat_response(VLLM_TOOL) == TOOL_ANSWER
    assert vllm_engine.parse_chat_response(VLLM_COMPLETION) == ChatResponse(
        model='Qwen/Qwen3-8B', content=' Paris.', usage=Usage(4, 3), stop_sequence='###')
    with pytest.raises(EngineResponseError):
        vllm_engine.parse_chat_response({'object': 'chat.completion', 'choices': []})


def test_ollama_answers_to_canonical() -> None:
    assert ollama_engine.parse_chat_response(OLLAMA_CHAT) == ChatResponse(
        model='qwen3:8b', content='Paris.', reasoning='Capital of France.', usage=Usage(10, 5))
    assert ollama_engine.parse_chat_response(OLLAMA_TOOL) == ChatResponse(
        model='qwen3:8b', finish_reason='tool_calls', usage=Usage(90, 20),
        tool_calls=[ToolCall('call_0', 'get_weather', '{"city":"Paris"}')])
    assert ollama_engine.parse_chat_response(OLLAMA_GENERATE) == ChatResponse(
        model='gemma3', content=' Paris', finish_reason='length', usage=Usage(4, 3))
    assert ollama_engine.timings(OLLAMA_CHAT) == OllamaTimings(500, 100, 200, 200)


def test_embedding_answers_to_canonical() -> None:
    vllm = {'id': 'embd-1', 'object': 'list', 'created': 1, 'model': 'e5', 'data': [
        {'index': 1, 'object': 'embedding', 'embedding': [0.3, 0.4]},
        {'index': 0, 'object': 'embedding', 'embedding': [0.1, 0.2]}],
        'usage': {'prompt_tokens': 4, 'total_tokens': 4, 'completion_tokens': 0}}
    expected = EmbeddingResponse(model='e5', embeddings=[[0.1, 0.2], [0.3, 0.4]], prompt_tokens=4)
    assert vllm_engine.parse_embed_response(vllm, 'e5') == expected
    ollama_body = {'model': 'e5', 'embeddings': [[0.1, 0.2], [0.3, 0.4]], 'total_duration': 1, 'load_duration': 0,
                   'prompt_eval_count': 4}
    assert ollama_engine.parse_embed_response(ollama_body, 'e5') == expected
    assert ollama_engine.parse_embed_response({'embedding': [0.5]}, 'e5').embeddings == [[0.5]]


@pytest.mark.parametrize(('status', 'body', 'message'), [
    (400, b'{"error":{"message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400}}',
     'max_tokens is too large'),
    (400, b'{"object":"error","message":"This model\'s maximum context length is 4096","code":400}',
     "This model's maximum context length is 4096"),
    (404, b'{"error":"model \'llama9\' not found"}', "model 'llama9' not found"),
    (422, b'{"detail":[{"loc":["body","model"],"msg":"field required"}]}',
     '[{"loc":["body","model"],"msg":"field required"}]'),
    (502, b'<html>Bad Gateway</html>', '<html>Bad Gateway</html>'),
    (503, b'', 'The engine answered HTTP 503 with no message.'),
])
def test_engine_error_messages(status: int, body: bytes, message: str) -> None:
    assert vllm_engine.error_message(status, body) == message
    assert ollama_engine.error_message(status, body) == message


def test_openai_chat_body_read_by_the_sdk() -> None:
    body = openai_dialect.render_chat(ANSWER, request_id='r1', created=1760000000, model='qwen3-8b')
    assert body == {
        'id': 'chatcmpl-r1', 'object': 'chat.completion', 'created': 1760000000, 'model': 'qwen3-8b',
        'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': 'Paris.',
                                             'reasoning_content': 'Capital of France.'},
                     'logprobs': None, 'finish_reason': 'stop'}],
        'usage': {'prompt_tokens': 10, 'completion_tokens': 5, 'total_tokens': 15},
    }
    with openai_client(orjson.dumps(body), 'application/json') as client:
        completion = client.chat.completions.create(model='qwen3-8b', messages=[{'role': 'user', 'content': 'hi'}])
    assert completion.choices[0].message.content == 'Paris.'
    assert completion.choices[0].message.model_extra == {'reasoning_content': 'Capital of France.'}

    body = openai_dialect.render_chat(TOOL_ANSWER, request_id='r2', created=1760000000, model='qwen3-8b')
    assert body['choices'][0]['message']['content'] is None
    with openai_client(orjson.dumps(body), 'application/json') as client:
        completion = client.chat.completions.create(model='qwen3-8b', messages=[{'role': 'user', 'content': 'hi'}])
    assert completion.choices[0].finish_reason == 'tool_calls'
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]


def test_openai_completion_body_is_a_text_completion() -> None:
    answer = vllm_engine.parse_chat_response(VLLM_COMPLETION)
    body = openai_dialect.render_completion(answer, request_id='r3', created=1760000000, model='qwen3-8b')
    assert body['object'] == 'text_completion' and body['id'] == 'cmpl-r3'
    with openai_client(orjson.dumps(body), 'application/json') as client:
        completion = client.completions.create(model='qwen3-8b', prompt='The capital of France is')
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == (' Paris.', 'stop')
    assert completion.usage is not None and completion.usage.total_tokens == 7


@pytest.mark.parametrize('encoding_format', ['float', 'base64'])
def test_openai_embeddings_body_read_by_the_sdk(encoding_format: str) -> None:
    resp = EmbeddingResponse(model='e5', embeddings=[[0.5, -1.25], [0.125, 2.0]], prompt_tokens=6)
    body = openai_dialect.render_embeddings(resp, model='e5', encoding_format=encoding_format)
    kwargs: dict[str, Any] = {} if encoding_format == 'base64' else {'encoding_format': 'float'}
    with openai_client(orjson.dumps(body), 'application/json') as client:
        result = client.embeddings.create(model='e5', input=['a', 'b'], **kwargs)  # the SDK asks base64 by default
    assert [e.embedding for e in result.data] == [[0.5, -1.25], [0.125, 2.0]]
    assert result.usage.prompt_tokens == 6


def test_anthropic_message_body_read_by_the_sdk() -> None:
    body = anthropic_dialect.render_message(
        ChatResponse(model='m', content='Checking.', reasoning='hmm', finish_reason='tool_calls',
                     tool_calls=[ToolCall('call_1', 'get_weather', '{"city": "Paris"}')], usage=Usage(90, 20)),
        request_id='r4', model='qwen3')
    assert body == {
        'id': 'msg_r4', 'type': 'message', 'role': 'assistant', 'model': 'qwen3',
        'content': [{'type': 'thinking', 'thinking': 'hmm', 'signature': ''},
                    {'type': 'text', 'text': 'Checking.'},
                    {'type': 'tool_use', 'id': 'call_1', 'name': 'get_weather', 'input': {'city': 'Paris'}}],
        'stop_reason': 'tool_use', 'stop_sequence': None,
        'usage': {'input_tokens': 90, 'output_tokens': 20,
                  'cache_creation_input_tokens': 0, 'cache_read_input_tokens': 0},
    }
    with anthropic_client(orjson.dumps(body), 'application/json') as client:
        message = client.messages.create(model='qwen3', max_tokens=50, messages=[{'role': 'user', 'content': 'hi'}])
    assert [b.type for b in message.content] == ['thinking', 'text', 'tool_use']
    assert message.stop_reason == 'tool_use'


@pytest.mark.parametrize(('resp', 'stop_reason', 'stop_sequence', 'content'), [
    (ChatResponse(model='m'), 'end_turn', None, [{'type': 'text', 'text': ''}]),
    (ChatResponse(model='m', content='x', finish_reason='length'), 'max_tokens', None, [{'type': 'text', 'text': 'x'}]),
    (ChatResponse(model='m', content='x', stop_sequence='###'), 'stop_sequence', '###',
     [{'type': 'text', 'text': 'x'}]),
])
def test_anthropic_stop_reasons(resp: ChatResponse, stop_reason: str, stop_sequence: str | None,
                                content: list[dict[str, str]]) -> None:
    body = anthropic_dialect.render_message(resp, request_id='msg_x', model='m')
    assert (body['id'], body['stop_reason'], body['stop_sequence'], body['content']) == (
        'msg_x', stop_reason, stop_sequence, content)


def test_ollama_chat_and_generate_bodies_read_by_the_client() -> None:
    timings = OllamaTimings(total_duration=500, load_duration=100, prompt_eval_duration=200, eval_duration=200)
    body = ollama_dialect.render_chat(vllm_engine.parse_chat_response(VLLM_CHAT), model='qwen3:8b',
                                      created=1760000000.5, timings=timings)
    assert body == {
        'model': 'qwen3:8b', 'created_at': '2025-10-09T08:53:20.500000000Z',
        'message': {'role': 'assistant', 'content': 'Paris.', 'thinking': 'Capital of France.'},
        'done': True, 'done_reason': 'stop', 'total_duration': 500, 'load_duration': 100, 'prompt_eval_count': 10,
        'prompt_eval_duration': 200, 'eval_count': 5, 'eval_duration': 200,
    }
    with ollama_client(orjson.dumps(body), 'application/json') as client:
        answer = client.chat(model='qwen3:8b', messages=[{'role': 'user', 'content': 'hi'}], stream=False)
    assert (answer.message.content, answer.message.thinking, answer.eval_count) == ('Paris.', 'Capital of France.', 5)

    body = ollama_dialect.render_chat(TOOL_ANSWER, model='qwen3:8b', created=1760000000.5)
    assert body['message']['tool_calls'] == [
        {'id': 'chatcmpl-tool-1', 'function': {'index': 0, 'name': 'get_weather', 'arguments': {'city': 'Paris'}}}]
    assert body['done_reason'] == 'stop'
    with ollama_client(orjson.dumps(body), 'application/json') as client:
        answer = client.chat(model='qwen3:8b', messages=[{'role': 'user', 'content': 'hi'}], stream=False)
    assert answer.message.tool_calls is not None
    assert answer.message.tool_calls[0].function.arguments == {'city': 'Paris'}

    body = ollama_dialect.render_generate(vllm_engine.parse_chat_response(VLLM_COMPLETION), model='qwen3:8b',
                                          created=1760000000.5)
    assert (body['response'], body['done'], body['done_reason'], body['eval_count']) == (' Paris.', True, 'stop', 3)
    assert 'message' not in body
    with ollama_client(orjson.dumps(body), 'application/json') as client:
        generated = client.generate(model='qwen3:8b', prompt='The capital', stream=False)
    assert generated.response == ' Paris.'


def test_ollama_embed_bodies() -> None:
    resp = EmbeddingResponse(model='e5', embeddings=[[0.5, 0.25], [1.0, 0.0]], prompt_tokens=4)
    body = ollama_dialect.render_embed(resp, model='e5', timings=OllamaTimings(total_duration=9, load_duration=1))
    assert body == {'model': 'e5', 'embeddings': [[0.5, 0.25], [1.0, 0.0]], 'total_duration': 9,
                    'load_duration': 1, 'prompt_eval_count': 4}
    ollama.EmbedResponse.model_validate(body)
    with ollama_client(orjson.dumps(body), 'application/json') as client:
        assert client.embed(model='e5', input=['a', 'b']).embeddings == [[0.5, 0.25], [1.0, 0.0]]
    legacy = ollama_dialect.render_embeddings(EmbeddingResponse(model='e5', embeddings=[[0.5]]))
    assert legacy == {'embedding': [0.5]}
    with ollama_client(orjson.dumps(legacy), 'application/json') as client:
        assert math.isclose(client.embeddings(model='e5', prompt='a').embedding[0], 0.5)


def test_answers_of_an_unexpected_shape_raise_an_engine_error() -> None:
    with pytest.raises(EngineResponseError, match='unexpected shape'):
        vllm_engine.parse_chat_response({'choices': [{'message': {'tool_calls': [5]}}]})
    with pytest.raises(EngineResponseError, match='unexpected shape'):
        vllm_engine.parse_embed_response({'data': [{'index': 0}]}, 'e5')
    with pytest.raises(EngineResponseError):
        ollama_engine.parse_chat_response({'done': True})
