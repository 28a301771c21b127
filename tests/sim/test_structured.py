"""Structured output on the wire: schema-valid JSON (checked with jsonschema), json_object, streaming in pieces,
vLLM's errors, and the schema_violation knob."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest

from sim import SimServer, expected_text
from sim.structured import JSON_PIECE_CHARS, schema_document, violating_document
from tests.sim.conftest import VLLM_CHAT_MODEL
from tests.sim.wire import deltas, ndjson_lines, sse_chunks, stream

PROMPT = 'Describe a person'
MESSAGES = [{'role': 'user', 'content': PROMPT}]
# What pydantic writes for `class Person(BaseModel): name: str; age: int; address: Address; tags: list[Tag]`.
PERSON = {
    '$defs': {
        'Address': {
            'properties': {'city': {'type': 'string', 'minLength': 12}, 'zip': {'type': 'string', 'maxLength': 5}},
            'required': ['city', 'zip'],
            'title': 'Address',
            'type': 'object',
        },
        'Tag': {'enum': ['red', 'green'], 'title': 'Tag', 'type': 'string'},
    },
    'properties': {
        'name': {'title': 'Name', 'type': 'string'},
        'age': {'minimum': 18, 'maximum': 99, 'title': 'Age', 'type': 'integer'},
        'score': {'exclusiveMinimum': 0, 'type': 'number'},
        'address': {'$ref': '#/$defs/Address'},
        'tags': {'items': {'$ref': '#/$defs/Tag'}, 'minItems': 2, 'title': 'Tags', 'type': 'array'},
        'nickname': {'anyOf': [{'type': 'string'}, {'type': 'null'}], 'default': None},
        'active': {'type': 'boolean'},
    },
    'required': ['name', 'age', 'address', 'tags'],
    'title': 'Person',
    'type': 'object',
}
SCHEMAS: list[dict[str, Any]] = [
    PERSON,
    {'type': 'array', 'items': {'type': 'integer', 'multipleOf': 5, 'minimum': 3}, 'minItems': 3, 'uniqueItems': True},
    {
        'definitions': {
            'Node': {
                'type': 'object',
                'properties': {'value': {'type': 'integer'}, 'next': {'anyOf': [{'$ref': '#/definitions/Node'}, {}]}},
                'required': ['value', 'next'],
            }
        },
        '$ref': '#/definitions/Node',
    },
    {'allOf': [{'type': 'object', 'properties': {'a': {'const': 1}}, 'required': ['a']}, {'required': ['b']}]},
    {'oneOf': [{'type': 'string', 'format': 'email'}, {'type': 'integer'}]},
    {'type': ['null', 'number'], 'maximum': -3},
    {'type': 'object', 'properties': {'when': {'type': 'string', 'format': 'date-time'}}, 'minProperties': 2},
]


@pytest.mark.parametrize('schema', SCHEMAS)
def test_documents_validate_and_violations_do_not(schema: dict[str, Any]) -> None:
    jsonschema.validate(schema_document(schema, 'seed'), schema)
    assert schema_document(schema, 'seed') == schema_document(schema, 'seed')  # deterministic
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(violating_document(schema, 'seed'), schema)


@pytest.fixture
async def http(vllm: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=vllm.url) as c:
        yield c


def schema_format(schema: dict[str, Any] = PERSON) -> dict[str, Any]:
    return {'type': 'json_schema', 'json_schema': {'name': 'person', 'schema': schema, 'strict': True}}


def vllm_chat(**extra: Any) -> dict[str, Any]:
    return {'model': VLLM_CHAT_MODEL, 'messages': MESSAGES, **extra}


# -- vLLM -----------------------------------------------------------------------------------------------------------
async def test_vllm_json_schema(http: httpx.AsyncClient) -> None:
    body = (await http.post('/v1/chat/completions', json=vllm_chat(response_format=schema_format()))).json()
    content = body['choices'][0]['message']['content']
    document = json.loads(content)
    jsonschema.validate(document, PERSON)
    assert document == schema_document(PERSON, PROMPT)
    assert len(document['address']['city']) >= 12 and document['tags'] == ['red', 'green']
    assert body['choices'][0]['finish_reason'] == 'stop'
    pieces = -(-len(content) // JSON_PIECE_CHARS)
    assert body['usage']['completion_tokens'] == pieces


async def test_vllm_json_schema_streams_in_pieces(http: httpx.AsyncClient) -> None:
    plain = (await http.post('/v1/chat/completions', json=vllm_chat(response_format=schema_format()))).json()
    content = plain['choices'][0]['message']['content']
    extra = {'response_format': schema_format(), 'stream': True, 'stream_options': {'include_usage': True}}
    chunks = sse_chunks(await stream(http, '/v1/chat/completions', vllm_chat(**extra)))
    texts = [d['content'] for d in deltas(chunks)[1:] if d.get('content')]
    assert texts == [content[i : i + JSON_PIECE_CHARS] for i in range(0, len(content), JSON_PIECE_CHARS)]
    assert len(texts) > 3 and chunks[-1]['usage']['completion_tokens'] == len(texts)


async def test_vllm_json_object(http: httpx.AsyncClient) -> None:
    body = (await http.post('/v1/chat/completions', json=vllm_chat(response_format={'type': 'json_object'}))).json()
    assert json.loads(body['choices'][0]['message']['content']) == {'answer': expected_text(PROMPT, 6)}


async def test_vllm_structured_outputs(http: httpx.AsyncClient) -> None:
    schema = {'type': 'object', 'properties': {'n': {'type': 'integer', 'minimum': 4}}, 'required': ['n']}
    body = (await http.post('/v1/chat/completions', json=vllm_chat(structured_outputs={'json': schema}))).json()
    assert json.loads(body['choices'][0]['message']['content']) == {'n': 4}
    extra = {'structured_outputs': {'choice': ['yes', 'no']}}
    body = (await http.post('/v1/chat/completions', json=vllm_chat(**extra))).json()
    assert body['choices'][0]['message']['content'] == 'yes'
    r = await http.post('/v1/chat/completions', json=vllm_chat(structured_outputs={'json': schema, 'regex': 'a+'}))
    assert r.status_code == 400 and 'only use one kind' in r.json()['error']['message']


async def test_vllm_schema_errors(http: httpx.AsyncClient) -> None:
    r = await http.post('/v1/chat/completions', json=vllm_chat(response_format={'type': 'json_schema'}))
    error = r.json()['error']
    assert r.status_code == 400 and error['param'] == 'response_format' and error['code'] == 400
    assert "the 'json_schema' field must be provided" in error['message']
    no_schema = {'type': 'json_schema', 'json_schema': {'name': 'x'}}
    r = await http.post('/v1/chat/completions', json=vllm_chat(response_format=no_schema))
    assert r.status_code == 400 and 'none are specified' in r.json()['error']['message']


async def test_vllm_ignores_removed_guided_json(http: httpx.AsyncClient) -> None:
    body = (await http.post('/v1/chat/completions', json=vllm_chat(guided_json=PERSON))).json()
    assert body['choices'][0]['message']['content'] == expected_text(PROMPT, 6)


async def test_vllm_max_tokens_cuts_the_json(http: httpx.AsyncClient) -> None:
    body = (
        await http.post('/v1/chat/completions', json=vllm_chat(response_format=schema_format(), max_tokens=2))
    ).json()
    choice = body['choices'][0]
    assert choice['finish_reason'] == 'length' and len(choice['message']['content']) == 2 * JSON_PIECE_CHARS
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice['message']['content'])


async def test_vllm_schema_violation_knob(http: httpx.AsyncClient) -> None:
    r = await http.post('/_sim/config', json={'schema_violation': True})
    assert r.status_code == 200 and r.json()['schema_violation'] is True
    body = (await http.post('/v1/chat/completions', json=vllm_chat(response_format=schema_format()))).json()
    document = json.loads(body['choices'][0]['message']['content'])
    assert document == {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, PERSON)
    body = (await http.post('/v1/chat/completions', json=vllm_chat(response_format={'type': 'json_object'}))).json()
    assert not isinstance(json.loads(body['choices'][0]['message']['content']), dict)
    assert (await http.post('/_sim/config', json={'schema_violation': 'yes'})).status_code == 400


# -- Ollama ---------------------------------------------------------------------------------------------------------
@pytest.fixture
async def ollama_http(ollama: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ollama.url) as c:
        yield c


def ollama_chat(**extra: Any) -> dict[str, Any]:
    return {'model': 'llama3.2', 'messages': MESSAGES, **extra}


async def test_ollama_format_schema(ollama_http: httpx.AsyncClient) -> None:
    body = (await ollama_http.post('/api/chat', json=ollama_chat(format=PERSON, stream=False))).json()
    content = body['message']['content']
    jsonschema.validate(json.loads(content), PERSON)
    assert body['eval_count'] == -(-len(content) // JSON_PIECE_CHARS)
    lines = ndjson_lines(await stream(ollama_http, '/api/chat', ollama_chat(format=PERSON)))
    pieces = [line['message']['content'] for line in lines[:-1]]
    assert ''.join(pieces) == content and all(len(p) == JSON_PIECE_CHARS for p in pieces[:-1])
    generated = (
        await ollama_http.post(
            '/api/generate', json={'model': 'llama3.2', 'prompt': PROMPT, 'format': PERSON, 'stream': False}
        )
    ).json()
    assert generated['response'] == content


async def test_ollama_format_json(ollama_http: httpx.AsyncClient) -> None:
    body = (await ollama_http.post('/api/chat', json=ollama_chat(format='json', stream=False))).json()
    assert json.loads(body['message']['content']) == {'answer': expected_text(PROMPT, 6)}


async def test_ollama_schema_violation_and_bad_format(ollama: SimServer, ollama_http: httpx.AsyncClient) -> None:
    r = await ollama_http.post('/api/chat', json=ollama_chat(format='xml', stream=False))
    assert r.status_code == 500
    assert r.json() == {'error': 'invalid format: "xml"; expected "json" or a valid JSON Schema object'}
    ollama.config.schema_violation = True
    body = (await ollama_http.post('/api/chat', json=ollama_chat(format=PERSON, stream=False))).json()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(body['message']['content']), PERSON)
