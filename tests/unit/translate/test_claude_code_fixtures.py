"""What the real Claude Code CLI sends (tests/fixtures/agents/claude-code, recorded by tests/agents/recorder.py)
parses and reaches both engines. A CLI release that changes shape fails here first: re-record, then adapt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.translate import ollama_engine, vllm_engine
from core.translate.anthropic_dialect import parse_messages

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'agents' / 'claude-code'
RECORDINGS = sorted(FIXTURES.glob('*.json'))


def recording(name: str) -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads((FIXTURES / f'{name}.json').read_text())
    return recorded


def message_calls(name: str) -> list[dict[str, Any]]:
    return [r for r in recording(name)['requests'] if r['method'] == 'POST' and r['path'].startswith('/v1/messages')]


def test_both_recordings_exist() -> None:
    assert [p.stem for p in RECORDINGS] == ['plain-turn', 'tool-round-trip']


@pytest.mark.parametrize('name', ['plain-turn', 'tool-round-trip'])
def test_claude_code_calls_only_the_messages_route(name: str) -> None:
    """No model list, no HEAD probe, no count_tokens: one streamed POST /v1/messages?beta=true per turn."""
    requests = recording(name)['requests']
    assert requests and all((r['method'], r['path']) == ('POST', '/v1/messages?beta=true') for r in requests)
    for r in requests:
        headers = r['headers']
        assert 'authorization' not in headers and 'x-api-key' not in headers  # secrets never recorded
        assert headers['anthropic-version'] == '2023-06-01'
        assert 'claude-code-20250219' in headers['anthropic-beta'].split(',')


@pytest.mark.parametrize('name', ['plain-turn', 'tool-round-trip'])
def test_the_recorded_shape_is_the_one_the_dialect_handles(name: str) -> None:
    """The fields the gateway had to learn for Claude Code are still there (or this test is stale)."""
    for r in message_calls(name):
        body = r['body']
        assert body['stream'] is True
        assert body['thinking']['type'] == 'adaptive'
        assert body['output_config']['effort'] in ('low', 'medium', 'high', 'xhigh', 'max')
        assert 'context_management' in body and 'user_id' in body['metadata']
        assert any('cache_control' in block for block in body['system'])
        assert any(m['role'] == 'system' for m in body['messages'][1:])
        assert len(body['tools']) >= 10 and {'Bash', 'Read', 'Edit', 'Write'} <= {t['name'] for t in body['tools']}


@pytest.mark.parametrize('name', ['plain-turn', 'tool-round-trip'])
def test_every_recorded_request_translates_to_both_engines(name: str) -> None:
    for r in message_calls(name):
        body = r['body']
        req = parse_messages(body)
        system_turns = [m for m in body['messages'] if m['role'] == 'system']
        assert req.messages[0].role == 'system'
        assert [m.role for m in req.messages[1:]].count('system') == 0  # folded into the one system prompt
        for turn in system_turns:
            text = turn['content'] if isinstance(turn['content'], str) else turn['content'][0]['text']
            assert text in req.messages[0].content
        assert body['system'][-1]['text'] in req.messages[0].content
        assert (req.model, req.stream, req.max_tokens) == ('llama3.2', True, body['max_tokens'])
        assert req.think == body['output_config']['effort']
        assert req.tools is not None and len(req.tools) == len(body['tools'])
        _, vllm = vllm_engine.chat_request(req)
        assert vllm['messages'][0]['role'] == 'system' and len(vllm['tools']) == len(body['tools'])
        _, ollama = ollama_engine.chat_request(req)
        assert ollama['messages'][0]['role'] == 'system' and len(ollama['tools']) == len(body['tools'])


def test_the_tool_result_comes_back_as_a_tool_message() -> None:
    first, second = message_calls('tool-round-trip')
    req = parse_messages(second['body'])
    call = next(m for m in req.messages if m.tool_calls)
    assert [(c.name, json.loads(c.arguments)) for c in call.tool_calls] == [
        ('Read', {'file_path': '/work/project/notes.txt'})]
    answer = req.messages[-1]
    assert (answer.role, answer.tool_call_id) == ('tool', call.tool_calls[0].id)
    assert 'The secret word is pineapple.' in answer.content
    assert len(parse_messages(first['body']).messages) + 2 == len(req.messages)
