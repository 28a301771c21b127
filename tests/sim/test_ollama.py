"""The fake Ollama, driven by the official ollama client (and raw HTTP where the client hides the wire)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import ollama as ollama_sdk
import pytest

from sim import SimServer, expected_text, expected_thinking
from sim.text import embedding_vector

PROMPT = 'Why is the sky blue'
MESSAGES = [{'role': 'user', 'content': PROMPT}]
CREATED_AT = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$')
METRICS = (
    'total_duration',
    'load_duration',
    'prompt_eval_count',
    'prompt_eval_duration',
    'eval_count',
    'eval_duration',
)


@pytest.fixture
async def client(ollama: SimServer) -> AsyncIterator[ollama_sdk.AsyncClient]:
    async with ollama_sdk.AsyncClient(host=ollama.url) as c:
        yield c


@pytest.fixture
async def http(ollama: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ollama.url) as c:
        yield c


async def test_chat_non_streaming(client: ollama_sdk.AsyncClient, ollama: SimServer) -> None:
    r = await client.chat(model='llama3.2', messages=MESSAGES, stream=False)
    assert r.model == 'llama3.2'  # echoed as sent
    assert r.message.role == 'assistant'
    assert r.message.content == expected_text(PROMPT, 6)
    assert r.done is True and r.done_reason == 'stop'
    assert r.eval_count == 6 and r.prompt_eval_count == 6  # 5 words + 1
    for field in METRICS:
        value = getattr(r, field)
        assert isinstance(value, int) and value > 0
    assert r.created_at is not None and CREATED_AT.match(r.created_at)
    assert ollama.stats.requests_served == 1


async def test_chat_streaming(client: ollama_sdk.AsyncClient) -> None:
    parts = [p async for p in await client.chat(model='llama3.2', messages=MESSAGES, stream=True)]
    assert ''.join(p.message.content or '' for p in parts) == expected_text(PROMPT, 6)
    assert [p.done for p in parts] == [False] * 6 + [True]
    final = parts[-1]
    assert final.done_reason == 'stop' and final.message.content == '' and final.eval_count == 6
    assert all(p.done_reason is None and p.total_duration is None for p in parts[:-1])


async def test_stream_is_the_default_and_ndjson(http: httpx.AsyncClient) -> None:
    async with http.stream('POST', '/api/chat', json={'model': 'llama3.2', 'messages': MESSAGES}) as r:
        assert r.headers['content-type'] == 'application/x-ndjson'
        lines = [json.loads(line) async for line in r.aiter_lines() if line]
    assert set(lines[0]) == {'model', 'created_at', 'message', 'done'}
    assert lines[0]['message'] == {'role': 'assistant', 'content': expected_text(PROMPT, 1)}
    assert set(lines[-1]) == {'model', 'created_at', 'message', 'done_reason', 'done', *METRICS}


async def test_num_predict_and_stop(client: ollama_sdk.AsyncClient) -> None:
    r = await client.chat(model='llama3.2', messages=MESSAGES, stream=False, options={'num_predict': 2})
    assert r.message.content == expected_text(PROMPT, 2)
    assert r.done_reason == 'length' and r.eval_count == 2
    text = expected_text(PROMPT, 6)
    stop = ' ' + text.split()[2]
    r = await client.chat(model='llama3.2', messages=MESSAGES, stream=False, options={'stop': [stop]})
    assert r.message.content == text[: text.index(stop)] and r.done_reason == 'stop'


async def test_generate(client: ollama_sdk.AsyncClient) -> None:
    r = await client.generate(model='llama3.2', prompt=PROMPT)
    assert r.response == expected_text(PROMPT, 6)
    assert r.done_reason == 'stop' and r.eval_count == 6
    assert r.context is not None and len(r.context) == 6 + 6
    parts = [p async for p in await client.generate(model='llama3.2', prompt=PROMPT, stream=True)]
    assert ''.join(p.response or '' for p in parts) == expected_text(PROMPT, 6)
    assert parts[-1].done and parts[-1].context == r.context


async def test_load_and_unload(client: ollama_sdk.AsyncClient, ollama: SimServer) -> None:
    loaded = await client.chat(model='llama3.2', messages=[])
    assert loaded.done_reason == 'load' and loaded.message.content == ''
    assert [m.model for m in (await client.ps()).models] == ['llama3.2:latest']
    unloaded = await client.generate(model='llama3.2', prompt='', keep_alive=0)
    assert unloaded.done_reason == 'unload'
    assert (await client.ps()).models == []


async def test_embed(client: ollama_sdk.AsyncClient) -> None:
    r = await client.embed(model='nomic-embed-text', input=['first text', 'second'])
    assert r.embeddings[0] == pytest.approx(embedding_vector('first text', 16))
    assert len(r.embeddings) == 2 and r.prompt_eval_count == 5
    assert r.total_duration and r.load_duration
    r = await client.embed(model='nomic-embed-text', input='one')
    assert len(r.embeddings) == 1
    legacy = await client.embeddings(model='nomic-embed-text', prompt='one')
    assert legacy.embedding == pytest.approx(embedding_vector('one', 16, normalize=False))


async def test_list_ps_show(client: ollama_sdk.AsyncClient, http: httpx.AsyncClient) -> None:
    listed = await client.list()
    assert [m.model for m in listed.models] == ['llama3.2:latest', 'qwen3:0.6b', 'nomic-embed-text:latest']
    raw = (await http.get('/api/tags')).json()['models'][0]
    assert set(raw) == {'name', 'model', 'modified_at', 'size', 'digest', 'details'}
    assert re.fullmatch(r'[0-9a-f]{64}', raw['digest'])
    assert raw['details'] == {
        'parent_model': '',
        'format': 'gguf',
        'family': 'llama',
        'families': ['llama'],
        'parameter_size': '3.2B',
        'quantization_level': 'Q4_K_M',
    }

    await client.chat(model='qwen3:0.6b', messages=MESSAGES, options={'num_ctx': 4096})
    running = (await client.ps()).models
    assert [m.model for m in running] == ['qwen3:0.6b']
    assert running[0].expires_at is not None and running[0].size_vram == running[0].size
    assert running[0].context_length == 4096

    shown = await client.show('llama3.2')
    assert shown.capabilities == ['completion', 'tools']
    assert shown.modelinfo is not None
    assert shown.modelinfo['general.architecture'] == 'llama' and shown.modelinfo['llama.context_length'] == 8192
    assert shown.details is not None and shown.details.format == 'gguf'
    assert (await client.show('qwen3:0.6b')).capabilities == ['completion', 'tools', 'thinking']
    assert (await client.show('nomic-embed-text')).capabilities == ['embedding']


async def test_pull_and_delete(client: ollama_sdk.AsyncClient) -> None:
    statuses = [p.status async for p in await client.pull('gemma3:270m', stream=True)]
    assert statuses[0] == 'pulling manifest' and statuses[-1] == 'success'
    assert 'verifying sha256 digest' in statuses
    shown = await client.show('gemma3:270m')
    assert shown.details is not None and shown.details.parameter_size == '270M'
    assert 'gemma3:270m' in [m.model for m in (await client.list()).models]
    assert (await client.delete('gemma3:270m')).status == 'success'
    with pytest.raises(ollama_sdk.ResponseError) as e:
        await client.delete('gemma3:270m')
    assert e.value.status_code == 404
    assert (await client.pull('tinyllama', stream=False)).status == 'success'


async def test_errors(client: ollama_sdk.AsyncClient, http: httpx.AsyncClient) -> None:
    with pytest.raises(ollama_sdk.ResponseError) as e:
        await client.chat(model='nope', messages=MESSAGES)
    assert e.value.status_code == 404 and e.value.error == "model 'nope' not found"
    r = await http.post('/api/chat')
    assert r.status_code == 400 and r.json() == {'error': 'missing request body'}
    r = await http.post('/api/chat', json={'model': 'llama3.2', 'messages': MESSAGES, 'think': True})
    assert r.status_code == 400 and 'does not support thinking' in r.json()['error']
    r = await http.post('/api/chat', json={'model': 'nomic-embed-text', 'messages': MESSAGES})
    assert r.status_code == 400
    r = await http.get('/api/nothing')
    assert r.status_code == 404 and r.text == '404 page not found'


async def test_thinking(client: ollama_sdk.AsyncClient) -> None:
    r = await client.chat(model='qwen3:0.6b', messages=MESSAGES, think=True, stream=False)
    assert r.message.thinking == expected_thinking(PROMPT, 8)
    assert r.message.content == expected_text(PROMPT, 6) and r.eval_count == 14
    parts = [p async for p in await client.chat(model='qwen3:0.6b', messages=MESSAGES, think=True, stream=True)]
    assert ''.join(p.message.thinking or '' for p in parts) == expected_thinking(PROMPT, 8)
    assert all(not p.message.content for p in parts[:8])


async def test_tool_call(client: ollama_sdk.AsyncClient) -> None:
    tools = [{'type': 'function', 'function': {'name': 'get_weather', 'parameters': {'type': 'object'}}}]
    messages = [{'role': 'user', 'content': 'How is the weather in Paris?'}]
    r = await client.chat(model='llama3.2', messages=messages, tools=tools, stream=False)
    assert r.message.tool_calls is not None
    call = r.message.tool_calls[0]
    assert call.function.name == 'get_weather' and call.function.arguments == {'location': 'Paris'}
    parts = [p async for p in await client.chat(model='llama3.2', messages=messages, tools=tools, stream=True)]
    assert [p.message.tool_calls[0].function.arguments for p in parts if p.message.tool_calls] == [
        {'location': 'Paris'}
    ]


async def test_root_and_version(http: httpx.AsyncClient) -> None:
    r = await http.get('/')
    assert r.text == 'Ollama is running'
    r = await http.head('/')
    assert r.status_code == 200 and r.content == b''
    assert (await http.get('/api/version')).json() == {'version': '0.12.0'}


async def test_the_tool_call_knob_calls_an_offered_tool_once(client: ollama_sdk.AsyncClient,
                                                             http: httpx.AsyncClient) -> None:
    tools = [{'type': 'function', 'function': {'name': name, 'parameters': {'type': 'object'}}}
             for name in ('Read', 'Bash')]
    script = {'name': 'Bash', 'arguments': {'command': 'ls'}}
    assert (await http.post('/_sim/config', json={'tool_call': script})).status_code == 200
    messages = [{'role': 'user', 'content': 'What files are here?'}]  # no trigger word

    r = await client.chat(model='llama3.2', messages=messages, tools=tools, stream=False)
    assert r.message.tool_calls is not None and len(r.message.tool_calls) == 1
    assert r.message.tool_calls[0].function.name == 'Bash'
    assert r.message.tool_calls[0].function.arguments == {'command': 'ls'}
    # the result comes back: the model answers in text
    done = [*messages, {'role': 'assistant', 'content': '', 'tool_calls': [r.message.tool_calls[0].model_dump()]},
            {'role': 'tool', 'content': 'README.md'}]
    r = await client.chat(model='llama3.2', messages=done, tools=tools, stream=False)
    assert not r.message.tool_calls and r.message.content
    # a request that does not offer the tool answers as usual
    r = await client.chat(model='llama3.2', messages=messages, tools=tools[:1], stream=False)
    assert not r.message.tool_calls

    bad = await http.post('/_sim/config', json={'tool_call': {'arguments': {}}})
    assert bad.status_code == 400
