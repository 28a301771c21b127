"""vLLM reasoning on the wire: which families think when, thinking_token_budget, and the <think> form a server
without --reasoning-parser sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sim import SimConfig, SimServer, expected_text, expected_thinking, expected_tokens
from sim.cli import build_parser, config_from_args
from sim.text import expected_thinking_tokens
from tests.sim.wire import deltas, sse_chunks, stream

PROMPT = 'Why is the sea salty'
MESSAGES = [{'role': 'user', 'content': PROMPT}]
QWEN3 = 'Qwen/Qwen3-8B'
MODELS = [
    QWEN3,
    'Qwen/Qwen3-4B-Instruct-2507',
    'Qwen/Qwen3-30B-A3B-Thinking-2507',
    'deepseek-ai/DeepSeek-R1-Distill-Qwen-7B',
    'Qwen/QwQ-32B',
    'openai/gpt-oss-20b',
    'mistralai/Magistral-Small-2506',
    'meta-llama/Llama-3.2-1B-Instruct',
]


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer('vllm', SimConfig(models=MODELS, tokens=3, thinking_tokens=2)) as s:
        yield s


@pytest.fixture
async def http(server: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as c:
        yield c


OFF = {'chat_template_kwargs': {'enable_thinking': False}}
EFFORT_NONE = {'reasoning_effort': 'none'}
ON = {'chat_template_kwargs': {'enable_thinking': True}}


@pytest.mark.parametrize(
    ('model', 'extra', 'thinks'),
    [
        (QWEN3, {}, True),  # the Qwen3 template thinks by default
        (QWEN3, OFF, False),
        (QWEN3, EFFORT_NONE, False),
        (QWEN3, {'reasoning_effort': 'low'}, True),
        (QWEN3, {**ON, **EFFORT_NONE}, True),  # enable_thinking wins over reasoning_effort
        ('mistralai/Magistral-Small-2506', {}, True),
        ('mistralai/Magistral-Small-2506', OFF, False),
        ('Qwen/Qwen3-4B-Instruct-2507', ON, False),  # an Instruct release never thinks
        ('Qwen/Qwen3-30B-A3B-Thinking-2507', OFF, True),  # a Thinking release always does
        ('deepseek-ai/DeepSeek-R1-Distill-Qwen-7B', OFF, True),
        ('Qwen/QwQ-32B', EFFORT_NONE, True),
        ('openai/gpt-oss-20b', {'reasoning_effort': 'high'}, True),
        ('meta-llama/Llama-3.2-1B-Instruct', ON, False),
    ],
)
async def test_thinking_per_family(http: httpx.AsyncClient, model: str, extra: dict[str, Any], thinks: bool) -> None:
    body = (await http.post('/v1/chat/completions', json={'model': model, 'messages': MESSAGES, **extra})).json()
    message = body['choices'][0]['message']
    assert message['content'] == expected_text(PROMPT, 3)
    assert message['reasoning'] == (expected_thinking(PROMPT, 2) if thinks else None)
    assert body['usage']['completion_tokens'] == (5 if thinks else 3)


async def test_thinking_token_budget_and_max_tokens(http: httpx.AsyncClient, server: SimServer) -> None:
    server.config.thinking_tokens = 8
    body = {'model': QWEN3, 'messages': MESSAGES, 'thinking_token_budget': 3}
    answer = (await http.post('/v1/chat/completions', json=body)).json()
    assert answer['choices'][0]['message']['reasoning'] == expected_thinking(PROMPT, 3)
    assert answer['usage']['completion_tokens'] == 3 + 3
    # max_tokens below the reasoning: the reasoning is cut and nothing is answered.
    answer = (
        await http.post('/v1/chat/completions', json={**body, 'thinking_token_budget': 8, 'max_tokens': 5})
    ).json()
    choice = answer['choices'][0]
    assert choice['finish_reason'] == 'length' and choice['message']['content'] == ''
    assert choice['message']['reasoning'] == expected_thinking(PROMPT, 5)


async def test_reasoning_deltas_with_the_parser(http: httpx.AsyncClient) -> None:
    got = deltas(
        sse_chunks(await stream(http, '/v1/chat/completions', {'model': QWEN3, 'messages': MESSAGES, 'stream': True}))
    )
    assert got == [
        {'role': 'assistant', 'content': ''},
        *({'reasoning': t} for t in expected_thinking_tokens(PROMPT, 2)),
        *({'content': t} for t in expected_tokens(PROMPT, 3)),
        {'content': ''},
    ]


async def test_think_tags_without_the_parser(http: httpx.AsyncClient, server: SimServer) -> None:
    r = await http.post('/_sim/config', json={'reasoning_parser': False})
    assert r.status_code == 200 and r.json()['reasoning_parser'] is False
    body = (await http.post('/v1/chat/completions', json={'model': QWEN3, 'messages': MESSAGES})).json()
    message = body['choices'][0]['message']
    reasoning, answer = expected_thinking(PROMPT, 2), expected_text(PROMPT, 3)
    assert message['content'] == f'<think>{reasoning}</think>\n\n{answer}'
    assert message['reasoning'] is None and body['usage']['completion_tokens'] == 5

    raw = await stream(http, '/v1/chat/completions', {'model': QWEN3, 'messages': MESSAGES, 'stream': True})
    assert deltas(sse_chunks(raw)) == [
        {'role': 'assistant', 'content': ''},
        {'content': '<think>'},
        *({'content': t} for t in expected_thinking_tokens(PROMPT, 2)),
        {'content': '</think>'},
        {'content': '\n\n'},
        *({'content': t} for t in expected_tokens(PROMPT, 3)),
        {'content': ''},
    ]
    # Thinking off: no tags at all.
    body = (await http.post('/v1/chat/completions', json={'model': QWEN3, 'messages': MESSAGES, **OFF})).json()
    assert body['choices'][0]['message']['content'] == answer


def test_cli_flags() -> None:
    config = config_from_args(build_parser().parse_args(['vllm', '--no-reasoning-parser', '--schema-violation']))
    assert config.reasoning_parser is False and config.schema_violation is True
    config = config_from_args(build_parser().parse_args(['vllm']))
    assert config.reasoning_parser is True and config.schema_violation is False
