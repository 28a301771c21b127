"""Any client dialect to any engine, streaming or not, through a real `mindrouter serve` process, driven
by the official openai, anthropic and ollama clients, with simulated engines as real processes on loopback.

The simulated engines answer deterministically (sim/text.py): the answer to "Say hello" in n tokens is
`expected_text('Say hello', n)`, so every test knows the exact text, finish reason and token counts.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sim.text import expected_text
from tests.e2e.cluster import Cluster, running_cluster

BIN = Path(sys.executable).parent
PROMPT = 'Say hello'
MODELS = {'ollama': 'llama3.2', 'vllm': 'meta-llama/Llama-3.2-1B-Instruct'}
NATURAL_LENGTH = 12  # tokens the simulated engines say when nothing stops them earlier


@pytest.fixture(scope='module')
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    args = ['--tokens', str(NATURAL_LENGTH)]
    with running_cluster(tmp_path_factory.mktemp('cluster'), {'sim-ollama': ('ollama', args),
                                                              'sim-vllm': ('vllm', args)}) as cluster:
        yield cluster


@pytest.fixture
def openai_client(cluster: Cluster) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key, max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(cluster: Cluster) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=f'{cluster.url}/anthropic', api_key=cluster.key, max_retries=0) as client:
        yield client


@pytest.fixture
def ollama_client(cluster: Cluster) -> Iterator[ollama.Client]:
    with ollama.Client(host=cluster.url, headers={'Authorization': f'Bearer {cluster.key}'}) as client:
        yield client


ENGINES = pytest.mark.parametrize('engine', ['ollama', 'vllm'])
STREAMING = pytest.mark.parametrize('stream', [False, True], ids=['whole', 'stream'])


@ENGINES
@STREAMING
def test_openai_client(openai_client: openai.OpenAI, engine: str, stream: bool) -> None:
    client = openai_client
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': PROMPT}]
    if stream:
        chunks = list(client.chat.completions.create(model=MODELS[engine], messages=messages, max_tokens=5,
                                                      stream=True, stream_options={'include_usage': True}))
        text = ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        usage = chunks[-1].usage
    else:
        answer = client.chat.completions.create(model=MODELS[engine], messages=messages, max_tokens=5)
        text, finish, usage = answer.choices[0].message.content or '', [answer.choices[0].finish_reason], answer.usage
    assert text == expected_text(PROMPT, 5)
    assert finish == ['length']
    assert usage is not None and usage.completion_tokens == 5 and usage.prompt_tokens > 0

    natural = client.chat.completions.create(model=MODELS[engine], messages=messages)
    assert natural.choices[0].message.content == expected_text(PROMPT, NATURAL_LENGTH)
    assert natural.choices[0].finish_reason == 'stop'


@ENGINES
@STREAMING
def test_anthropic_client(anthropic_client: anthropic.Anthropic, engine: str, stream: bool) -> None:
    client = anthropic_client
    kwargs = {'model': MODELS[engine], 'max_tokens': 5, 'system': 'Be brief.',
              'messages': [{'role': 'user', 'content': PROMPT}]}
    if stream:
        with client.messages.stream(**kwargs) as events:  # type: ignore[arg-type]
            message = events.get_final_message()
    else:
        message = client.messages.create(**kwargs)  # type: ignore[arg-type]
    assert [block.type for block in message.content] == ['text']
    assert message.content[0].text == expected_text(PROMPT, 5)  # type: ignore[union-attr]
    assert message.stop_reason == 'max_tokens'
    assert message.usage.output_tokens == 5 and message.usage.input_tokens > 0

    natural = client.messages.create(model=MODELS[engine], max_tokens=1000,
                                     messages=[{'role': 'user', 'content': PROMPT}])
    assert natural.stop_reason == 'end_turn'


@ENGINES
@STREAMING
def test_ollama_client(ollama_client: ollama.Client, engine: str, stream: bool) -> None:
    client = ollama_client
    messages = [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': PROMPT}]
    if stream:
        parts = list(client.chat(model=MODELS[engine], messages=messages, options={'num_predict': 5}, stream=True))
        text = ''.join(part.message.content or '' for part in parts)
        final = parts[-1]
    else:
        final = client.chat(model=MODELS[engine], messages=messages, options={'num_predict': 5})
        text = final.message.content or ''
    assert text == expected_text(PROMPT, 5)
    assert final.done and final.done_reason == 'length'
    assert final.eval_count == 5 and (final.prompt_eval_count or 0) > 0
    assert (final.total_duration or 0) > 0

    generated = client.generate(model=MODELS[engine], prompt=PROMPT, stream=False)
    assert generated.response == expected_text(PROMPT, NATURAL_LENGTH) and generated.done_reason == 'stop'


def test_embeddings_through_every_dialect(openai_client: openai.OpenAI, ollama_client: ollama.Client) -> None:
    vectors = openai_client.embeddings.create(model='nomic-embed-text', input=['one', 'two'])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 0

    native = ollama_client
    batch = native.embed(model='nomic-embed-text', input=['one', 'two'])
    assert len(batch.embeddings) == 2 and batch.embeddings[0] == pytest.approx(vectors.data[0].embedding)
    assert native.embeddings(model='nomic-embed-text', prompt='one').embedding == pytest.approx(batch.embeddings[0])


def test_model_listings(openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic,
                        ollama_client: ollama.Client) -> None:
    openai_ids = {m.id for m in openai_client.models.list()}
    assert {'llama3.2:latest', MODELS['vllm']} <= openai_ids
    native = ollama_client
    assert {m.model for m in native.list().models} == openai_ids
    assert 'completion' in (native.show('llama3.2').capabilities or [])
    assert native.ps().models  # the vLLM model is always loaded
    anthropic_ids = {m.id for m in anthropic_client.models.list()}
    assert anthropic_ids == openai_ids


def test_every_response_says_who_served_it_and_what_the_gateway_added(cluster: Cluster) -> None:
    response = httpx.post(f'{cluster.url}/v1/chat/completions', headers={'X-API-Key': cluster.key},
                          json={'model': MODELS['vllm'], 'messages': [{'role': 'user', 'content': PROMPT}]})
    assert response.headers['x-mindrouter-backend'] == 'sim-vllm'
    assert len(response.headers['x-request-id']) == 32
    assert float(response.headers['x-mindrouter-queue-ms']) >= 0
    assert 0 <= float(response.headers['x-mindrouter-overhead-ms']) < 1000


@pytest.mark.parametrize(('path', 'body', 'status', 'fragment'), [
    ('/v1/chat/completions', {'model': 'no-such-model', 'messages': [{'role': 'user', 'content': 'x'}]}, 404,
     'no-such-model'),
    ('/v1/chat/completions', {'messages': [{'role': 'user', 'content': 'x'}]}, 400, 'model'),
    ('/v1/chat/completions', {'model': 'llama3.2', 'messages': 'nope'}, 400, 'messages'),
    ('/v1/chat/completions', {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'x'}],
                              'temperature': 7}, 400, 'temperature'),
    ('/anthropic/v1/messages', {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'x'}]}, 400,
     'max_tokens'),
    ('/api/chat', {'model': 'no-such-model', 'messages': [{'role': 'user', 'content': 'x'}]}, 404,
     'no-such-model'),
])
def test_bad_input_is_refused_in_the_callers_dialect_before_any_backend_sees_it(
        cluster: Cluster, path: str, body: dict[str, object], status: int, fragment: str) -> None:
    before = {engine: cluster.sim_stats(engine)['requests_served'] for engine in cluster.sims}
    response = httpx.post(f'{cluster.url}{path}', headers={'X-API-Key': cluster.key}, json=body)

    assert response.status_code == status, response.text
    payload = response.json()
    if path.startswith('/anthropic'):
        assert payload['type'] == 'error' and fragment in payload['error']['message']
    elif path.startswith('/api/'):
        assert fragment in payload['error']
    else:
        assert fragment in payload['error']['message'] or fragment == payload['error']['param']
    assert {engine: cluster.sim_stats(engine)['requests_served'] for engine in cluster.sims} == before


def test_malformed_and_oversized_bodies(cluster: Cluster) -> None:
    headers = {'X-API-Key': cluster.key, 'Content-Type': 'application/json'}
    broken = httpx.post(f'{cluster.url}/v1/chat/completions', headers=headers, content=b'{"model": ')
    assert broken.status_code == 400 and 'JSON' in broken.json()['error']['message']
    huge = httpx.post(f'{cluster.url}/api/chat', headers=headers, content=b'{"x": "' + b'a' * (17 << 20) + b'"}')
    assert huge.status_code == 413 and 'limit' in huge.json()['error']


def test_refusals_carry_their_request_id_and_leave_their_audit_row(
        cluster: Cluster, openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic) -> None:
    refused: dict[str, tuple[str, int]] = {}  # request id -> (endpoint, status)
    with pytest.raises(openai.BadRequestError) as bad:
        openai_client.chat.completions.create(model=MODELS['ollama'], messages=[{'role': 'user', 'content': 'x'}],
                                              temperature=7)
    with pytest.raises(openai.NotFoundError) as unknown:
        openai_client.embeddings.create(model='no-such-model', input='x')
    with pytest.raises(openai.APIStatusError) as huge:
        openai_client.chat.completions.create(model=MODELS['ollama'],
                                              messages=[{'role': 'user', 'content': 'a' * (17 << 20)}])
    with pytest.raises(anthropic.BadRequestError) as anthropic_bad:
        anthropic_client.messages.create(model=MODELS['ollama'], max_tokens=5, messages=[])
    for error, endpoint in [(bad, '/v1/chat/completions'), (unknown, '/v1/embeddings'), (huge, '/v1/chat/completions')]:
        assert error.value.request_id, error.value
        refused[error.value.request_id] = (endpoint, error.value.status_code)
    refused[anthropic_bad.value.response.headers['x-request-id']] = ('/anthropic/v1/messages', 400)
    ollama_huge = httpx.post(f'{cluster.url}/api/generate', headers={'X-API-Key': cluster.key},
                             content=b'{"model": "llama3.2", "prompt": "' + b'a' * (17 << 20) + b'"}')
    refused[ollama_huge.headers['x-request-id']] = ('/api/generate', 413)
    assert [status for _, status in refused.values()] == [400, 404, 413, 400, 413]

    rows: dict[str, tuple[str, int, str, object, object]] = {}
    for _ in range(50):  # the writer flushes every 0.2 s here
        with sqlite3.connect(cluster.data_dir / 'mindrouter.db') as db:
            rows = {row[0]: row[1:] for row in db.execute(
                'SELECT request_id, endpoint, http_status, status, user_id, prompt FROM request_log '
                f'WHERE request_id IN ({",".join("?" * len(refused))})', list(refused))}
        if len(rows) == len(refused):
            break
        httpx.get(f'{cluster.url}/healthz')
    assert {rid: (endpoint, status) for rid, (endpoint, status, *_rest) in rows.items()} == refused
    assert all(state == 'failed' and user is not None and prompt is None for _, _, state, user, prompt in rows.values())


def test_the_audit_trail_has_a_row_per_request_with_prompt_and_answer(cluster: Cluster,
                                                                     openai_client: openai.OpenAI) -> None:
    client = openai_client
    marker = 'audit marker question'
    client.chat.completions.create(model=MODELS['ollama'], messages=[{'role': 'user', 'content': marker}],
                                   max_tokens=3)
    rows: list[tuple[object, ...]] = []
    for _ in range(50):  # the writer flushes every 0.2 s here
        with sqlite3.connect(cluster.data_dir / 'mindrouter.db') as db:
            rows = db.execute('SELECT endpoint, model, backend_name, status, http_status, prompt_tokens, '
                              'completion_tokens, prompt, response, user_id FROM request_log '
                              'WHERE prompt LIKE ?', (f'%{marker}%',)).fetchall()
        if rows:
            break
        httpx.get(f'{cluster.url}/healthz')
    [(endpoint, model, backend, status, http_status, _prompt_tokens, completion_tokens, _prompt, answer, user)] = rows
    assert (endpoint, model, backend, status, http_status) == (
        '/v1/chat/completions', 'llama3.2:latest', 'sim-ollama', 'completed', 200)
    assert completion_tokens == 3 and answer == expected_text(marker, 3) and user is not None


def test_prometheus_metrics_parse_and_move_with_traffic(cluster: Cluster, openai_client: openai.OpenAI) -> None:
    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f'{cluster.url}/metrics').text
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text) for sample in family.samples}

    chat = ('mindrouter_requests_total', (('endpoint', '/v1/chat/completions'), ('model', MODELS['vllm']),
                                          ('status', 'completed')))
    tokens = ('mindrouter_tokens_total', (('kind', 'completion'), ('model', MODELS['vllm'])))
    before = scrape()
    openai_client.chat.completions.create(model=MODELS['vllm'], messages=[{'role': 'user', 'content': PROMPT}],
                                          max_tokens=4)
    after = scrape()

    assert after[chat] == before.get(chat, 0) + 1
    assert after[tokens] == before.get(tokens, 0) + 4
    assert after[('mindrouter_backend_healthy', (('backend', 'sim-vllm'), ('engine', 'vllm')))] == 1
    assert after[('mindrouter_backend_in_flight', (('backend', 'sim-ollama'),))] == 0
    assert after[('mindrouter_queue_depth', ())] == 0
    assert after[('mindrouter_gateway_overhead_seconds_count', ())] > before.get(
        ('mindrouter_gateway_overhead_seconds_count', ()), 0)
