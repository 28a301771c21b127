"""The conformance matrix (docs/compatibility.md): feature x client dialect x engine x stream, each cell driven
by the official openai, anthropic and ollama clients against a real `mindrouter serve` process with simulated
engines as real processes. The engines answer deterministically (sim/README.md), so every cell asserts the
exact text, reasoning, tool calls and finish reason a user sees.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import jsonschema
import ollama
import openai
import pytest

from sim.text import expected_text, expected_thinking, vision_seed_text
from tests.e2e.cluster import Cluster, running_cluster
from tests.e2e.images import PNG_BASE64, serving_png

TOKENS = 12
THINKING_TOKENS = 8
OLLAMA_MODELS = 'llama3.2,qwen3:0.6b,llava:7b,nomic-embed-text'
VLLM_MODELS = ('meta-llama/Llama-3.2-1B-Instruct,Qwen/Qwen3-8B,Qwen/Qwen2.5-VL-7B-Instruct,BAAI/bge-small-en-v1.5,'
               'BAAI/bge-reranker-v2-m3')
CHAT = {'ollama': 'llama3.2', 'vllm': 'meta-llama/Llama-3.2-1B-Instruct'}
THINKER = {'ollama': 'qwen3:0.6b', 'vllm': 'Qwen/Qwen3-8B'}
VISION = {'ollama': 'llava:7b', 'vllm': 'Qwen/Qwen2.5-VL-7B-Instruct'}
EMBEDDER = {'ollama': 'nomic-embed-text', 'vllm': 'BAAI/bge-small-en-v1.5'}
RERANKER = 'BAAI/bge-reranker-v2-m3'

WEATHER_SCHEMA = {'type': 'object', 'properties': {'location': {'type': 'string'}}, 'required': ['location']}
CITY_SCHEMA = {'type': 'object', 'properties': {'city': {'type': 'string'}, 'population': {'type': 'integer'}},
               'required': ['city', 'population'], 'additionalProperties': False}

DIALECTS = pytest.mark.parametrize('dialect', ['openai', 'anthropic', 'ollama'])
ENGINES = pytest.mark.parametrize('engine', ['ollama', 'vllm'])
STREAMING = pytest.mark.parametrize('stream', [False, True], ids=['whole', 'stream'])


@pytest.fixture(scope='module')
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    engines = {'sim-ollama': ('ollama', ['--models', OLLAMA_MODELS, '--tokens', str(TOKENS)]),
               'sim-vllm': ('vllm', ['--models', VLLM_MODELS, '--tokens', str(TOKENS)])}
    with running_cluster(tmp_path_factory.mktemp('conformance'), engines,
                         settings={'IMAGE_FETCH_ALLOWED_HOSTS': '127.0.0.1'}, unlimited=True) as cluster:
        yield cluster


@dataclass
class Answer:
    """What a user of any dialect sees, in one shape: text, reasoning, tool calls, how it ended."""

    text: str = ''
    reasoning: str = ''
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)
    finish: str = ''  # normalised: stop | length | tool


@dataclass
class Turn:
    """A conversation step in neutral terms, written out in each dialect by `Client.ask`."""

    user: str | None  # None: no new user message (the history ends with tool results)
    tools: bool = False
    tool_choice: str | None = None  # a tool name to force
    history: list[dict[str, Any]] = field(default_factory=list)  # dialect-native earlier messages
    think: bool | None = None
    schema: dict[str, Any] | None = None
    images: list[str] = field(default_factory=list)  # base64 PNGs or http(s) URLs


class Client:
    """One official SDK, asked a `Turn`, answering an `Answer`; `reply_with_results` writes the tool results."""

    def __init__(self, cluster: Cluster, dialect: str) -> None:
        self.dialect = dialect
        self.openai = openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key, max_retries=0)
        self.anthropic = anthropic.Anthropic(base_url=f'{cluster.url}/anthropic', api_key=cluster.key, max_retries=0)
        self.ollama = ollama.Client(host=cluster.url, headers={'Authorization': f'Bearer {cluster.key}'})

    def close(self) -> None:
        self.openai.close()
        self.anthropic.close()
        self.ollama.close()  # type: ignore[no-untyped-call]

    def ask(self, model: str, turn: Turn, *, stream: bool) -> Answer:
        return {'openai': self._openai, 'anthropic': self._anthropic, 'ollama': self._ollama}[self.dialect](
            model, turn, stream)

    # ------------------------------------------------------------------ OpenAI
    def _openai(self, model: str, turn: Turn, stream: bool) -> Answer:
        content: Any = turn.user
        if turn.images:
            content = [{'type': 'text', 'text': turn.user}] + [
                {'type': 'image_url', 'image_url': {'url': i if i.startswith('http') else f'data:image/png;base64,{i}'}}
                for i in turn.images]
        kwargs: dict[str, Any] = {'model': model, 'messages': _messages(turn, content)}
        if turn.tools:
            kwargs['tools'] = [{'type': 'function', 'function': {'name': 'get_weather', 'parameters': WEATHER_SCHEMA}}]
        if turn.tool_choice:
            kwargs['tool_choice'] = {'type': 'function', 'function': {'name': turn.tool_choice}}
        if turn.think is not None:
            kwargs['reasoning_effort'] = 'medium' if turn.think else 'none'
        if turn.schema:
            kwargs['response_format'] = {'type': 'json_schema', 'json_schema': {'name': 'city', 'schema': turn.schema}}
        answer = Answer()
        if not stream:
            done = self.openai.chat.completions.create(**kwargs)
            message = done.choices[0].message
            answer.text, answer.reasoning = message.content or '', getattr(message, 'reasoning_content', None) or ''
            for call in message.tool_calls or []:
                answer.calls.append((call.function.name, json.loads(call.function.arguments)))  # type: ignore[union-attr]
                answer.call_ids.append(call.id)
            answer.finish = _finish(done.choices[0].finish_reason)
            return answer
        pending: dict[int, list[str]] = {}
        for chunk in self.openai.chat.completions.create(**kwargs, stream=True):
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            answer.text += delta.content or ''
            answer.reasoning += getattr(delta, 'reasoning_content', None) or ''
            for fragment in delta.tool_calls or []:
                entry = pending.setdefault(fragment.index, ['', '', ''])
                if fragment.id:
                    entry[0] = fragment.id
                if fragment.function and fragment.function.name:
                    entry[1] = fragment.function.name
                entry[2] += (fragment.function.arguments or '') if fragment.function else ''
            if chunk.choices[0].finish_reason:
                answer.finish = _finish(chunk.choices[0].finish_reason)
        for index in sorted(pending):
            call_id, name, arguments = pending[index]
            answer.calls.append((name, json.loads(arguments)))
            answer.call_ids.append(call_id)
        return answer

    # ------------------------------------------------------------------ Anthropic
    def _anthropic(self, model: str, turn: Turn, stream: bool) -> Answer:
        content: Any = turn.user
        if turn.images:
            content = [{'type': 'text', 'text': turn.user}] + [
                {'type': 'image', 'source': {'type': 'url', 'url': i} if i.startswith('http') else
                 {'type': 'base64', 'media_type': 'image/png', 'data': i}} for i in turn.images]
        kwargs: dict[str, Any] = {'model': model, 'max_tokens': 1000, 'messages': _messages(turn, content)}
        if turn.tools:
            kwargs['tools'] = [{'name': 'get_weather', 'input_schema': WEATHER_SCHEMA}]
        if turn.tool_choice:
            kwargs['tool_choice'] = {'type': 'tool', 'name': turn.tool_choice}
        if turn.think is not None:
            kwargs['thinking'] = {'type': 'enabled', 'budget_tokens': 1024} if turn.think else {'type': 'disabled'}
        if turn.schema:
            kwargs['extra_body'] = {'output_format': {'type': 'json_schema', 'schema': turn.schema}}
        if stream:
            with self.anthropic.messages.stream(**kwargs) as events:
                message = events.get_final_message()
        else:
            message = self.anthropic.messages.create(**kwargs)
        answer = Answer(finish=_finish(message.stop_reason or ''))
        for block in message.content:
            if block.type == 'text':
                answer.text += block.text
            elif block.type == 'thinking':
                answer.reasoning += block.thinking
            elif block.type == 'tool_use':
                answer.calls.append((block.name, dict(block.input)))  # type: ignore[call-overload]
                answer.call_ids.append(block.id)
        return answer

    # ------------------------------------------------------------------ Ollama
    def _ollama(self, model: str, turn: Turn, stream: bool) -> Answer:
        kwargs: dict[str, Any] = {'model': model, 'messages': _messages(turn, turn.user)}
        if turn.images:
            kwargs['messages'][-1]['images'] = turn.images
        if turn.tools:
            kwargs['tools'] = [{'type': 'function', 'function': {'name': 'get_weather', 'parameters': WEATHER_SCHEMA}}]
        if turn.think is not None:
            kwargs['think'] = turn.think
        if turn.schema:
            kwargs['format'] = turn.schema
        answer = Answer()
        parts = list(self.ollama.chat(**kwargs, stream=True)) if stream else [self.ollama.chat(**kwargs)]
        for part in parts:
            answer.text += part.message.content or ''
            answer.reasoning += part.message.thinking or ''
            for call in part.message.tool_calls or []:
                answer.calls.append((call.function.name, dict(call.function.arguments)))
        answer.finish = 'tool' if answer.calls else _finish(parts[-1].done_reason or '')
        return answer

    def reply_with_results(self, turn: Turn, answer: Answer, results: list[str]) -> list[dict[str, Any]]:
        """The history after `answer`'s tool calls and their results, in this dialect."""
        user = {'role': 'user', 'content': turn.user}
        if self.dialect == 'openai':
            calls = [{'id': i, 'type': 'function', 'function': {'name': n, 'arguments': json.dumps(a)}}
                     for i, (n, a) in zip(answer.call_ids, answer.calls, strict=True)]
            return [user, {'role': 'assistant', 'content': None, 'tool_calls': calls},
                    *({'role': 'tool', 'tool_call_id': i, 'content': r}
                      for i, r in zip(answer.call_ids, results, strict=True))]
        if self.dialect == 'anthropic':
            uses = [{'type': 'tool_use', 'id': i, 'name': n, 'input': a}
                    for i, (n, a) in zip(answer.call_ids, answer.calls, strict=True)]
            return [user, {'role': 'assistant', 'content': uses},
                    {'role': 'user', 'content': [{'type': 'tool_result', 'tool_use_id': i, 'content': r}
                                                 for i, r in zip(answer.call_ids, results, strict=True)]}]
        calls = [{'function': {'name': n, 'arguments': a}} for n, a in answer.calls]
        return [user, {'role': 'assistant', 'content': '', 'tool_calls': calls},
                *({'role': 'tool', 'tool_name': name, 'content': result}
                  for (name, _), result in zip(answer.calls, results, strict=True))]


