"""Images on the wire: accepted by vision models (the answer's seed counts them), refused by text-only ones."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sim import SimConfig, SimServer, expected_text
from sim.engine import is_vision_model
from sim.text import vision_seed_text
from tests.sim.wire import deltas, sse_chunks, stream

PROMPT = 'What is in these pictures'
IMAGE = {'type': 'image_url', 'image_url': {'url': 'data:image/png;base64,iVBORw0KGgo='}}
PNG_B64 = 'iVBORw0KGgo='
VLLM_MODELS = ['meta-llama/Llama-3.2-1B-Instruct', 'Qwen/Qwen2.5-VL-7B-Instruct', 'google/gemma-3-270m-it']


@pytest.mark.parametrize(
    ('name', 'vision'),
    [
        ('Qwen/Qwen2.5-VL-7B-Instruct', True),
        ('llava-hf/llava-1.5-7b-hf', True),
        ('mistralai/Pixtral-12B-2409', True),
        ('meta-llama/Llama-3.2-11B-Vision-Instruct', True),
        ('google/gemma-3-4b-it', True),
        ('gemma3:12b', True),
        ('google/gemma-3-270m-it', False),
        ('gemma3:270m', False),
        ('google/gemma-3-1b-it', False),
        ('meta-llama/Llama-3.2-1B-Instruct', False),
        ('llama3.2:latest', False),
    ],
)
def test_vision_models(name: str, vision: bool) -> None:
    assert is_vision_model(name) is vision


@pytest.fixture
async def vllm_http() -> AsyncIterator[httpx.AsyncClient]:
    async with (
        SimServer('vllm', SimConfig(models=VLLM_MODELS, tokens=4)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        yield http


async def test_vllm_vision_model_takes_images(vllm_http: httpx.AsyncClient) -> None:
    messages = [{'role': 'user', 'content': [{'type': 'text', 'text': PROMPT}, IMAGE, IMAGE]}]
    body = {'model': VLLM_MODELS[1], 'messages': messages}
    answer = (await vllm_http.post('/v1/chat/completions', json=body)).json()
    expected = expected_text(vision_seed_text(PROMPT, 2), 4)
    assert answer['choices'][0]['message']['content'] == expected
    assert expected != expected_text(PROMPT, 4)  # the marker shows the two images arrived
    assert answer['usage']['prompt_tokens'] == 5 + 1  # image parts add no prompt tokens
    got = deltas(sse_chunks(await stream(vllm_http, '/v1/chat/completions', {**body, 'stream': True})))
    assert ''.join(d.get('content', '') for d in got) == expected
    # Images in an earlier turn do not mark the answer to a text-only last turn.
    history = [*messages, {'role': 'assistant', 'content': 'Two cats.'}, {'role': 'user', 'content': 'And now?'}]
    answer = (await vllm_http.post('/v1/chat/completions', json={**body, 'messages': history})).json()
    assert answer['choices'][0]['message']['content'] == expected_text('And now?', 4)


@pytest.mark.parametrize('model', [VLLM_MODELS[0], VLLM_MODELS[2]])
async def test_vllm_text_model_refuses_images(vllm_http: httpx.AsyncClient, model: str) -> None:
    messages = [{'role': 'user', 'content': [{'type': 'text', 'text': PROMPT}, IMAGE]}]
    r = await vllm_http.post('/v1/chat/completions', json={'model': model, 'messages': messages})
    assert r.status_code == 400
    assert r.json() == {
        'error': {
            'message': 'This model does not support multi-modal inputs',
            'type': 'BadRequestError',
            'param': None,
            'code': 400,
        }
    }


@pytest.fixture
async def ollama_http() -> AsyncIterator[httpx.AsyncClient]:
    config = SimConfig(models=['llama3.2', 'llava:7b', 'gemma3:4b'], tokens=4)
    async with SimServer('ollama', config) as server, httpx.AsyncClient(base_url=server.url) as http:
        yield http


async def test_ollama_vision_capability(ollama_http: httpx.AsyncClient) -> None:
    for model, vision in (('llava:7b', True), ('gemma3:4b', True), ('llama3.2', False)):
        capabilities = (await ollama_http.post('/api/show', json={'model': model})).json()['capabilities']
        assert ('vision' in capabilities) is vision


async def test_ollama_images(ollama_http: httpx.AsyncClient) -> None:
    messages = [{'role': 'user', 'content': PROMPT, 'images': [PNG_B64]}]
    answer = (
        await ollama_http.post('/api/chat', json={'model': 'llava:7b', 'messages': messages, 'stream': False})
    ).json()
    assert answer['message']['content'] == expected_text(vision_seed_text(PROMPT, 1), 4)
    request = {'model': 'gemma3:4b', 'prompt': PROMPT, 'images': [PNG_B64, PNG_B64], 'stream': False}
    answer = (await ollama_http.post('/api/generate', json=request)).json()
    assert answer['response'] == expected_text(vision_seed_text(PROMPT, 2), 4)


async def test_ollama_text_model_refuses_images(ollama_http: httpx.AsyncClient) -> None:
    messages = [{'role': 'user', 'content': PROMPT, 'images': [PNG_B64]}]
    r = await ollama_http.post('/api/chat', json={'model': 'llama3.2', 'messages': messages})
    assert (r.status_code, r.json()) == (400, {'error': 'this model is missing data required for image input'})
    r = await ollama_http.post('/api/generate', json={'model': 'llama3.2', 'prompt': PROMPT, 'images': [PNG_B64]})
    assert (r.status_code, r.json()) == (400, {'error': 'this model is missing data required for image input'})
