"""The Responses API (/v1/responses) driven by the official openai client, in-process, against both simulated
engines: whole and streamed answers, tools, reasoning, stored responses and chaining, and bad input refused in
OpenAI's error envelope before any engine sees it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from core.accounts import service as accounts
from core.models import StoredResponse
from sim.config import SimConfig
from sim.server import SimServer
from sim.text import expected_text, expected_thinking
from tests.e2e.images import PNG_BASE64

TOKENS = 6
CHAT = {'ollama': 'llama3.2', 'vllm': 'meta-llama/Llama-3.2-1B-Instruct'}
THINKER = {'ollama': 'qwen3:0.6b', 'vllm': 'Qwen/Qwen3-8B'}
WEATHER = {'type': 'function', 'name': 'get_weather', 'description': 'The weather in a city',
           'parameters': {'type': 'object', 'properties': {'location': {'type': 'string'}}, 'required': ['location']}}
ENGINES = pytest.mark.parametrize('engine', ['ollama', 'vllm'])


@pytest.fixture
async def engine_sims(admin: httpx.AsyncClient) -> AsyncIterator[dict[str, SimServer]]:
    models = {'ollama': ['llama3.2:latest', 'qwen3:0.6b', 'llava:7b'],
              'vllm': ['meta-llama/Llama-3.2-1B-Instruct', 'Qwen/Qwen3-8B', 'Qwen/Qwen2.5-VL-7B-Instruct']}
    async with SimServer('ollama', SimConfig(tokens=TOKENS, models=models['ollama'])) as o, \
            SimServer('vllm', SimConfig(tokens=TOKENS, models=models['vllm'])) as v:
        for name, sim in (('ollama', o), ('vllm', v)):
            response = await admin.post('/api/admin/backends/register',
                                        json={'name': name, 'url': sim.url, 'engine': name})
            assert response.status_code in (200, 201), response.text
        yield {'ollama': o, 'vllm': v}


@pytest.fixture
async def sdk(app: FastAPI, admin: httpx.AsyncClient, engine_sims: dict[str, SimServer]
              ) -> AsyncIterator[openai.AsyncOpenAI]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://mindrouter.test')
    async with openai.AsyncOpenAI(api_key=admin.headers['x-api-key'], base_url='http://mindrouter.test/v1',
                                  http_client=http, max_retries=0) as client:
        yield client


async def _other_user_sdk(app: FastAPI, database: Any) -> openai.AsyncOpenAI:
    async with database.session() as session:
        await accounts.create_user(session, username='mallory', role='student')
        _, key = await accounts.create_api_key(session, username='mallory')
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://mindrouter.test')
    return openai.AsyncOpenAI(api_key=key, base_url='http://mindrouter.test/v1', http_client=http, max_retries=0)


@ENGINES
async def test_text_whole_and_streamed(sdk: openai.AsyncOpenAI, engine: str) -> None:
    whole = await sdk.responses.create(model=CHAT[engine], input='Tell me about rivers', instructions='Be brief.',
                                       metadata={'case': 'text'}, temperature=0.2, max_output_tokens=50)
    assert whole.status == 'completed' and whole.object == 'response'
    assert whole.output_text == expected_text('Tell me about rivers', TOKENS)
    assert whole.output[0].type == 'message' and whole.output[0].content[0].type == 'output_text'
    assert whole.usage is not None and whole.usage.output_tokens == TOKENS and whole.usage.input_tokens > 0
    assert whole.metadata == {'case': 'text'} and whole.instructions == 'Be brief.'

    async with sdk.responses.stream(model=CHAT[engine], input='Tell me about rivers') as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ['response.created', 'response.in_progress'] and kinds[-1] == 'response.completed'
    assert [e.sequence_number for e in events] == list(range(len(events)))
    for kind in ('response.output_item.added', 'response.content_part.added', 'response.output_text.delta',
                 'response.output_text.done', 'response.content_part.done', 'response.output_item.done'):
        assert kind in kinds
    assert ''.join(e.delta for e in events if e.type == 'response.output_text.delta') == whole.output_text
    assert final.output_text == whole.output_text and final.usage is not None and final.usage.output_tokens == TOKENS


@ENGINES
@pytest.mark.parametrize('stream', [False, True], ids=['whole', 'stream'])
async def test_a_tool_round_trip(sdk: openai.AsyncOpenAI, engine: str, stream: bool) -> None:
    first = await _create(sdk, stream, model=CHAT[engine], input='What is the weather in Paris and Tokyo?',
                          tools=[WEATHER], store=False)
    calls = [item for item in first.output if item.type == 'function_call']
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ('get_weather', {'location': 'Paris'}), ('get_weather', {'location': 'Tokyo'})]
    assert len({c.call_id for c in calls}) == 2
    history: list[Any] = [{'role': 'user', 'content': 'What is the weather in Paris and Tokyo?'}]
    history += [c.model_dump(exclude_none=True) for c in calls]
    history += [{'type': 'function_call_output', 'call_id': c.call_id, 'output': f'{n} degrees'}
                for n, c in enumerate(calls)]
    second = await _create(sdk, stream, model=CHAT[engine], input=history, tools=[WEATHER], store=False)
    assert second.output_text == expected_text('1 degrees', TOKENS)  # seeded by the last tool result


@ENGINES
@pytest.mark.parametrize('stream', [False, True], ids=['whole', 'stream'])
async def test_reasoning_is_an_output_item_with_a_summary(sdk: openai.AsyncOpenAI, engine: str, stream: bool
                                                          ) -> None:
    answer = await _create(sdk, stream, model=THINKER[engine], input='Why is the sky blue?',
                           reasoning={'effort': 'medium'})
    assert [item.type for item in answer.output] == ['reasoning', 'message']
    assert answer.output[0].summary[0].text == expected_thinking('Why is the sky blue?', 8)
    assert answer.output_text == expected_text('Why is the sky blue?', TOKENS)
    assert answer.usage is not None and 0 < answer.usage.output_tokens_details.reasoning_tokens < \
        answer.usage.output_tokens
    plain = await _create(sdk, stream, model=THINKER[engine], input='Why is the sky blue?',
                          reasoning={'effort': 'none'})
    assert [item.type for item in plain.output] == ['message']


@ENGINES
async def test_json_schema_and_images(sdk: openai.AsyncOpenAI, engine: str) -> None:
    schema = {'type': 'object', 'properties': {'city': {'type': 'string'}}, 'required': ['city'],
              'additionalProperties': False}
    answer = await sdk.responses.create(model=CHAT[engine], input='A city, please',
                                        text={'format': {'type': 'json_schema', 'name': 'city', 'schema': schema,
                                                         'strict': True}})
    assert set(json.loads(answer.output_text)) == {'city'}
    vision = {'ollama': 'llava:7b', 'vllm': 'Qwen/Qwen2.5-VL-7B-Instruct'}[engine]
    seen = await sdk.responses.create(model=vision, input=[{'role': 'user', 'content': [
        {'type': 'input_text', 'text': 'What is this?'},
        {'type': 'input_image', 'image_url': f'data:image/png;base64,{PNG_BASE64}'}]}])
    assert seen.output_text == expected_text('What is this?\n[images: 1]', TOKENS)


@ENGINES
async def test_stored_responses_chain_and_belong_to_their_owner(sdk: openai.AsyncOpenAI, engine: str, app: FastAPI,
                                                                database: Any) -> None:
    first = await sdk.responses.create(model=CHAT[engine], input='Remember the word blue')
    async with sdk.responses.stream(model=CHAT[engine], input='What word?', previous_response_id=first.id) as s:
        second = await s.get_final_response()
    assert second.previous_response_id == first.id
    assert second.output_text == expected_text('What word?', TOKENS)
    # the chained turn reached the engine with the first turn's question and answer before it
    assert (await sdk.responses.retrieve(first.id)).output_text == first.output_text
    items = await sdk.responses.input_items.list(second.id, order='asc')
    assert [i.type for i in items.data] == ['message'] and items.data[0].content[0].text == 'What word?'

    mallory = await _other_user_sdk(app, database)
    async with mallory:
        with pytest.raises(openai.NotFoundError) as refused:
            await mallory.responses.retrieve(first.id)
        assert refused.value.body['code'] == 'not_found'  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            await mallory.responses.create(model=CHAT[engine], input='hi', previous_response_id=first.id)
        with pytest.raises(openai.NotFoundError):
            await mallory.responses.delete(first.id)

    await sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(first.id)
    unstored = await sdk.responses.create(model=CHAT[engine], input='hi', store=False)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(unstored.id)


async def test_chained_turns_send_the_whole_conversation(sdk: openai.AsyncOpenAI,
                                                         engine_sims: dict[str, SimServer]) -> None:
    first = await sdk.responses.create(model=CHAT['vllm'], input='What is the weather in Berlin?', tools=[WEATHER])
    call = first.output[0]
    assert call.type == 'function_call'
    before = engine_sims['vllm'].stats.requests_total
    answer = await sdk.responses.create(model=CHAT['vllm'], previous_response_id=first.id, tools=[WEATHER],
                                        input=[{'type': 'function_call_output', 'call_id': call.call_id,
                                                'output': 'sunny'}])
    assert answer.output_text == expected_text('sunny', TOKENS)  # the call id was known from the stored turn
    assert engine_sims['vllm'].stats.requests_total == before + 1


@pytest.mark.parametrize(('body', 'status', 'param'), [
    ({'input': [{'type': 'computer_call_output', 'call_id': 'x'}]}, 400, 'input[0].type'),
    ({'input': [{'type': 'function_call_output', 'call_id': 'nope', 'output': '1'}]}, 400, 'input[0].call_id'),
    ({'input': [{'role': 'user', 'content': [{'type': 'input_file', 'file_id': 'f'}]}]}, 400,
     'input[0].content[0].type'),
    ({'input': 'hi', 'previous_response_id': 'resp_unknown'}, 404, 'previous_response_id'),
    ({'input': 'hi', 'reasoning': {'effort': 'enormous'}}, 400, 'reasoning.effort'),
    ({}, 400, 'input'),
])
async def test_bad_input_is_refused_before_any_engine_sees_it(sdk: openai.AsyncOpenAI, admin: httpx.AsyncClient,
                                                              engine_sims: dict[str, SimServer],
                                                              body: dict[str, Any], status: int, param: str) -> None:
    response = await admin.post('/v1/responses', json={'model': CHAT['ollama'], **body})
    assert response.status_code == status, response.text
    error = response.json()['error']
    assert set(error) == {'message', 'type', 'param', 'code'} and error['param'] == param
    assert all(sim.stats.requests_total == 0 for sim in engine_sims.values())


async def test_every_response_carries_the_gateway_headers(admin: httpx.AsyncClient,
                                                          engine_sims: dict[str, SimServer]) -> None:
    for stream in (False, True):
        response = await admin.post('/v1/responses', json={'model': CHAT['ollama'], 'input': 'hi', 'stream': stream})
        assert response.status_code == 200
        for header in ('X-Request-ID', 'X-MindRouter-Backend', 'X-MindRouter-Queue-Ms', 'X-MindRouter-Overhead-Ms'):
            assert header in response.headers
        if stream:
            assert response.headers['content-type'].startswith('text/event-stream')
            assert response.headers['x-accel-buffering'] == 'no'  # a buffering proxy (nginx) passes tokens on at once
            assert response.text.startswith('event: response.created\ndata: ')


async def test_an_engine_dying_mid_stream_fails_the_response(sdk: openai.AsyncOpenAI,
                                                             engine_sims: dict[str, SimServer]) -> None:
    engine_sims['ollama'].config.fault = 'die_mid_stream'  # after a few tokens
    kinds: list[str] = []
    stream = await sdk.responses.create(model=CHAT['ollama'], input='hi', stream=True)
    async for event in stream:
        kinds.append(event.type)
    assert kinds[-2:] == ['error', 'response.failed']
    assert 'response.completed' not in kinds


async def _create(sdk: openai.AsyncOpenAI, stream: bool, **kwargs: Any) -> Any:
    if not stream:
        return await sdk.responses.create(**kwargs)
    async with sdk.responses.stream(**kwargs) as events:
        return await events.get_final_response()


async def test_keys_and_limits_hold_before_any_engine_sees_the_request(admin: httpx.AsyncClient, alice_key: str,
                                                                       engine_sims: dict[str, SimServer]) -> None:
    body = {'model': CHAT['ollama'], 'input': 'hi'}
    anonymous = await admin.post('/v1/responses', json=body, headers={'X-API-Key': 'mr-not-a-key'})
    assert anonymous.status_code == 401 and anonymous.json()['error']['type'] == 'authentication_error'
    await admin.put('/api/admin/users/alice/quota', json={'rpm_limit': 1})
    first = await admin.post('/v1/responses', json=body, headers={'X-API-Key': alice_key})
    assert first.status_code == 200
    second = await admin.post('/v1/responses', json={**body, 'stream': True}, headers={'X-API-Key': alice_key})
    assert second.status_code == 429 and 'Retry-After' in second.headers
    assert second.json()['error']['type'] == 'rate_limit_error'
    assert engine_sims['ollama'].stats.requests_total == 1


async def test_the_audit_trail_has_a_row_per_response(admin: httpx.AsyncClient, app: FastAPI,
                                                      engine_sims: dict[str, SimServer]) -> None:
    for stream in (False, True):
        assert (await admin.post('/v1/responses', json={'model': CHAT['vllm'], 'input': 'audit me',
                                                        'stream': stream})).status_code == 200
    await app.state.audit.flush()
    rows = (await admin.get('/api/admin/audit', params={'endpoint': '/v1/responses'})).json()
    entries = rows['rows']
    assert sorted(r['stream'] for r in entries if r['endpoint'] == '/v1/responses') == [False, True]


async def test_stored_responses_are_written_off_the_request_path_and_pruned(sdk: openai.AsyncOpenAI, app: FastAPI,
                                                                           database: Any) -> None:
    store = app.state.responses
    kept = await sdk.responses.create(model=CHAT['ollama'], input='keep me')
    await store.flush()
    async with database.session() as session:
        row = await session.get(StoredResponse, kept.id)
    assert row is not None and json.loads(row.response)['id'] == kept.id
    assert (await sdk.responses.retrieve(kept.id)).output_text == kept.output_text  # read back from the table
    assert await store.prune(timedelta(days=1)) == 0
    assert await store.prune(timedelta(0)) == 1
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(kept.id)


@pytest.mark.parametrize('stream', [False, True], ids=['whole', 'stream'])
async def test_a_backend_failing_before_the_first_byte_is_replaced(admin: httpx.AsyncClient, stream: bool) -> None:
    async with SimServer('ollama', SimConfig(tokens=TOKENS)) as broken, \
            SimServer('ollama', SimConfig(tokens=TOKENS)) as fine:
        for name, engine in (('broken', broken), ('fine', fine)):
            await admin.post('/api/admin/backends/register', json={'name': name, 'url': engine.url, 'engine': 'ollama'})
        broken.config.fault = 'error_500'
        for _ in range(4):  # at least one meets the broken backend first, and is served by the other
            answered = await admin.post('/v1/responses', json={'model': 'llama3.2', 'input': 'hi', 'stream': stream,
                                                               'store': False})
            assert answered.status_code == 200 and answered.headers['x-mindrouter-backend'] == 'fine'
            assert expected_text('hi', TOKENS) in answered.text
        assert broken.stats.requests_total >= 1 and fine.stats.requests_total == 4
