"""Golden chunk sequences: every streaming translation cell, engine x feature x client dialect.

Each engine recording (tests/unit/translate/recordings.py) is parsed the way the gateway reads an engine
(however the socket cuts it), relayed through the client dialect's encoder the way app/inference.py `_relay`
writes it, and the exact bytes are compared with `golden/<engine>-<feature>-<dialect>.txt`. Then the official
SDK of that dialect reads the same bytes and must see the answer: text, reasoning, tool calls with their
arguments, finish reason, usage, or (engine_error) the text so far and then an exception.

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/translate/test_golden_streams.py    rewrites the golden files
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import ollama
import openai
import pytest

from core.translate.anthropic_stream import AnthropicMessagesEncoder
from core.translate.canonical import ChatRequest, Delta, Usage
from core.translate.engine_errors import EngineStreamError
from core.translate.ollama_engine import OllamaStreamParser
from core.translate.ollama_stream import OllamaChatEncoder
from core.translate.openai_stream import OpenAIChatEncoder
from core.translate.streaming import StreamEncoder, StreamParser, StreamTally
from core.translate.vllm_engine import VllmStreamParser
from tests.unit.translate import recordings as rec
from tests.unit.translate.sdk import anthropic_client, ollama_client, openai_client

GOLDEN = Path(__file__).parent / 'golden'
ENGINES = ('vllm', 'ollama')
FEATURES = ('text', 'reasoning', 'think_tags', 'tool_call', 'parallel_tool_calls', 'reasoning_then_tool', 'length',
            'engine_error', 'forced_tool')
DIALECTS = ('openai', 'anthropic', 'ollama')

# Every (engine, feature) exists. forced_tool is an emulation on Ollama (`format`, then the JSON answer becomes
# the call) and native on vLLM (a named tool_choice streams argument fragments and finishes with "stop"): two
# different wire formats the gateway must both turn into a tool call, so neither cell is skipped.
RECORDINGS: dict[tuple[str, str], bytes] = {
    ('vllm', 'text'): rec.VLLM_TEXT,
    ('vllm', 'reasoning'): rec.VLLM_CHAT,
    ('vllm', 'think_tags'): rec.VLLM_THINK_TAGS,
    ('vllm', 'tool_call'): rec.VLLM_TOOL_CALL,
    ('vllm', 'parallel_tool_calls'): rec.VLLM_PARALLEL_TOOLS,
    ('vllm', 'reasoning_then_tool'): rec.VLLM_REASONING_TOOL,
    ('vllm', 'length'): rec.VLLM_LENGTH,
    ('vllm', 'engine_error'): rec.VLLM_ENGINE_ERROR,
    ('vllm', 'forced_tool'): rec.VLLM_FORCED_TOOL,
    ('ollama', 'text'): rec.OLLAMA_TEXT,
    ('ollama', 'reasoning'): rec.OLLAMA_CHAT,
    ('ollama', 'think_tags'): rec.OLLAMA_THINK_TAGS,
    ('ollama', 'tool_call'): rec.OLLAMA_TOOL_CALL,
    ('ollama', 'parallel_tool_calls'): rec.OLLAMA_PARALLEL_TOOLS,
    ('ollama', 'reasoning_then_tool'): rec.OLLAMA_REASONING_TOOL,
    ('ollama', 'length'): rec.OLLAMA_LENGTH,
    ('ollama', 'engine_error'): rec.OLLAMA_ENGINE_ERROR,
    ('ollama', 'forced_tool'): rec.OLLAMA_FORCED_TOOL,
}
PAIRS = [pytest.param(e, f, id=f'{e}-{f}') for e in ENGINES for f in FEATURES]
CELLS = [pytest.param(e, f, d, id=f'{e}-{f}-{d}') for e in ENGINES for f in FEATURES for d in DIALECTS]

MODEL = {'vllm': 'Qwen/Qwen3-8B', 'ollama': 'qwen3:8b'}
PARSER: dict[str, type[VllmStreamParser] | type[OllamaStreamParser]] = {
    'vllm': VllmStreamParser, 'ollama': OllamaStreamParser}
ENGINE_ERROR = {'vllm': 'EngineCore encountered an issue. See stack trace (above) for the root cause.',
                'ollama': 'an error was encountered while running the model: CUDA error: out of memory'}
TOOL_ID_PREFIX = {'vllm': 'chatcmpl-tool-', 'ollama': 'call_req42_'}  # Ollama gives none: the gateway makes them
T0 = 1760000000_000000000  # the Ollama encoder's wall clock: 2025-10-09T08:53:20Z, fixed


def _tool(name: str, param: str) -> dict[str, Any]:
    return {'type': 'function', 'function': {'name': name, 'parameters': {
        'type': 'object', 'properties': {param: {'type': 'string'}}, 'required': [param]}}}


TOOLS = [_tool('get_weather', 'city'), _tool('get_time', 'tz')]
TOOL_FEATURES = {'tool_call', 'parallel_tool_calls', 'reasoning_then_tool', 'forced_tool'}


@dataclass(slots=True)
class Seen:
    """What a user of a client SDK sees. finish is canonical (stop | tool_calls | length) in EXPECT."""

    text: str = ''
    reasoning: str = ''
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, parsed arguments)
    finish: str | None = None
    usage: tuple[int, int] | None = None  # (prompt, completion)
    tool_ids: list[str] = field(default_factory=list)
    error: Exception | None = None


WEATHER = ('get_weather', {'city': 'Paris'})
EXPECT: dict[str, Seen] = {  # the same for both engines: their recordings of a feature say the same thing
    'text': Seen(text='Paris is the capital of France — café ☕.', finish='stop', usage=(14, 9)),
    'reasoning': Seen(text='café ☕', reasoning='User wants coffee.', finish='stop', usage=(12, 28)),
    'think_tags': Seen(text='Paris.', reasoning='\nCapital of France?\n', finish='stop', usage=(16, 12)),
    'tool_call': Seen(tools=[WEATHER], finish='tool_calls', usage=(95, 21)),
    'parallel_tool_calls': Seen(tools=[WEATHER, ('get_time', {'tz': 'Europe/Paris'})], finish='tool_calls',
                                usage=(120, 44)),
    'reasoning_then_tool': Seen(reasoning='The user wants the weather in Paris.', tools=[WEATHER],
                                finish='tool_calls', usage=(95, 30)),
    'length': Seen(text='Once upon a time, in a', finish='length', usage=(9, 7)),
    'engine_error': Seen(text='The answer is'),  # and then the SDK raises
    'forced_tool': Seen(tools=[WEATHER], finish='tool_calls', usage=(60, 8)),
}
FINISH = {  # canonical finish reason -> what each dialect calls it
    'openai': {'stop': 'stop', 'tool_calls': 'tool_calls', 'length': 'length'},
    'anthropic': {'stop': 'end_turn', 'tool_calls': 'tool_use', 'length': 'max_tokens'},
    'ollama': {'stop': 'stop', 'tool_calls': 'stop', 'length': 'length'},
}
SDK_ERROR: dict[str, type[Exception]] = {
    'openai': openai.APIError, 'anthropic': anthropic.APIError, 'ollama': ollama.ResponseError}


# ---------------------------------------------------------------- driving: engine bytes -> client bytes

def request(engine: str, feature: str) -> ChatRequest:
    return ChatRequest(model=MODEL[engine], request_id='req42', stream=True, include_usage=True,
                       tools=TOOLS if feature in TOOL_FEATURES else None,
                       tool_choice={'type': 'function', 'function': {'name': 'get_weather'}}
                       if feature == 'forced_tool' else None)


@dataclass(slots=True)
class Parsed:
    deltas: list[Delta]
    error: str | None  # the engine's mid-stream error, after the deltas
    done: bool


def parse(engine: str, feature: str, pieces: list[bytes]) -> Parsed:
    """core/gateway/service.py UpstreamStream.batches: feed each read; an EngineStreamError's own deltas go
    out before the error."""
    parser: StreamParser = PARSER[engine](request(engine, feature))
    deltas: list[Delta] = []
    try:
        for piece in pieces:
            deltas.extend(parser.feed(piece))
    except EngineStreamError as exc:
        return Parsed(deltas + exc.deltas, exc.message, parser.done)
    return Parsed(deltas, None, parser.done)


def encoder(dialect: str, engine: str, feature: str) -> StreamEncoder:
    req, model = request(engine, feature), MODEL[engine]
    if dialect == 'openai':
        return OpenAIChatEncoder(req, request_id='req42', model=model, created=1760000000)
    if dialect == 'anthropic':
        return AnthropicMessagesEncoder(req, request_id='req42', model=model, input_tokens=7)
    perf = itertools.count(1_000_000, 1_000_000)  # 1 ms further at each reading
    return OllamaChatEncoder(req, model=model, started_ns=0, wall_clock=lambda: T0, perf_clock=lambda: next(perf))


def relay(parsed: Parsed, enc: StreamEncoder) -> bytes:
    """app/inference.py `_relay`: start, each delta, then the clean end once the engine said it was done, or
    the dialect's error (the engine's error, or a stream that stopped short)."""
    tally = StreamTally()
    out = [enc.start()]
    for d in parsed.deltas:
        tally.observe(d)
        out.append(enc.delta(d))
    if parsed.error is not None:
        out.append(enc.error(parsed.error))
    elif parsed.done:
        out.append(enc.end(tally.finish_reason or 'stop', tally.usage or Usage()))
    else:
        out.append(enc.error('the backend ended the stream before the answer was complete'))
    return b''.join(out)


def gateway_bytes(engine: str, feature: str, dialect: str) -> bytes:
    parsed = parse(engine, feature, [RECORDINGS[engine, feature]])
    return relay(parsed, encoder(dialect, engine, feature))


# ---------------------------------------------------------------- the official SDKs reading client bytes

MESSAGES: list[Any] = [{'role': 'user', 'content': 'Weather in Paris?'}]


def read_openai(body: bytes) -> Seen:
    seen, calls = Seen(), dict[int, dict[str, str]]()
    with openai_client(body) as client:
        try:
            for chunk in client.chat.completions.create(model='m', messages=MESSAGES, stream=True):
                if chunk.usage is not None:
                    seen.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    seen.text += choice.delta.content or ''
                    seen.reasoning += (choice.delta.model_extra or {}).get('reasoning_content') or ''
                    for tc in choice.delta.tool_calls or []:
                        call = calls.setdefault(tc.index, {'id': '', 'name': '', 'arguments': ''})
                        call['id'] = tc.id or call['id']
                        if tc.function is not None:
                            call['name'] = tc.function.name or call['name']
                            call['arguments'] += tc.function.arguments or ''
                    seen.finish = choice.finish_reason or seen.finish
        except openai.APIError as exc:
            seen.error = exc
    ordered = [calls[i] for i in sorted(calls)]
    seen.tools = [(c['name'], json.loads(c['arguments'])) for c in ordered]
    seen.tool_ids = [c['id'] for c in ordered]
    return seen


def read_anthropic(body: bytes) -> Seen:
    seen = Seen()
    with anthropic_client(body) as client, client.messages.stream(model='m', max_tokens=100,
                                                                  messages=MESSAGES) as stream:
        try:
            for event in stream:
                if event.type == 'text':
                    seen.text += event.text
            message = stream.get_final_message()
        except anthropic.APIError as exc:
            seen.error = exc
            return seen
    seen.text = ''.join(b.text for b in message.content if b.type == 'text')
    seen.reasoning = ''.join(b.thinking for b in message.content if b.type == 'thinking')
    seen.tools = [(b.name, b.input) for b in message.content if b.type == 'tool_use']
    seen.tool_ids = [b.id for b in message.content if b.type == 'tool_use']
    seen.finish = message.stop_reason
    seen.usage = (message.usage.input_tokens, message.usage.output_tokens)
    return seen


def read_ollama(body: bytes) -> Seen:
    seen = Seen()
    with ollama_client(body) as client:
        try:
            for part in client.chat(model='m', messages=MESSAGES, stream=True):
                seen.text += part.message.content or ''
                seen.reasoning += part.message.thinking or ''
                seen.tools += [(tc.function.name, dict(tc.function.arguments)) for tc in part.message.tool_calls or []]
                if part.done:
                    seen.finish = part.done_reason
                    seen.usage = (part.prompt_eval_count or 0, part.eval_count or 0)
        except ollama.ResponseError as exc:
            seen.error = exc
    return seen  # the SDK keeps no tool-call ids: the golden files show them


READ = {'openai': read_openai, 'anthropic': read_anthropic, 'ollama': read_ollama}


# ---------------------------------------------------------------- tests

def test_the_matrix_is_complete() -> None:
    assert set(RECORDINGS) == set(itertools.product(ENGINES, FEATURES))
    if os.environ.get('UPDATE_GOLDEN') != '1':
        cells = {f'{e}-{f}-{d}.txt' for e, f, d in itertools.product(ENGINES, FEATURES, DIALECTS)}
        assert {p.name for p in GOLDEN.iterdir()} == cells  # one file per cell, none left over


@pytest.mark.parametrize(('engine', 'feature'), PAIRS)
def test_every_cut_of_the_engine_stream_parses_to_the_same_deltas(engine: str, feature: str) -> None:
    recording = RECORDINGS[engine, feature]
    whole = parse(engine, feature, [recording])
    assert whole.deltas and whole.done == (feature != 'engine_error')
    assert (whole.error is not None) == (feature == 'engine_error')
    for pieces in rec.cuts(recording):
        assert parse(engine, feature, pieces) == whole, [len(p) for p in pieces]


@pytest.mark.parametrize(('engine', 'feature', 'dialect'), CELLS)
def test_the_client_gets_the_golden_bytes(engine: str, feature: str, dialect: str) -> None:
    out = gateway_bytes(engine, feature, dialect)
    path = GOLDEN / f'{engine}-{feature}-{dialect}.txt'
    if os.environ.get('UPDATE_GOLDEN') == '1':
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(out)
        return
    assert path.exists(), f'{path.name} is missing: run with UPDATE_GOLDEN=1, then read it'
    assert out.decode() == path.read_text(encoding='utf-8')  # a readable diff first
    assert out == path.read_bytes()


@pytest.mark.parametrize(('engine', 'feature', 'dialect'), CELLS)
def test_the_official_sdk_sees_the_answer(engine: str, feature: str, dialect: str) -> None:
    seen = READ[dialect](gateway_bytes(engine, feature, dialect))  # the golden bytes (test above)
    want = EXPECT[feature]

    assert (seen.text, seen.reasoning) == (want.text, want.reasoning)
    if feature == 'engine_error':
        assert isinstance(seen.error, SDK_ERROR[dialect]), seen.error
        assert ENGINE_ERROR[engine] in str(seen.error)
        return
    assert seen.error is None
    assert seen.tools == want.tools
    assert seen.finish == FINISH[dialect][want.finish or 'stop']
    assert seen.usage == want.usage
    if dialect != 'ollama':
        assert len(seen.tool_ids) == len(set(seen.tool_ids)) == len(want.tools)
        assert all(i.startswith(TOOL_ID_PREFIX[engine]) for i in seen.tool_ids), seen.tool_ids