def _messages(turn: Turn, content: Any) -> list[dict[str, Any]]:
    return [*turn.history, *([{'role': 'user', 'content': content}] if turn.user is not None else [])]


def _finish(reason: str) -> str:
    return {'tool_calls': 'tool', 'tool_use': 'tool', 'max_tokens': 'length', 'end_turn': 'stop'}.get(reason, reason)


@pytest.fixture(params=['openai', 'anthropic', 'ollama'])
def client(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[Client]:
    made = Client(cluster, request.param)
    yield made
    made.close()


# ---------------------------------------------------------------- tool calling

@ENGINES
@STREAMING
def test_parallel_tool_calls_and_their_results_round_trip(client: Client, engine: str, stream: bool) -> None:
    turn = Turn(user="What's the weather in Paris and in Tokyo?", tools=True)
    answer = client.ask(CHAT[engine], turn, stream=stream)
    assert answer.calls == [('get_weather', {'location': 'Paris'}), ('get_weather', {'location': 'Tokyo'})]
    assert answer.finish == 'tool' and answer.text == ''
    if client.dialect != 'ollama':  # the Ollama client drops ids; the others must get distinct ones
        assert len(set(answer.call_ids)) == 2 and all(answer.call_ids)

    results = ['Sunny, 21 °C', 'Rain, 14 °C']
    history = client.reply_with_results(turn, answer, results)
    final = client.ask(CHAT[engine], Turn(user=None, tools=True, history=history), stream=stream)
    # the engine saw the tool results last (else it would have called the tools again) and answers from them
    assert final.calls == [] and final.finish == 'stop'
    assert final.text == expected_text(results[-1], TOKENS)


@ENGINES
@STREAMING
def test_a_forced_tool_is_called_with_arguments_that_fit_its_schema(client: Client, engine: str,
                                                                     stream: bool) -> None:
    if client.dialect == 'ollama':
        pytest.skip("Ollama's API has no tool_choice: a client cannot force a tool")
    answer = client.ask(CHAT[engine], Turn(user='Tell me something.', tools=True, tool_choice='get_weather'),
                        stream=stream)
    assert [name for name, _ in answer.calls] == ['get_weather'] and answer.finish == 'tool'
    jsonschema.validate(answer.calls[0][1], WEATHER_SCHEMA)  # vLLM: guided; Ollama: emulated with `format`


# ---------------------------------------------------------------- thinking

@ENGINES
@STREAMING
def test_thinking_when_asked_and_not_by_default(client: Client, engine: str, stream: bool) -> None:
    prompt = 'Why is the sky blue?'
    thought = client.ask(THINKER[engine], Turn(user=prompt, think=True), stream=stream)
    assert thought.reasoning == expected_thinking(prompt, THINKING_TOKENS)
    assert thought.text == expected_text(prompt, TOKENS)
    plain = client.ask(THINKER[engine], Turn(user=prompt), stream=stream)  # the site default: no thinking
    assert (plain.reasoning, plain.text) == ('', expected_text(prompt, TOKENS))
    # a model that cannot think is not asked to (Ollama would refuse the request)
    assert client.ask(CHAT[engine], Turn(user=prompt, think=True), stream=stream).text == expected_text(prompt, TOKENS)


@STREAMING
def test_think_tags_from_a_server_without_a_reasoning_parser_become_reasoning(cluster: Cluster, client: Client,
                                                                              stream: bool) -> None:
    prompt = 'Why is the sky blue?'
    cluster.sim_config('sim-vllm', reasoning_parser=False)
    try:
        answer = client.ask(THINKER['vllm'], Turn(user=prompt, think=True), stream=stream)
    finally:
        cluster.sim_config('sim-vllm', reasoning_parser=True)
    assert answer.reasoning == expected_thinking(prompt, THINKING_TOKENS)
    assert answer.text == expected_text(prompt, TOKENS)


# ---------------------------------------------------------------- structured outputs

@ENGINES
@STREAMING
def test_structured_output_matches_the_schema(cluster: Cluster, client: Client, engine: str, stream: bool) -> None:
    answer = client.ask(CHAT[engine], Turn(user='A city, please.', schema=CITY_SCHEMA), stream=stream)
    jsonschema.validate(json.loads(answer.text), CITY_SCHEMA)
    assert _schema_verdict(cluster) is True


@ENGINES
@pytest.mark.parametrize('dialect', ['openai', 'anthropic', 'ollama'])
def test_the_schema_verdict_is_a_header_and_an_audit_column(cluster: Cluster, dialect: str, engine: str) -> None:
    path, body = _raw_structured(dialect, CHAT[engine])
    headers = {'Authorization': f'Bearer {cluster.key}'}
    good = httpx.post(f'{cluster.url}{path}', headers=headers, json=body, timeout=30)
    assert good.status_code == 200 and good.headers['x-mindrouter-schema-valid'] == 'true'
    cluster.sim_config(f'sim-{engine}', schema_violation=True)
    try:
        bad = httpx.post(f'{cluster.url}{path}', headers=headers, json=body, timeout=30)
    finally:
        cluster.sim_config(f'sim-{engine}', schema_violation=False)
    assert bad.status_code == 200 and bad.headers['x-mindrouter-schema-valid'] == 'false'
    assert _schema_verdict(cluster) is False
    plain = httpx.post(f'{cluster.url}/v1/chat/completions', headers=headers, timeout=30,
                       json={'model': CHAT[engine], 'messages': [{'role': 'user', 'content': 'hi'}]})
    assert 'x-mindrouter-schema-valid' not in plain.headers


def _raw_structured(dialect: str, model: str) -> tuple[str, dict[str, Any]]:
    messages = [{'role': 'user', 'content': 'A city, please.'}]
    if dialect == 'openai':
        return '/v1/chat/completions', {'model': model, 'messages': messages, 'response_format': {
            'type': 'json_schema', 'json_schema': {'name': 'city', 'schema': CITY_SCHEMA}}}
    if dialect == 'anthropic':
        return '/anthropic/v1/messages', {'model': model, 'messages': messages, 'max_tokens': 200,
                                          'output_format': {'type': 'json_schema', 'schema': CITY_SCHEMA}}
    return '/api/chat', {'model': model, 'messages': messages, 'format': CITY_SCHEMA, 'stream': False}


def _schema_verdict(cluster: Cluster) -> bool | None:
    """`schema_valid` of the newest audit row, once the writer has flushed it (AUDIT_FLUSH_INTERVAL is 0.2 s)."""
    time.sleep(0.5)
    with sqlite3.connect(cluster.data_dir / 'mindrouter.db') as db:
        (verdict,) = db.execute('SELECT schema_valid FROM request_log ORDER BY id DESC LIMIT 1').fetchone()
    return None if verdict is None else bool(verdict)


# ---------------------------------------------------------------- images

@ENGINES
@STREAMING
def test_images_inline_and_by_url_reach_a_multimodal_model(client: Client, engine: str, stream: bool) -> None:
    prompt = 'What is in the picture?'
    with serving_png() as site:
        images = [PNG_BASE64] if client.dialect == 'ollama' else [PNG_BASE64, f'{site}/cat.png']
        answer = client.ask(VISION[engine], Turn(user=prompt, images=images), stream=stream)
    assert answer.text == expected_text(vision_seed_text(prompt, len(images)), TOKENS)


@ENGINES
def test_images_for_a_text_model_are_refused_before_any_backend_sees_them(cluster: Cluster, client: Client,
                                                                           engine: str) -> None:
    before = cluster.sim_stats(f'sim-{engine}')['requests_total']
    with pytest.raises((openai.BadRequestError, anthropic.BadRequestError, ollama.ResponseError)) as refused:
        client.ask(CHAT[engine], Turn(user='What is this?', images=[PNG_BASE64]), stream=False)
    assert 'does not accept images' in str(refused.value)
    assert cluster.sim_stats(f'sim-{engine}')['requests_total'] == before


def test_image_urls_that_are_not_images_or_not_allowed_are_refused(cluster: Cluster) -> None:
    headers = {'Authorization': f'Bearer {cluster.key}'}
    with serving_png() as site:
        for url, says in ((f'{site}/page.html', 'is not an image'),
                          ('http://169.254.169.254/latest/meta-data/', 'not allowed'),
                          (f'http://localhost:{site.rsplit(":", 1)[1]}/cat.png', 'not allowed')):
            response = httpx.post(f'{cluster.url}/v1/chat/completions', headers=headers, timeout=30, json={
                'model': VISION['vllm'], 'messages': [{'role': 'user', 'content': [
                    {'type': 'image_url', 'image_url': {'url': url}}]}]})
            assert response.status_code == 400, response.text
            error = response.json()['error']
            assert says in error['message'] and error['param'] == 'messages[0].content[0].image_url.url'


# ---------------------------------------------------------------- embeddings, rerank, score

@ENGINES
def test_batch_embeddings_with_dimensions_and_base64(cluster: Cluster, engine: str) -> None:
    with openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key, max_retries=0) as client:
        floats = client.embeddings.create(model=EMBEDDER[engine], input=['one', 'two', 'three'], dimensions=8)
        packed = client.embeddings.create(model=EMBEDDER[engine], input=['one', 'two', 'three'], dimensions=8,
                                          encoding_format='base64')
    assert [len(item.embedding) for item in floats.data] == [8, 8, 8]
    assert [item.index for item in floats.data] == [0, 1, 2]
    raw = base64.b64decode(packed.data[1].embedding)  # type: ignore[arg-type] - asked for base64, the SDK leaves it
    assert list(struct.unpack(f'<{len(raw) // 4}f', raw)) == pytest.approx(floats.data[1].embedding, abs=1e-6)
    with ollama.Client(host=cluster.url, headers={'Authorization': f'Bearer {cluster.key}'}) as native:
        batch = native.embed(model=EMBEDDER[engine], input=['one', 'two', 'three'], dimensions=8)
    assert batch.embeddings[2] == pytest.approx(floats.data[2].embedding, abs=1e-6)


