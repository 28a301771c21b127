"""Tool calling on the wire: parallel calls (one per city), tool_choice (vLLM), tool results, both engines."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sim import SimServer, expected_text
from sim.tools import argument_fragments, cities_in
from tests.sim.conftest import VLLM_CHAT_MODEL
from tests.sim.wire import deltas, ndjson_lines, sse_chunks, stream

TOOLS = [
    {'type': 'function', 'function': {'name': 'get_weather', 'parameters': {'type': 'object'}}},
    {'type': 'function', 'function': {'name': 'get_time', 'parameters': {'type': 'object'}}},
]
ASK = 'What is the weather in Tokyo, then paris? And TOKYO again, and London.'
CITIES = ['Tokyo', 'Paris', 'London']  # in order of first mention, each once
VLLM_TOOL_ID = re.compile(r'^chatcmpl-tool-[0-9a-f]{32}$')


@pytest.fixture
async def vllm_http(vllm: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=vllm.url) as c:
        yield c


@pytest.fixture
async def ollama_http(ollama: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ollama.url) as c:
        yield c


def chat(content: str = ASK, **extra: Any) -> dict[str, Any]:
    return {'model': VLLM_CHAT_MODEL, 'messages': [{'role': 'user', 'content': content}], 'tools': TOOLS, **extra}


def test_cities_rule() -> None:
    assert cities_in(ASK) == CITIES
    assert cities_in('Berlin; parisian; LONDONER; berlin') == ['Berlin']  # whole words only
    assert cities_in('no city') == []
    for arguments in ('{"location": "Paris"}', '{}'):
        pieces = argument_fragments(arguments)
        assert len(pieces) >= 2 and ''.join(pieces) == arguments


# -- vLLM -----------------------------------------------------------------------------------------------------------
async def test_vllm_parallel_calls(vllm_http: httpx.AsyncClient) -> None:
    body = (await vllm_http.post('/v1/chat/completions', json=chat())).json()
    choice = body['choices'][0]
    assert choice['finish_reason'] == 'tool_calls'
    message = choice['message']
    assert message['content'] is None and message['reasoning'] is None
    calls = message['tool_calls']
    assert all(VLLM_TOOL_ID.match(c['id']) for c in calls) and len({c['id'] for c in calls}) == 3
    assert [{**c, 'id': 'ID'} for c in calls] == [
        {
            'id': 'ID',
            'type': 'function',
            'function': {'name': 'get_weather', 'arguments': json.dumps({'location': city})},
        }
        for city in CITIES
    ]
    assert body['usage']['completion_tokens'] == 30  # TOOL_CALL_TOKENS per call


async def test_vllm_parallel_calls_stream_chunk_by_chunk(vllm_http: httpx.AsyncClient) -> None:
    raw = await stream(vllm_http, '/v1/chat/completions', chat(stream=True, stream_options={'include_usage': True}))
    chunks = sse_chunks(raw)
    got = deltas(chunks)
    ids = [d['tool_calls'][0].pop('id') for d in got if 'tool_calls' in d and 'id' in d['tool_calls'][0]]
    assert len(ids) == 3 and all(VLLM_TOOL_ID.match(i) for i in ids) and len(set(ids)) == 3
    expected: list[dict[str, Any]] = [{'role': 'assistant', 'content': ''}]
    for k, city in enumerate(CITIES):
        expected.append({'tool_calls': [{'type': 'function', 'index': k, 'function': {'name': 'get_weather'}}]})
        expected += [
            {'tool_calls': [{'index': k, 'function': {'arguments': part}}]}
            for part in ('{', '"location"', ': ', f'"{city}"', '}')
        ]
    expected.append({})
    assert got == expected
    finishes = [c['choices'][0]['finish_reason'] for c in chunks if c['choices']]
    assert finishes == [None] * (len(expected) - 1) + ['tool_calls']
    assert chunks[-1]['choices'] == [] and chunks[-1]['usage']['completion_tokens'] == 30


async def test_vllm_no_city_means_paris(vllm_http: httpx.AsyncClient) -> None:
    body = (await vllm_http.post('/v1/chat/completions', json=chat('How is the weather?'))).json()
    calls = body['choices'][0]['message']['tool_calls']
    assert [json.loads(c['function']['arguments']) for c in calls] == [{'location': 'Paris'}]


async def test_vllm_tool_choice_none_answers_in_text(vllm_http: httpx.AsyncClient) -> None:
    body = (await vllm_http.post('/v1/chat/completions', json=chat(tool_choice='none'))).json()
    choice = body['choices'][0]
    assert choice['finish_reason'] == 'stop' and 'tool_calls' not in choice['message']
    assert choice['message']['content'] == expected_text(ASK, 6)


async def test_vllm_tool_choice_required_and_named(vllm_http: httpx.AsyncClient) -> None:
    # required: the first tool, without the trigger word; content "" and finish_reason tool_calls.
    body = (await vllm_http.post('/v1/chat/completions', json=chat('Hello in Berlin', tool_choice='required'))).json()
    choice = body['choices'][0]
    assert choice['finish_reason'] == 'tool_calls' and choice['message']['content'] == ''
    assert [(c['function']['name'], c['function']['arguments']) for c in choice['message']['tool_calls']] == [
        ('get_weather', '{"location": "Berlin"}')
    ]
    # named: that tool; vLLM (like OpenAI) keeps finish_reason "stop" for a named choice.
    named = {'type': 'function', 'function': {'name': 'get_time'}}
    body = (await vllm_http.post('/v1/chat/completions', json=chat('Hello', tool_choice=named))).json()
    choice = body['choices'][0]
    assert choice['finish_reason'] == 'stop' and choice['message']['content'] == ''
    assert [(c['function']['name'], c['function']['arguments']) for c in choice['message']['tool_calls']] == [
        ('get_time', '{"location": "Paris"}')
    ]
    # Streamed: the same chunk sequence as an auto call.
    raw = await stream(vllm_http, '/v1/chat/completions', chat('Hello', tool_choice=named, stream=True))
    got = deltas(sse_chunks(raw))
    assert got[1]['tool_calls'][0]['function'] == {'name': 'get_time'}
    assert ''.join(d['tool_calls'][0]['function'].get('arguments', '') for d in got[2:-1]) == '{"location": "Paris"}'
    assert sse_chunks(raw)[-1]['choices'][0]['finish_reason'] == 'stop'


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        (
            {'tool_choice': {'type': 'function', 'function': {'name': 'nope'}}},
            'The tool specified in `tool_choice` does not match any of the specified `tools`',
        ),
        ({'tool_choice': 'sometimes'}, 'Invalid value for `tool_choice`: sometimes!'),
        ({'tool_choice': {'type': 'function', 'function': {}}}, 'Expected field `name` in `function`'),
    ],
)
async def test_vllm_bad_tool_choice(vllm_http: httpx.AsyncClient, extra: dict[str, Any], message: str) -> None:
    r = await vllm_http.post('/v1/chat/completions', json=chat(**extra))
    assert r.status_code == 400
    error = r.json()['error']
    assert set(error) == {'message', 'type', 'param', 'code'} and error['code'] == 400
    assert message in error['message']


async def test_vllm_tool_choice_needs_tools(vllm_http: httpx.AsyncClient) -> None:
    body = {'model': VLLM_CHAT_MODEL, 'messages': [{'role': 'user', 'content': 'hi'}], 'tool_choice': 'required'}
    r = await vllm_http.post('/v1/chat/completions', json=body)
    assert r.status_code == 400 and r.json()['error']['message'] == 'When using `tool_choice`, `tools` must be set.'


async def test_vllm_tool_result_gets_a_text_answer(vllm_http: httpx.AsyncClient) -> None:
    messages = [
        {'role': 'user', 'content': ASK},
        {
            'role': 'assistant',
            'content': None,
            'tool_calls': [
                {
                    'id': 'chatcmpl-tool-1',
                    'type': 'function',
                    'function': {'name': 'get_weather', 'arguments': '{"location": "Tokyo"}'},
                }
            ],
        },
        {'role': 'tool', 'tool_call_id': 'chatcmpl-tool-1', 'content': 'Sunny, 21 degrees'},
    ]
    body = {'model': VLLM_CHAT_MODEL, 'messages': messages, 'tools': TOOLS}
    choice = (await vllm_http.post('/v1/chat/completions', json=body)).json()['choices'][0]
    assert choice['finish_reason'] == 'stop' and 'tool_calls' not in choice['message']
    assert choice['message']['content'] == expected_text('Sunny, 21 degrees', 6)


# -- Ollama ---------------------------------------------------------------------------------------------------------
def ollama_chat(content: str = ASK, **extra: Any) -> dict[str, Any]:
    return {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': content}], 'tools': TOOLS[:1], **extra}


OLLAMA_CALLS = [
    {'function': {'index': k, 'name': 'get_weather', 'arguments': {'location': city}}} for k, city in enumerate(CITIES)
]


async def test_ollama_parallel_calls(ollama_http: httpx.AsyncClient) -> None:
    body = (await ollama_http.post('/api/chat', json=ollama_chat(stream=False))).json()
    assert body['message'] == {'role': 'assistant', 'content': '', 'tool_calls': OLLAMA_CALLS}  # no id in 0.12.0
    assert body['done'] is True and body['done_reason'] == 'stop' and body['eval_count'] == 30


async def test_ollama_parallel_calls_stream_in_one_chunk(ollama_http: httpx.AsyncClient) -> None:
    lines = ndjson_lines(await stream(ollama_http, '/api/chat', ollama_chat()))
    assert len(lines) == 2
    assert set(lines[0]) == {'model', 'created_at', 'message', 'done'} and lines[0]['done'] is False
    assert lines[0]['message'] == {'role': 'assistant', 'content': '', 'tool_calls': OLLAMA_CALLS}
    final = lines[1]
    assert final['done'] is True and final['done_reason'] == 'stop'
    assert final['message'] == {'role': 'assistant', 'content': ''} and final['eval_count'] == 30


async def test_ollama_ignores_tool_choice(ollama_http: httpx.AsyncClient) -> None:
    body = (await ollama_http.post('/api/chat', json=ollama_chat(stream=False, tool_choice='none'))).json()
    assert body['message']['tool_calls'] == OLLAMA_CALLS


async def test_ollama_tool_call_ids_from_0_12_10(ollama: SimServer, ollama_http: httpx.AsyncClient) -> None:
    ollama.config.version = '0.12.10'
    body = (await ollama_http.post('/api/chat', json=ollama_chat(stream=False))).json()
    calls = body['message']['tool_calls']
    assert all(re.fullmatch(r'call_[a-z0-9]{8}', c['id']) for c in calls)
    assert [c['function'] for c in calls] == [c['function'] for c in OLLAMA_CALLS]


async def test_ollama_tool_result_gets_a_text_answer(ollama_http: httpx.AsyncClient) -> None:
    messages = [
        {'role': 'user', 'content': ASK},
        {'role': 'assistant', 'content': '', 'tool_calls': OLLAMA_CALLS[:1]},
        {'role': 'tool', 'tool_name': 'get_weather', 'content': 'Rain in Tokyo'},
    ]
    body = {'model': 'llama3.2', 'messages': messages, 'tools': TOOLS[:1], 'stream': False}
    answer = (await ollama_http.post('/api/chat', json=body)).json()
    assert 'tool_calls' not in answer['message']
    assert answer['message']['content'] == expected_text('Rain in Tokyo', 6) and answer['done_reason'] == 'stop'
