"""The request one backend gets: thinking per model family, context fitting, Ollama's num_ctx."""

from __future__ import annotations

import pytest

from core.errors import InvalidRequest
from core.gateway.shaping import PromptSize, fit_max_tokens, shape_for_backend, thinking_for
from core.models import Engine
from core.registry.families import Reasoning, modality, reasoning_of, vllm_capabilities
from core.registry.view import BackendState, ModelInfo
from core.translate import ollama_engine, vllm_engine
from core.translate.canonical import ChatRequest, Message


def backend(engine: str, name: str, capabilities: list[str], context: int | None = 8192) -> BackendState:
    return BackendState(id=1, name='b', url='http://b', engine=engine, max_concurrent=4, status='healthy',
                        models={name: ModelInfo(name=name, context_length=context,
                                                capabilities=frozenset(capabilities))})


def shaped(engine: str, name: str, capabilities: list[str], **fields: object) -> ChatRequest:
    request = ChatRequest(model=name, messages=[Message(role='user', content='hi')], **fields)  # type: ignore[arg-type]
    return shape_for_backend(request, backend(engine, name, capabilities), context_cap=4096, override_num_ctx=True)


@pytest.mark.parametrize(('name', 'capabilities', 'style'), [
    ('qwen3:0.6b', ['completion', 'thinking'], Reasoning.toggle),
    ('Qwen/Qwen3-8B', vllm_capabilities('Qwen/Qwen3-8B'), Reasoning.toggle),
    ('Qwen/Qwen3-30B-A3B-Instruct-2507', vllm_capabilities('Qwen/Qwen3-30B-A3B-Instruct-2507'), Reasoning.none),
    ('openai/gpt-oss-20b', vllm_capabilities('openai/gpt-oss-20b'), Reasoning.effort),
    ('deepseek-r1:8b', ['completion', 'thinking'], Reasoning.always),
    ('llama3.2', ['completion', 'tools'], Reasoning.none),
    ('meta-llama/Llama-3.2-1B-Instruct', vllm_capabilities('meta-llama/Llama-3.2-1B-Instruct'), Reasoning.none),
])
def test_the_reasoning_style_comes_from_capabilities_and_family(name: str, capabilities: list[str],
                                                                style: Reasoning) -> None:
    assert reasoning_of(name, capabilities) is style


def test_vllm_capabilities_and_modality_from_the_name() -> None:
    assert modality(vllm_capabilities('BAAI/bge-reranker-v2-m3')) == 'reranking'
    assert modality(vllm_capabilities('BAAI/bge-small-en-v1.5')) == 'embedding'
    assert modality(vllm_capabilities('Qwen/Qwen2.5-VL-7B-Instruct')) == 'multimodal'
    assert modality(vllm_capabilities('google/gemma-3-270m-it')) == 'chat'
    assert modality(['completion', 'tools', 'vision']) == 'multimodal'


@pytest.mark.parametrize(('think', 'budget', 'style', 'sent'), [
    (None, None, Reasoning.toggle, (False, None)),  # the site default: off unless asked
    (True, 2048, Reasoning.toggle, (True, 2048)),
    ('high', None, Reasoning.toggle, (True, None)),
    (False, None, Reasoning.toggle, (False, None)),
    (None, None, Reasoning.effort, (None, None)),  # gpt-oss's own default level
    (False, None, Reasoning.effort, ('low', None)),  # cannot be switched off: the lowest level
    ('high', None, Reasoning.effort, ('high', None)),
    (True, 2000, Reasoning.effort, ('low', None)),
    (True, 10000, Reasoning.effort, ('medium', None)),
    (True, 50000, Reasoning.effort, ('high', None)),
    (True, None, Reasoning.always, (None, None)),
    (True, 1024, Reasoning.none, (None, None)),  # a model that cannot think is not asked to
])
def test_thinking_as_each_family_takes_it(think: bool | str | None, budget: int | None, style: Reasoning,
                                          sent: tuple[object, object]) -> None:
    assert thinking_for(think, budget, style) == sent


def test_what_the_engines_are_sent() -> None:
    qwen = shaped(Engine.vllm, 'Qwen/Qwen3-8B', vllm_capabilities('Qwen/Qwen3-8B'))
    assert vllm_engine.chat_request(qwen)[1]['chat_template_kwargs'] == {'enable_thinking': False}
    llama = shaped(Engine.vllm, 'meta-llama/Llama-3.2-1B-Instruct', ['completion'], think=True)
    assert 'chat_template_kwargs' not in vllm_engine.chat_request(llama)[1]
    oss = shaped(Engine.ollama, 'gpt-oss:20b', ['completion', 'thinking'], think=False)
    assert ollama_engine.chat_request(oss)[1]['think'] == 'low'
    qwen_ollama = shaped(Engine.ollama, 'qwen3:0.6b', ['completion', 'thinking'])
    assert ollama_engine.chat_request(qwen_ollama)[1]['think'] is False
    assert ollama_engine.chat_request(qwen_ollama)[1]['options']['num_ctx'] == 4096


def test_max_tokens_is_capped_to_the_context_left_and_a_prompt_too_long_is_refused() -> None:
    counted = PromptSize(4000, counted=True)
    assert fit_max_tokens('m', PromptSize(1000, counted=True), 500, 4096) == 500
    assert fit_max_tokens('m', counted, 500, 4096) == 96
    assert fit_max_tokens('m', counted, None, 4096) is None  # the engine's own default already fits
    assert fit_max_tokens('m', PromptSize(3000), 5000, 4096) == 4096 - 3000 - 750 - 32  # an estimate keeps a margin
    with pytest.raises(InvalidRequest, match='at most 4096 tokens') as refused:
        fit_max_tokens('m', PromptSize(4096, counted=True), None, 4096)
    assert refused.value.param == 'messages'
    request = ChatRequest(model='llama3.2:latest', max_tokens=5000)
    fitted = shape_for_backend(request, backend(Engine.ollama, 'llama3.2:latest', ['completion']),
                               context_cap=4096, override_num_ctx=True, prompt=PromptSize(100, counted=True))
    assert fitted.max_tokens == 3996