def test_rerank_and_score_on_a_reranker(cluster: Cluster) -> None:
    headers = {'Authorization': f'Bearer {cluster.key}'}
    documents = ['Cats sleep a lot.', 'Paris is the capital of France.', 'France has many cheeses.']
    ranked = httpx.post(f'{cluster.url}/v1/rerank', headers=headers, timeout=30, json={
        'model': RERANKER, 'query': 'What is the capital of France?', 'documents': documents, 'top_n': 2})
    assert ranked.status_code == 200, ranked.text
    results = ranked.json()['results']
    assert [r['index'] for r in results] == [1, 2]
    assert results[0]['relevance_score'] > results[1]['relevance_score']
    assert results[0]['document'] == {'text': documents[1]}
    assert ranked.headers['x-mindrouter-backend'] == 'sim-vllm'

    scored = httpx.post(f'{cluster.url}/v1/score', headers=headers, timeout=30, json={
        'model': RERANKER, 'text_1': 'What is the capital of France?', 'text_2': documents})
    assert scored.status_code == 200, scored.text
    scores = [item['score'] for item in scored.json()['data']]
    assert len(scores) == 3 and scores[1] == max(scores)
    assert scored.json()['usage']['prompt_tokens'] > 0

    for model, path in ((CHAT['vllm'], '/v1/rerank'), (CHAT['ollama'], '/v1/rerank'), (CHAT['vllm'], '/v1/score')):
        body = {'model': model, 'query': 'q', 'documents': ['d'], 'text_1': 'q', 'text_2': ['d']}
        refused = httpx.post(f'{cluster.url}{path}', headers=headers, json=body, timeout=30)
        assert refused.status_code == 400 and 'is not a reranker' in refused.json()['error']['message']
    empty = httpx.post(f'{cluster.url}/v1/rerank', headers=headers, timeout=30,
                       json={'model': RERANKER, 'query': 'q', 'documents': []})
    assert empty.status_code == 400 and empty.json()['error']['param'] == 'documents'


