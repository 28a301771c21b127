"""The Responses dialect's column of the golden stream matrix (tests/unit/translate/test_golden_streams.py):
each engine recording, parsed however the socket cuts it, relayed through the Responses encoder the way
app/inference.py writes it, compared byte for byte with `golden_responses/<engine>-<feature>.txt`, then read by
the official openai SDK's `responses.create(stream=True)`, which must see the same answer as every other
dialect's client.

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/translate/test_golden_responses.py    rewrites the golden files
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from core.translate.responses_dialect import ResponsesRequest, conversation, parse_request
from core.translate.responses_stream import ResponsesStreamEncoder
from tests.unit.translate.sdk import openai_client
from tests.unit.translate.test_golden_streams import (
    ENGINE_ERROR,
    ENGINES,
    EXPECT,
    FEATURES,
    MODEL,
    PAIRS,
    RECORDINGS,
    TOOL_FEATURES,
    TOOL_ID_PREFIX,
    Seen,
    parse,
    relay,
)

GOLDEN = Path(__file__).parent / 'golden_responses'
FINISH = {'stop': 'response.completed', 'tool_calls': 'response.completed', 'length': 'response.incomplete'}


def _tool(name: str, param: str) -> dict[str, Any]:
    return {'type': 'function', 'name': name,
            'parameters': {'type': 'object', 'properties': {param: {'type': 'string'}}, 'required': [param]}}


def responses_request(engine: str, feature: str) -> ResponsesRequest:
    body: dict[str, Any] = {'model': MODEL[engine], 'input': 'Weather in Paris?', 'stream': True}
    if feature in TOOL_FEATURES:
        body['tools'] = [_tool('get_weather', 'city'), _tool('get_time', 'tz')]
    if feature == 'forced_tool':
        body['tool_choice'] = {'type': 'function', 'name': 'get_weather'}
    req = parse_request(body)
    conversation(req, [])
    return req


def gateway_bytes(engine: str, feature: str) -> bytes:
    parsed = parse(engine, feature, [RECORDINGS[engine, feature]])
    return relay(parsed, ResponsesStreamEncoder(responses_request(engine, feature), response_id='resp_req42',
                                                created=1760000000, clock=lambda: 1760000001))


def read_responses(body: bytes) -> tuple[Seen, str]:
    """What the SDK's event stream shows, and the last event's type."""
    seen, last = Seen(), ''
    with openai_client(body) as client:
        for event in client.responses.create(model='m', input='Weather in Paris?', stream=True):
            last = event.type
            if event.type == 'response.output_text.delta':
                seen.text += event.delta
            elif event.type == 'response.reasoning_summary_text.delta':
                seen.reasoning += event.delta
            elif event.type == 'response.output_item.done' and event.item.type == 'function_call':
                seen.tools.append((event.item.name, json.loads(event.item.arguments)))
                seen.tool_ids.append(event.item.call_id)
            elif event.type in ('response.completed', 'response.incomplete'):
                usage = event.response.usage
                assert usage is not None
                seen.usage = (usage.input_tokens, usage.output_tokens)
                final_calls = [(i.name, json.loads(i.arguments)) for i in event.response.output
                               if i.type == 'function_call']
                assert final_calls == seen.tools  # the whole response repeats what streamed
            elif event.type == 'error':
                seen.error = RuntimeError(event.message)
    return seen, last


def test_one_golden_file_per_cell() -> None:
    if os.environ.get('UPDATE_GOLDEN') != '1':
        assert {p.name for p in GOLDEN.iterdir()} == {f'{e}-{f}.txt' for e in ENGINES for f in FEATURES}


@pytest.mark.parametrize(('engine', 'feature'), PAIRS)
def test_the_client_gets_the_golden_bytes(engine: str, feature: str) -> None:
    out = gateway_bytes(engine, feature)
    path = GOLDEN / f'{engine}-{feature}.txt'
    if os.environ.get('UPDATE_GOLDEN') == '1':
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(out)
        return
    assert path.exists(), f'{path.name} is missing: run with UPDATE_GOLDEN=1, then read it'
    assert out.decode() == path.read_text(encoding='utf-8')
    assert out == path.read_bytes()


@pytest.mark.parametrize(('engine', 'feature'), PAIRS)
def test_the_official_sdk_sees_the_answer(engine: str, feature: str) -> None:
    seen, last = read_responses(gateway_bytes(engine, feature))
    want = EXPECT[feature]
    assert (seen.text, seen.reasoning) == (want.text, want.reasoning)
    if feature == 'engine_error':
        assert last == 'response.failed' and ENGINE_ERROR[engine] in str(seen.error)
        return
    assert seen.error is None
    assert seen.tools == want.tools
    assert last == FINISH[want.finish or 'stop']
    assert seen.usage == want.usage
    assert len(seen.tool_ids) == len(set(seen.tool_ids)) == len(want.tools)
    assert all(i.startswith(TOOL_ID_PREFIX[engine]) for i in seen.tool_ids), seen.tool_ids
