"""The fake vLLM, driven by the official openai client (and raw HTTP where the client hides the wire)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from sim import SimServer, expected_text, expected_thinking
from sim.text import embedding_vector
from tests.sim.conftest import VLLM_CHAT_MODEL, VLLM_EMBED_MODEL, VLLM_THINK_MODEL

PROMPT = 'Tell me about rivers and stones'
MESSAGES: list[ChatCompletionMessageParam] = [
    {'role': 'system', 'content': 'You are terse.'},
    {'role': 'user', 'content': PROMPT},
]
# Every message counts its words plus one: (3 + 1) + (6 + 1).
PROMPT_TOKENS = 11


@pytest.fixture
async def client(vllm: SimServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f'{vllm.url}/v1', api_key='x', max_retries=0) as c:
        yield c


@pytest.fixture
async def http(vllm: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=vllm.url) as c:
        yield c


async def test_chat_non_streaming(client: openai.AsyncOpenAI, vllm: SimServer) -> None:
    r = await client.chat.completions.create(model=VLLM_CHAT_MODEL, messages=MESSAGES)
    assert r.id.startswith('chatcmpl-')
    assert r.object == 'chat.completion'
    assert r.model == VLLM_CHAT_MODEL
    assert r.system_fingerprint is not None and r.system_fingerprint.startswith('vllm-0.32.0-')
    choice = r.choices[0]
    assert choice.message.role == 'assistant'
    assert choice.message.content == expected_text(PROMPT, 6)
    assert choice.finish_reason == 'stop'
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (PROMPT_TOKENS, 6, 17)
    assert vllm.stats.requests_served == 1
    assert vllm.stats.generation_tokens == 6


async def test_chat_wire_fields(http: httpx.AsyncClient) -> None:
    body = (await http.post('/v1/chat/completions', json={'model': VLLM_CHAT_MODEL, 'messages': MESSAGES})).json()
    assert set(body) == {
        'id',
        'object',
        'created',
        'model',
        'choices',
        'service_tier',
        'system_fingerprint',
        'usage',
        'prompt_logprobs',
        'prompt_token_ids',
        'kv_transfer_params',
        'metrics',
    }
    choice = body['choices'][0]
    assert set(choice) == {'index', 'message', 'logprobs', 'finish_reason', 'stop_reason', 'token_ids'}
    assert choice['message'] == {
        'role': 'assistant',
        'content': expected_text(PROMPT, 6),
        'refusal': None,
        'annotations': None,
        'audio': None,
        'function_call': None,
        'reasoning': None,
    }
    assert body['usage'] == {
        'prompt_tokens': 11,
        'total_tokens': 17,
        'completion_tokens': 6,
        'prompt_tokens_details': None,
    }


async def test_chat_length_limit(client: openai.AsyncOpenAI) -> None:
    for r in (
        await client.chat.completions.create(model=VLLM_CHAT_MODEL, messages=MESSAGES, max_tokens=3),
        await client.chat.completions.create(model=VLLM_CHAT_MODEL, messages=MESSAGES, max_completion_tokens=3),
    ):
        assert r.choices[0].message.content == expected_text(PROMPT, 3)
        assert r.choices[0].finish_reason == 'length'
        assert r.usage is not None and r.usage.completion_tokens == 3


async def test_chat_stop_sequence(http: httpx.AsyncClient) -> None:
    text = expected_text(PROMPT, 6)
    stop = ' ' + text.split()[3]
    body = {'model': VLLM_CHAT_MODEL, 'messages': MESSAGES, 'stop': [stop]}
    choice = (await http.post('/v1/chat/completions', json=body)).json()['choices'][0]
    assert choice['message']['content'] == text[: text.index(stop)]
    assert choice['finish_reason'] == 'stop'
    assert choice['stop_reason'] == stop


async def test_chat_streaming_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=VLLM_CHAT_MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={'include_usage': True},
    )
    chunks = [c async for c in stream]
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith('chatcmpl-')
    assert all(c.object == 'chat.completion.chunk' for c in chunks)
    first = chunks[0].choices[0]
    assert (first.delta.role, first.delta.content, first.finish_reason) == ('assistant', '', None)
    text = ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)
    assert text == expected_text(PROMPT, 6)
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == ['stop']
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (11, 6, 17)
    assert all(c.usage is None for c in chunks[:-1])


async def test_chat_stream_wire(http: httpx.AsyncClient) -> None:
    body = {'model': VLLM_CHAT_MODEL, 'messages': MESSAGES, 'stream': True, 'max_tokens': 2}
    async with http.stream('POST', '/v1/chat/completions', json=body) as r:
        assert r.headers['content-type'].startswith('text/event-stream')
        assert r.headers['transfer-encoding'] == 'chunked'
        raw = (await r.aread()).decode()
    events = [e for e in raw.split('\n\n') if e]
    assert all(e.startswith('data: ') for e in events)
    assert events[-1] == 'data: [DONE]'
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert chunks[0]['choices'][0]['delta'] == {'role': 'assistant', 'content': ''}
    first, second = expected_text(PROMPT, 2).split(' ')
    assert [c['choices'][0]['delta'] for c in chunks[1:]] == [{'content': first}, {'content': ' ' + second}]
    # "length" rides on the last token's chunk, which also carries the fingerprint; no usage without asking.
    assert chunks[-1]['choices'][0]['finish_reason'] == 'length'
    assert chunks[-1]['system_fingerprint'].startswith('vllm-')
    assert all('usage' not in c for c in chunks)


async def test_completions(client: openai.AsyncOpenAI) -> None:
    r = await client.completions.create(model=VLLM_CHAT_MODEL, prompt='Once upon a time')
    assert r.id.startswith('cmpl-') and r.object == 'text_completion'
    assert r.choices[0].text == expected_text('Once upon a time', 6)
    assert r.choices[0].finish_reason == 'stop'
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 6)

    stream = await client.completions.create(
        model=VLLM_CHAT_MODEL,
        prompt='Once upon a time',
        stream=True,
        max_tokens=4,
        stream_options={'include_usage': True},
    )
    chunks = [c async for c in stream]
    assert ''.join(c.choices[0].text for c in chunks if c.choices) == expected_text('Once upon a time', 4)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == 'length'
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


async def test_completions_default_max_tokens_is_16(vllm: SimServer, client: openai.AsyncOpenAI) -> None:
    vllm.config.tokens = 40
    r = await client.completions.create(model=VLLM_CHAT_MODEL, prompt='hello')
    assert r.choices[0].finish_reason == 'length'
    assert r.usage is not None and r.usage.completion_tokens == 16


async def test_embeddings(client: openai.AsyncOpenAI) -> None:
    # The client asks for base64 by default and decodes it.
    r = await client.embeddings.create(model=VLLM_EMBED_MODEL, input=['alpha beta', 'gamma'])
    assert [d.index for d in r.data] == [0, 1]
    assert r.data[0].embedding == pytest.approx(embedding_vector('alpha beta', 16), abs=1e-6)
    assert r.usage.prompt_tokens == 5
    r = await client.embeddings.create(model=VLLM_EMBED_MODEL, input='gamma', encoding_format='float')
    assert r.data[0].embedding == pytest.approx(embedding_vector('gamma', 16))
    assert sum(x * x for x in r.data[0].embedding) == pytest.approx(1.0)


async def test_embeddings_on_a_generate_model_is_404(http: httpx.AsyncClient) -> None:
    r = await http.post('/v1/embeddings', json={'model': VLLM_CHAT_MODEL, 'input': 'x'})
    assert r.status_code == 404


async def test_models(client: openai.AsyncOpenAI) -> None:
    models = [m async for m in client.models.list()]
    assert [m.id for m in models] == [VLLM_CHAT_MODEL, VLLM_EMBED_MODEL, VLLM_THINK_MODEL]
    card = models[0].model_dump()
    assert card['owned_by'] == 'vllm' and card['object'] == 'model'
    assert card['root'] == VLLM_CHAT_MODEL and card['parent'] is None
    assert card['max_model_len'] == 8192
    assert card['permission'][0]['object'] == 'model_permission'


async def test_unknown_model_is_404(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model='nope', messages=MESSAGES)
    r = await http.post('/v1/chat/completions', json={'model': 'nope', 'messages': MESSAGES})
    error = r.json()['error']
    assert r.status_code == 404
    assert error['type'] == 'NotFoundError' and error['param'] == 'model' and error['code'] == 404
    assert error['message'].startswith('The model `nope` does not exist.')


async def test_bad_requests(http: httpx.AsyncClient) -> None:
    r = await http.post('/v1/chat/completions', content=b'{not json', headers={'content-type': 'application/json'})
    assert r.status_code == 400
    assert set(r.json()['error']) == {'message', 'type', 'param', 'code'}
    r = await http.post('/v1/chat/completions', json={'model': VLLM_CHAT_MODEL})
    assert r.status_code == 400 and r.json()['error']['param'] == 'body.messages'
    r = await http.post('/v1/chat/completions', json={'messages': MESSAGES, 'max_tokens': 9000})
    assert r.status_code == 400 and 'maximum context length is 8192' in r.json()['error']['message']


async def test_model_defaults_to_the_first(http: httpx.AsyncClient) -> None:
    r = await http.post('/v1/chat/completions', json={'messages': MESSAGES})
    assert r.json()['model'] == VLLM_CHAT_MODEL


async def test_tool_call(client: openai.AsyncOpenAI) -> None:
    tools: list[ChatCompletionToolParam] = [
        {'type': 'function', 'function': {'name': 'get_weather', 'parameters': {'type': 'object'}}}
    ]
    messages: list[ChatCompletionMessageParam] = [{'role': 'user', 'content': 'What is the weather like?'}]
    r = await client.chat.completions.create(model=VLLM_CHAT_MODEL, messages=messages, tools=tools)
    choice = r.choices[0]
    assert choice.finish_reason == 'tool_calls'
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.id.startswith('chatcmpl-tool-') and call.type == 'function'
    assert call.function.name == 'get_weather'
    assert json.loads(call.function.arguments) == {'location': 'Paris'}

    stream = await client.chat.completions.create(
        model=VLLM_CHAT_MODEL,
        messages=messages,
        tools=tools,
        stream=True,
    )
    chunks = [c async for c in stream]
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function is not None and deltas[0].function.name == 'get_weather'
    arguments = ''.join(d.function.arguments or '' for d in deltas if d.function)
    assert json.loads(arguments) == {'location': 'Paris'}
    assert chunks[-1].choices[0].finish_reason == 'tool_calls'


async def test_reasoning(client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(
        model=VLLM_THINK_MODEL,
        messages=MESSAGES,
        extra_body={'chat_template_kwargs': {'enable_thinking': True}},
    )
    message = r.choices[0].message
    assert message.content == expected_text(PROMPT, 6)
    assert message.model_extra is not None and message.model_extra['reasoning'] == expected_thinking(PROMPT, 8)
    assert r.usage is not None and r.usage.completion_tokens == 14

    stream = await client.chat.completions.create(
        model=VLLM_THINK_MODEL,
        messages=MESSAGES,
        stream=True,
        extra_body={'chat_template_kwargs': {'enable_thinking': True}},
    )
    reasoning = ''
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.model_extra:
            reasoning += chunk.choices[0].delta.model_extra.get('reasoning') or ''
    assert reasoning == expected_thinking(PROMPT, 8)


async def test_probes_and_tokenize(http: httpx.AsyncClient) -> None:
    r = await http.get('/health')
    assert r.status_code == 200 and r.content == b''
    assert (await http.get('/version')).json() == {'version': '0.32.0'}
    r = await http.post('/tokenize', json={'model': VLLM_CHAT_MODEL, 'prompt': 'one two three'})
    assert r.json()['count'] == 4 and len(r.json()['tokens']) == 4 and r.json()['max_model_len'] == 8192
    r = await http.get('/no/such/route')
    assert r.status_code == 404 and r.json() == {'detail': 'Not Found'}
    r = await http.get('/v1/chat/completions')
    assert r.status_code == 405 and r.json() == {'detail': 'Method Not Allowed'}


async def test_metrics(http: httpx.AsyncClient) -> None:
    await http.post('/v1/chat/completions', json={'messages': MESSAGES})
    text = (await http.get('/metrics')).text
    labels = f'{{model_name="{VLLM_CHAT_MODEL}",engine="0"}}'
    for line in (
        f'vllm:num_requests_running{labels} 0.0',
        f'vllm:num_requests_waiting{labels} 0.0',
        f'vllm:kv_cache_usage_perc{labels} 0.0',
        f'vllm:prompt_tokens_total{labels} 11.0',
        f'vllm:generation_tokens_total{labels} 6.0',
        '# TYPE vllm:prompt_tokens counter',
    ):
        assert line in text.splitlines()


async def test_the_reply_knob_makes_the_answer_a_given_text(client: openai.AsyncOpenAI,
                                                            http: httpx.AsyncClient) -> None:
    reply = 'Here: <img src="http://x/y"> and `code` — 🌊'
    assert (await http.post('/_sim/config', json={'reply': reply})).status_code == 200

    answer = await client.chat.completions.create(model=VLLM_CHAT_MODEL, messages=MESSAGES)
    stream = await client.chat.completions.create(model=VLLM_CHAT_MODEL, messages=MESSAGES, stream=True)
    pieces = [chunk.choices[0].delta.content async for chunk in stream
              if chunk.choices and chunk.choices[0].delta.content]
    assert answer.choices[0].message.content == reply
    assert ''.join(pieces) == reply and len(pieces) > 3  # streamed a few characters at a time

    assert (await http.post('/_sim/config', json={'reply': None})).status_code == 200
    answer = await client.chat.completions.create(model=VLLM_CHAT_MODEL, messages=MESSAGES)
    assert answer.choices[0].message.content == expected_text(PROMPT, 6)


async def test_the_tool_call_knob_calls_an_offered_tool_once(client: openai.AsyncOpenAI,
                                                             http: httpx.AsyncClient) -> None:
    tools: list[ChatCompletionToolParam] = [
        {'type': 'function', 'function': {'name': name, 'parameters': {'type': 'object'}}} for name in ('Read', 'Bash')
    ]
    script = {'name': 'Read', 'arguments': {'file_path': '/tmp/x'}}
    assert (await http.post('/_sim/config', json={'tool_call': script})).status_code == 200
    messages: list[ChatCompletionMessageParam] = [{'role': 'user', 'content': 'Show me the file.'}]

    r = await client.chat.completions.create(model=VLLM_CHAT_MODEL, messages=messages, tools=tools)
    calls = r.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1 and r.choices[0].finish_reason == 'tool_calls'
    assert calls[0].function.name == 'Read' and json.loads(calls[0].function.arguments) == {'file_path': '/tmp/x'}

    done: list[ChatCompletionMessageParam] = [
        *messages,
        {'role': 'assistant', 'tool_calls': [{'id': calls[0].id, 'type': 'function',
                                              'function': {'name': 'Read', 'arguments': calls[0].function.arguments}}]},
        {'role': 'tool', 'tool_call_id': calls[0].id, 'content': 'hello'},
    ]
    r = await client.chat.completions.create(model=VLLM_CHAT_MODEL, messages=done, tools=tools)
    assert not r.choices[0].message.tool_calls and r.choices[0].message.content