def test_models_show_their_modality(cluster: Cluster) -> None:
    with openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key, max_retries=0) as client:
        modality = {m.id: getattr(m, 'modality', None) for m in client.models.list()}
    assert modality[RERANKER] == 'reranking'
    assert modality[EMBEDDER['vllm']] == modality['nomic-embed-text:latest'] == 'embedding'
    assert modality[VISION['vllm']] == modality['llava:7b'] == 'multimodal'
    assert modality[CHAT['vllm']] == modality['llama3.2:latest'] == modality['qwen3:0.6b'] == 'chat'


# ---------------------------------------------------------------- context

@ENGINES
def test_max_tokens_is_fitted_to_the_context_and_a_prompt_too_long_is_refused(cluster: Cluster, client: Client,
                                                                               engine: str) -> None:
    if client.dialect == 'ollama':
        pytest.skip('covered by the OpenAI and Anthropic cells (the Ollama client sets num_predict the same way)')
    kwargs: dict[str, Any] = {'model': CHAT[engine], 'messages': [{'role': 'user', 'content': 'hi'}]}
    if client.dialect == 'openai':
        fitted = client.openai.chat.completions.create(**kwargs, max_tokens=100_000)
        assert fitted.choices[0].finish_reason == 'stop'
        with pytest.raises(openai.BadRequestError, match='takes at most') as refused:
            client.openai.chat.completions.create(model=CHAT[engine], messages=[
                {'role': 'user', 'content': 'word ' * 40_000}])
        assert refused.value.body['param'] == 'messages'  # type: ignore[index]
        if engine == 'vllm':
            # 5,000 one-letter words: 2,500 tokens at four characters a token, but vLLM's tokenizer counts
            # 5,001. Only that count leaves room the engine accepts (the estimate would overshoot its context).
            counted = client.openai.chat.completions.create(
                model=CHAT[engine], max_tokens=6000, messages=[{'role': 'user', 'content': 'a ' * 5000}])
            assert counted.choices[0].finish_reason == 'stop'
    else:
        with client.anthropic.messages.stream(**kwargs, max_tokens=100_000) as events:  # the SDK insists on a stream
            assert events.get_final_message().stop_reason == 'end_turn'
        with pytest.raises(anthropic.BadRequestError, match='takes at most'):
            client.anthropic.messages.create(model=CHAT[engine], max_tokens=10, messages=[
                {'role': 'user', 'content': 'word ' * 40_000}])


