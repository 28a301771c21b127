"""What the pinned Codex CLI really sends (tests/fixtures/agents/codex/, recorded by
tools/record_codex_requests.py) parses and translates to both engines, so a Codex release that changes its
request shape is caught here first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.translate import ollama_engine, vllm_engine
from core.translate.responses_dialect import ResponsesRequest, conversation, parse_request

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'agents' / 'codex'


def _recorded(name: str) -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads((FIXTURES / f'{name}.json').read_text())
    return recorded


def _parsed(name: str) -> tuple[dict[str, Any], ResponsesRequest]:
    body = _recorded(name)['body']
    req = parse_request(body)
    conversation(req, [])
    return body, req


@pytest.mark.parametrize('name', ['turn', 'tool_result'])
def test_a_codex_request_parses_with_every_function_tool_it_offers(name: str) -> None:
    recorded = _recorded(name)
    assert recorded['path'] == '/v1/responses' and recorded['headers']['accept'] == 'text/event-stream'
    body, req = _parsed(name)
    assert req.chat.stream and req.store is False and req.chat.model == body['model']
    offered = [t['name'] for t in body['tools'] if t['type'] == 'function']
    assert [t['function']['name'] for t in req.chat.tools or []] == offered
    assert 'exec_command' in offered  # the shell tool the real-CLI round trip asks for
    assert {t['type'] for t in body['tools']} - {'function'}, 'Codex also offers non-function tools (left out)'
    roles = [m.role for m in req.chat.messages]
    assert roles[0] == 'system' and 'user' in roles  # developer instructions become system messages
    assert req.chat.messages[0].content.startswith('You are a coding agent running in the Codex CLI')


def test_the_tool_result_request_answers_the_call_it_replays() -> None:
    _, req = _parsed('tool_result')
    *_, call_turn, result = req.chat.messages
    assert call_turn.role == 'assistant' and [c.name for c in call_turn.tool_calls] == ['exec_command']
    assert json.loads(call_turn.tool_calls[0].arguments) == {'cmd': 'cat marker.txt'}
    assert result.role == 'tool' and result.tool_call_id == call_turn.tool_calls[0].id
    assert 'the marker is 42' in result.content


@pytest.mark.parametrize('name', ['turn', 'tool_result'])
def test_codex_requests_translate_to_both_engines(name: str) -> None:
    _, req = _parsed(name)
    path, vllm = vllm_engine.chat_request(req.chat)
    assert path == '/v1/chat/completions' and vllm['stream'] is True
    assert 'exec_command' in [t['function']['name'] for t in vllm['tools']]
    path, ollama = ollama_engine.chat_request(req.chat)
    assert path == '/api/chat' and 'exec_command' in [t['function']['name'] for t in ollama['tools']]
    if name == 'tool_result':
        assert vllm['messages'][-1]['role'] == 'tool' and vllm['messages'][-2]['tool_calls']
        assert ollama['messages'][-1]['role'] == 'tool' and ollama['messages'][-2]['tool_calls']
