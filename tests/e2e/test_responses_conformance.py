"""The Responses API rows of the conformance matrix (docs/compatibility.md): text, tools, parallel tools,
reasoning, JSON schema, images and chaining x both engines x whole/streamed, driven by the official openai
client's `responses.create` / `responses.stream` against a real `mindrouter serve` process with simulated
engines as real processes. The engines answer deterministically, so every cell asserts exactly what the user
sees."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from sim.text import expected_text, expected_thinking, vision_seed_text
from tests.e2e.cluster import Cluster, running_cluster
from tests.e2e.images import PNG_BASE64, serving_png

TOKENS = 12
THINKING_TOKENS = 8
OLLAMA_MODELS = 'llama3.2,qwen3:0.6b,llava:7b'
VLLM_MODELS = 'meta-llama/Llama-3.2-1B-Instruct,Qwen/Qwen3-8B,Qwen/Qwen2.5-VL-7B-Instruct'
BACKEND = {'ollama': 'sim-ollama', 'vllm': 'sim-vllm'}
CHAT = {'ollama': 'llama3.2', 'vllm': 'meta-llama/Llama-3.2-1B-Instruct'}
THINKER = {'ollama': 'qwen3:0.6b', 'vllm': 'Qwen/Qwen3-8B'}
VISION = {'ollama': 'llava:7b', 'vllm': 'Qwen/Qwen2.5-VL-7B-Instruct'}
WEATHER = {'type': 'function', 'name': 'get_weather', 'description': 'The weather in a city',
           'parameters': {'type': 'object', 'properties': {'location': {'type': 'string'}}, 'required': ['location']}}
CITY_SCHEMA = {'type': 'object', 'properties': {'city': {'type': 'string'}, 'population': {'type': 'integer'}},
               'required': ['city', 'population'], 'additionalProperties': False}

ENGINES = pytest.mark.parametrize('engine', ['ollama', 'vllm'])
STREAMING = pytest.mark.parametrize('stream', [False, True], ids=['whole', 'stream'])


@pytest.fixture(scope='module')
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    engines = {'sim-ollama': ('ollama', ['--models', OLLAMA_MODELS, '--tokens', str(TOKENS)]),
               'sim-vllm': ('vllm', ['--models', VLLM_MODELS, '--tokens', str(TOKENS)])}
    with running_cluster(tmp_path_factory.mktemp('responses'), engines,
                         settings={'IMAGE_FETCH_ALLOWED_HOSTS': '127.0.0.1'}, unlimited=True) as cluster:
        yield cluster


@pytest.fixture(scope='module')
def sdk(cluster: Cluster) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key, max_retries=0) as client:
        yield client


def ask(sdk: openai.OpenAI, stream: bool, **kwargs: Any) -> Any:
    """A `response` object, whole or assembled by the SDK from the stream (whose events are checked too)."""
    if not stream:
        return sdk.responses.create(**kwargs)
    with sdk.responses.stream(**kwargs) as events:
        seen = list(events)
        final = events.get_final_response()
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    assert [e.type for e in seen[:2]] == ['response.created', 'response.in_progress']
    assert seen[-1].type == 'response.completed'
    return final


@ENGINES
@STREAMING
def test_text(sdk: openai.OpenAI, engine: str, stream: bool) -> None:
    answer = ask(sdk, stream, model=CHAT[engine], input='Describe a quiet harbour', instructions='Be vivid.')
    assert answer.status == 'completed' and answer.model.startswith(CHAT[engine])  # the served name
    assert answer.output_text == expected_text('Describe a quiet harbour', TOKENS)
    assert answer.usage.output_tokens == TOKENS and answer.usage.total_tokens > TOKENS
    cut = ask(sdk, stream, model=CHAT[engine], input='Describe a quiet harbour', max_output_tokens=3) \
        if not stream else sdk.responses.create(model=CHAT[engine], input='Describe a quiet harbour',
                                                max_output_tokens=3)
    assert cut.status == 'incomplete' and cut.incomplete_details.reason == 'max_output_tokens'


@ENGINES
@STREAMING
def test_tools_and_parallel_tools_round_trip(sdk: openai.OpenAI, engine: str, stream: bool) -> None:
    question = 'Weather in Paris, Tokyo and London?'
    first = ask(sdk, stream, model=CHAT[engine], input=question, tools=[WEATHER], store=False)
    calls = [item for item in first.output if item.type == 'function_call']
    assert [json.loads(c.arguments) for c in calls] == [{'location': c} for c in ('Paris', 'Tokyo', 'London')]
    assert {c.name for c in calls} == {'get_weather'} and len({c.call_id for c in calls}) == 3
    conversation: list[Any] = [{'role': 'user', 'content': question}, *[c.model_dump(exclude_none=True)
                                                                         for c in calls]]
    conversation += [{'type': 'function_call_output', 'call_id': c.call_id, 'output': f'{c.call_id}: mild'}
                     for c in calls]
    answer = ask(sdk, stream, model=CHAT[engine], input=conversation, tools=[WEATHER], store=False)
    assert answer.output_text == expected_text(f'{calls[-1].call_id}: mild', TOKENS)
    forced = ask(sdk, stream, model=CHAT[engine], input='hello', tools=[WEATHER],
                 tool_choice={'type': 'function', 'name': 'get_weather'}, store=False)
    assert [item.type for item in forced.output][-1] == 'function_call'


@ENGINES
@STREAMING
def test_reasoning(sdk: openai.OpenAI, engine: str, stream: bool) -> None:
    prompt = 'How do tides work?'
    answer = ask(sdk, stream, model=THINKER[engine], input=prompt, reasoning={'effort': 'high', 'summary': 'auto'})
    assert [item.type for item in answer.output] == ['reasoning', 'message']
    assert answer.output[0].summary[0].text == expected_thinking(prompt, THINKING_TOKENS)
    assert answer.output_text == expected_text(prompt, TOKENS)
    assert answer.usage.output_tokens == TOKENS + THINKING_TOKENS
    assert 0 < answer.usage.output_tokens_details.reasoning_tokens < answer.usage.output_tokens
    quiet = ask(sdk, stream, model=THINKER[engine], input=prompt)  # thinking stays off unless asked
    assert [item.type for item in quiet.output] == ['message']


@ENGINES
@STREAMING
def test_json_schema(sdk: openai.OpenAI, engine: str, stream: bool) -> None:
    answer = ask(sdk, stream, model=CHAT[engine], input='A city and its population',
                 text={'format': {'type': 'json_schema', 'name': 'city', 'schema': CITY_SCHEMA, 'strict': True}})
    jsonschema.validate(json.loads(answer.output_text), CITY_SCHEMA)


@ENGINES
@STREAMING
def test_images_inline_and_by_url(sdk: openai.OpenAI, engine: str, stream: bool) -> None:
    with serving_png() as server:
        answer = ask(sdk, stream, model=VISION[engine], input=[{'role': 'user', 'content': [
            {'type': 'input_text', 'text': 'What is in these?'},
            {'type': 'input_image', 'image_url': f'data:image/png;base64,{PNG_BASE64}'},
            {'type': 'input_image', 'image_url': f'{server}/cat.png'}]}])
    assert answer.output_text == expected_text(vision_seed_text('What is in these?', 2), TOKENS)


@ENGINES
@STREAMING
def test_chaining_with_previous_response_id(sdk: openai.OpenAI, cluster: Cluster, engine: str, stream: bool
                                            ) -> None:
    first = ask(sdk, stream, model=CHAT[engine], input='What is the weather in Berlin?', tools=[WEATHER])
    call = first.output[-1]
    assert call.type == 'function_call'
    before = cluster.sim_stats(BACKEND[engine])['prompt_tokens']
    second = ask(sdk, stream, model=CHAT[engine], previous_response_id=first.id, tools=[WEATHER],
                 input=[{'type': 'function_call_output', 'call_id': call.call_id, 'output': 'cold and grey'}])
    assert second.previous_response_id == first.id
    assert second.output_text == expected_text('cold and grey', TOKENS)
    sent = cluster.sim_stats(BACKEND[engine])['prompt_tokens']
    assert isinstance(before, int) and isinstance(sent, int) and sent - before > 3  # the question went along too
    third = ask(sdk, stream, model=CHAT[engine], previous_response_id=second.id, input='And tomorrow?')
    assert third.output_text == expected_text('And tomorrow?', TOKENS)
    assert sdk.responses.retrieve(second.id).output_text == second.output_text
    assert [i.type for i in sdk.responses.input_items.list(second.id).data] == ['function_call_output']
    sdk.responses.delete(third.id)  # the SDK reads no body from a delete
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(third.id)


def test_bad_input_reaches_no_engine(sdk: openai.OpenAI, cluster: Cluster) -> None:
    before = {name: cluster.sim_stats(name)['requests_total'] for name in BACKEND.values()}
    with pytest.raises(openai.BadRequestError) as unknown_item:
        sdk.responses.create(model=CHAT['vllm'], input=[{'type': 'mystery_item'}])  # type: ignore[list-item]
    assert unknown_item.value.body['param'] == 'input[0].type'  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as unknown_call:
        sdk.responses.create(model=CHAT['vllm'], input=[
            {'type': 'function_call_output', 'call_id': 'call_never_made', 'output': 'x'}])
    assert 'call_never_made' in unknown_call.value.message
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model=CHAT['vllm'], input='hi', previous_response_id='resp_someone_elses')
    assert {name: cluster.sim_stats(name)['requests_total'] for name in BACKEND.values()} == before