# ---------------------------------------------------------------- bad input

BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ('/v1/chat/completions', {'tools': [{'type': 'function', 'function': {'name': 'f', 'parameters': {
        'type': 'object', 'properties': {'a': {'type': 'nonsense'}}}}}]}, 'tools[0].function.parameters'),
    ('/v1/chat/completions', {'messages': [{'role': 'tool', 'tool_call_id': 'call_x', 'content': 'ok'}]},
     'messages[0].tool_call_id'),
    ('/v1/chat/completions', {'response_format': {'type': 'json_schema', 'json_schema': {
        'name': 'x', 'schema': {'type': 'objekt'}}}}, 'response_format.json_schema.schema'),
    ('/v1/chat/completions', {'messages': [{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {
        'url': 'data:image/png;base64,aGVsbG8gd29ybGQsIG5vdCBhbiBpbWFnZQ=='}}]}]},
     'messages[0].content[0].image_url.url'),
    ('/anthropic/v1/messages', {'max_tokens': 10, 'messages': [{'role': 'user', 'content': [
        {'type': 'tool_result', 'tool_use_id': 'toolu_x', 'content': 'ok'}]}]}, 'messages[0].content[0].tool_use_id'),
    ('/anthropic/v1/messages', {'max_tokens': 10, 'tools': [{'name': 'f', 'input_schema': {'type': 'string'}}]},
     'tools[0].input_schema'),
    ('/api/chat', {'format': {'type': 'object', 'required': 'city'}}, 'format'),
    ('/v1/chat/completions', {'messages': [{'role': 'user', 'content': 'x' * 10}], 'max_tokens': 10,
                              'tool_choice': 'required'}, 'tool_choice'),
]


@pytest.mark.parametrize(('path', 'fields', 'param'), BAD_INPUT)
def test_bad_input_is_a_400_in_the_callers_dialect_and_reaches_no_backend(cluster: Cluster, path: str,
                                                                          fields: dict[str, Any], param: str) -> None:
    body = {'model': CHAT['vllm'], 'messages': [{'role': 'user', 'content': 'hi'}], **fields}
    before = {name: cluster.sim_stats(name)['requests_total'] for name in cluster.sims}
    response = httpx.post(f'{cluster.url}{path}', headers={'Authorization': f'Bearer {cluster.key}'}, json=body,
                          timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()
    if path.startswith('/v1'):
        assert error['error']['param'] == param
    elif path.startswith('/anthropic'):
        assert error['type'] == 'error' and param in error['error']['message']
    else:
        assert param in error['error']
    assert {name: cluster.sim_stats(name)['requests_total'] for name in cluster.sims} == before

