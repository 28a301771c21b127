"""vLLM's pooling routes on the wire (rerank, score, embeddings), and `dimensions` in both engines."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from sim import SimConfig, SimServer, count_prompt_tokens, embedding_vector
from sim.engine import is_embedding_model, is_reranker_model
from sim.rerank import relevance

CHAT = 'meta-llama/Llama-3.2-1B-Instruct'
RERANKER = 'BAAI/bge-reranker-v2-m3'
EMBEDDER = 'BAAI/bge-small-en-v1.5'
QUERY = 'capital of France: Paris'
DOCUMENTS = ['Berlin is the capital of Germany', 'Paris is the capital of France', 'bananas', 'the capital of France']
BY_RELEVANCE = [1, 3, 0, 2]  # shares 4, 3, 2 and 0 words with the query


@pytest.fixture
async def server() -> AsyncIterator[SimServer]:
    async with SimServer('vllm', SimConfig(models=[CHAT, RERANKER, EMBEDDER])) as s:
        yield s


@pytest.fixture
async def http(server: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as c:
        yield c


def test_model_classes() -> None:
    assert is_reranker_model(RERANKER) and not is_embedding_model(RERANKER)
    assert is_embedding_model(EMBEDDER) and not is_reranker_model(EMBEDDER)


def test_relevance() -> None:
    scores = [relevance(QUERY, d) for d in DOCUMENTS]
    assert all(0 <= s < 1 for s in scores) and scores[2] == 0
    assert sorted(range(4), key=lambda i: -scores[i]) == BY_RELEVANCE
    assert relevance('a b', 'a b c d') < relevance('a b', 'a b c') < relevance('a b', 'a b')


async def test_rerank(http: httpx.AsyncClient, server: SimServer) -> None:
    documents: list[str | dict[str, str]] = [*DOCUMENTS[:2], {'text': DOCUMENTS[2]}, DOCUMENTS[3]]
    r = await http.post('/v1/rerank', json={'model': RERANKER, 'query': QUERY, 'documents': documents})
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ['id', 'model', 'usage', 'results'] and re.fullmatch(r'rerank-[0-9a-f]{32}', body['id'])
    assert body['model'] == RERANKER
    tokens = sum(count_prompt_tokens([QUERY, d]) for d in DOCUMENTS)
    assert body['usage'] == {'prompt_tokens': tokens, 'total_tokens': tokens}
    assert body['results'] == [
        {
            'index': i,
            'document': {'text': DOCUMENTS[i], 'multi_modal': None},
            'relevance_score': relevance(QUERY, DOCUMENTS[i]),
        }
        for i in BY_RELEVANCE
    ]
    assert server.stats.requests_served == 1 and server.stats.prompt_tokens == tokens


async def test_rerank_top_n_return_documents_and_aliases(http: httpx.AsyncClient) -> None:
    request = {'model': RERANKER, 'query': QUERY, 'documents': DOCUMENTS, 'top_n': 2, 'return_documents': False}
    for path in ('/rerank', '/v1/rerank', '/v2/rerank'):
        results = (await http.post(path, json=request)).json()['results']
        assert results == [{'index': i, 'relevance_score': relevance(QUERY, DOCUMENTS[i])} for i in BY_RELEVANCE[:2]]
    results = (await http.post('/v1/rerank', json={**request, 'top_n': 0, 'return_documents': True})).json()['results']
    assert [r['index'] for r in results] == BY_RELEVANCE
    # Ties (no shared word) keep the documents' order.
    tie = {'model': RERANKER, 'query': 'zz', 'documents': ['a', 'b', 'c']}
    results = (await http.post('/v1/rerank', json=tie)).json()['results']
    assert [r['index'] for r in results] == [0, 1, 2]


async def test_score_one_to_n_and_n_to_n(http: httpx.AsyncClient) -> None:
    r = await http.post('/v1/score', json={'model': RERANKER, 'text_1': QUERY, 'text_2': DOCUMENTS})
    body = r.json()
    assert r.status_code == 200 and list(body) == ['id', 'object', 'created', 'model', 'data', 'usage']
    assert re.fullmatch(r'score-[0-9a-f]{32}', body['id']) and body['object'] == 'list'
    assert isinstance(body['created'], int) and body['model'] == RERANKER
    assert body['data'] == [
        {'index': i, 'object': 'score', 'score': relevance(QUERY, d)} for i, d in enumerate(DOCUMENTS)
    ]
    tokens = sum(count_prompt_tokens([QUERY, d]) for d in DOCUMENTS)
    assert body['usage'] == {
        'prompt_tokens': tokens,
        'total_tokens': tokens,
        'completion_tokens': 0,
        'prompt_tokens_details': None,
    }
    queries = ['germany', 'france', 'bananas']  # pairwise: each shares a word with its document
    body = (await http.post('/score', json={'model': RERANKER, 'text_1': queries, 'text_2': DOCUMENTS[:3]})).json()
    assert [d['score'] for d in body['data']] == [relevance(q, d) for q, d in zip(queries, DOCUMENTS[:3], strict=True)]
    assert all(d['score'] > 0 for d in body['data'])


@pytest.mark.parametrize(
    ('path', 'request_body', 'message'),
    [
        (
            '/v1/score',
            {'text_1': ['a', 'b'], 'text_2': ['a', 'b', 'c']},
            'Input lengths must be either 1:1, 1:N or N:N',
        ),
        ('/v1/score', {'text_1': 'a', 'text_2': []}, 'At least one text_pair element must be given'),
        ('/v1/score', {'text_1': [], 'text_2': 'a'}, 'At least one text element must be given'),
        ('/v1/score', {'text_2': 'a'}, 'Field required'),
        ('/v1/rerank', {'query': 'q', 'documents': []}, 'At least one text_pair element must be given'),
        ('/v1/rerank', {'documents': ['a']}, 'Field required'),
    ],
)
async def test_pooling_bad_requests(
    http: httpx.AsyncClient, path: str, request_body: dict[str, object], message: str
) -> None:
    r = await http.post(path, json={'model': RERANKER, **request_body})
    assert r.status_code == 400
    error = r.json()['error']
    assert set(error) == {'message', 'type', 'param', 'code'} and error['message'] == message


async def test_routes_by_model_class(http: httpx.AsyncClient) -> None:
    # A generate model's server has no rerank / score routes; a pooling model's none for chat; a reranker's none
    # for embeddings. An embedding model scores as a bi-encoder.
    for path, model, body in (
        ('/v1/rerank', CHAT, {'query': 'q', 'documents': ['d']}),
        ('/v1/score', CHAT, {'text_1': 'q', 'text_2': 'd'}),
        ('/v1/chat/completions', RERANKER, {'messages': [{'role': 'user', 'content': 'hi'}]}),
        ('/v1/completions', RERANKER, {'prompt': 'hi'}),
        ('/v1/embeddings', RERANKER, {'input': 'hi'}),
    ):
        r = await http.post(path, json={'model': model, **body})
        assert (r.status_code, r.json()) == (404, {'detail': 'Not Found'}), (path, model)
    r = await http.post('/v1/rerank', json={'model': EMBEDDER, 'query': QUERY, 'documents': DOCUMENTS})
    assert [x['index'] for x in r.json()['results']] == BY_RELEVANCE
    r = await http.post('/v1/rerank', json={'model': 'nope', 'query': 'q', 'documents': ['d']})
    assert r.status_code == 404 and r.json()['error']['type'] == 'NotFoundError'
    listed = [m['id'] for m in (await http.get('/v1/models')).json()['data']]
    assert listed == [CHAT, RERANKER, EMBEDDER]


async def test_rerank_faults_and_stats(http: httpx.AsyncClient, server: SimServer) -> None:
    server.config.fault = 'error_500'
    r = await http.post('/v1/rerank', json={'model': RERANKER, 'query': 'q', 'documents': ['d']})
    assert r.status_code == 500 and r.json()['error']['type'] == 'InternalServerError'
    server.config.fault = None
    await http.post('/v1/score', json={'model': RERANKER, 'text_1': 'q', 'text_2': 'q'})
    stats = server.stats
    assert (stats.requests_total, stats.requests_served, stats.faults) == (2, 1, 1)
    assert stats.model(RERANKER).finished['stop'] == 1
    r = await http.post(
        '/v1/score', json={'model': RERANKER, 'text_1': 'q', 'text_2': 'q', 'truncate_prompt_tokens': 3}
    )
    assert r.json()['usage']['prompt_tokens'] == 3


def unit_prefix(text: str, dim: int) -> list[float]:
    raw = embedding_vector(text, dim, normalize=False)
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


async def test_vllm_embedding_dimensions(http: httpx.AsyncClient) -> None:
    body = {'model': EMBEDDER, 'input': ['alpha', 'beta'], 'dimensions': 4, 'encoding_format': 'float'}
    data = (await http.post('/v1/embeddings', json=body)).json()['data']
    assert [len(d['embedding']) for d in data] == [4, 4]
    assert data[0]['embedding'] == pytest.approx(unit_prefix('alpha', 4))
    assert sum(x * x for x in data[1]['embedding']) == pytest.approx(1.0)


async def test_ollama_embed_dimensions_and_list_input(ollama: SimServer) -> None:
    async with httpx.AsyncClient(base_url=ollama.url) as http:
        body = {'model': 'nomic-embed-text', 'input': ['alpha', 'beta gamma'], 'dimensions': 5}
        answer = (await http.post('/api/embed', json=body)).json()
    assert [len(v) for v in answer['embeddings']] == [5, 5]
    assert answer['embeddings'][1] == pytest.approx(unit_prefix('beta gamma', 5))
    assert answer['prompt_eval_count'] == count_prompt_tokens(['alpha', 'beta gamma'])
