"""/v1/rerank and /v1/score bodies, as vLLM takes and gives them."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidRequest
from core.translate import vllm_engine
from core.translate.canonical import RerankResponse, RerankResult, ScoreResponse
from core.translate.pooling import parse_rerank, parse_score, render_rerank, render_score


def test_rerank_round_trip_best_first_cut_to_top_n() -> None:
    req = parse_rerank({'model': 'r', 'query': 'capital of France', 'top_n': 2,
                        'documents': ['Paris is the capital of France.', {'text': 'Cats purr.'}, 'France is big.']})
    assert (req.documents, req.top_n, req.return_documents) == (
        ['Paris is the capital of France.', 'Cats purr.', 'France is big.'], 2, True)
    assert vllm_engine.rerank_request(req) == ('/v1/rerank', {'model': 'r', 'query': 'capital of France',
                                                              'documents': req.documents})
    engine = {'id': 'rerank-1', 'model': 'r', 'usage': {'total_tokens': 30}, 'results': [
        {'index': 1, 'relevance_score': 0.01}, {'index': 0, 'relevance_score': 0.98},
        {'index': 2, 'relevance_score': 0.40}]}
    answer = vllm_engine.parse_rerank_response(engine, req)
    assert answer == RerankResponse('r', [RerankResult(0, 0.98), RerankResult(2, 0.40), RerankResult(1, 0.01)], 30)
    assert render_rerank(answer, req, request_id='abc') == {
        'id': 'rerank-abc', 'model': 'r', 'usage': {'total_tokens': 30}, 'results': [
            {'index': 0, 'relevance_score': 0.98, 'document': {'text': 'Paris is the capital of France.'}},
            {'index': 2, 'relevance_score': 0.40, 'document': {'text': 'France is big.'}}]}
    req.return_documents = False
    assert 'document' not in render_rerank(answer, req, request_id='abc')['results'][0]


def test_score_one_to_many_and_pairwise() -> None:
    one = parse_score({'model': 'r', 'text_1': 'q', 'text_2': ['a', 'b']})
    assert vllm_engine.score_request(one)[1] == {'model': 'r', 'text_1': 'q', 'text_2': ['a', 'b']}
    pairs = parse_score({'model': 'r', 'text_1': ['q1', 'q2'], 'text_2': ['a', 'b']})
    assert vllm_engine.score_request(pairs)[1]['text_1'] == ['q1', 'q2']
    engine = {'data': [{'index': 1, 'object': 'score', 'score': 0.2}, {'index': 0, 'object': 'score', 'score': 0.9}],
              'usage': {'prompt_tokens': 12, 'total_tokens': 12}}
    answer = vllm_engine.parse_score_response(engine, one)
    assert answer == ScoreResponse('r', [0.9, 0.2], 12)
    body = render_score(answer, request_id='abc', created=5)
    assert body['data'] == [{'index': 0, 'object': 'score', 'score': 0.9},
                            {'index': 1, 'object': 'score', 'score': 0.2}]
    assert (body['id'], body['usage']) == ('score-abc', {'prompt_tokens': 12, 'total_tokens': 12,
                                                         'completion_tokens': 0})


@pytest.mark.parametrize(('parse', 'body', 'param'), [
    (parse_rerank, {'model': 'r', 'query': 'q', 'documents': []}, 'documents'),
    (parse_rerank, {'model': 'r', 'query': 'q'}, 'documents'),
    (parse_rerank, {'model': 'r', 'documents': ['a']}, 'query'),
    (parse_rerank, {'model': 'r', 'query': 'q', 'documents': [3]}, 'documents[0]'),
    (parse_rerank, {'model': 'r', 'query': 'q', 'documents': [{'txt': 'a'}]}, 'documents[0].text'),
    (parse_rerank, {'model': 'r', 'query': 'q', 'documents': ['a'], 'top_n': -1}, 'top_n'),
    (parse_score, {'model': 'r', 'text_2': ['a']}, 'text_1'),
    (parse_score, {'model': 'r', 'text_1': 'q', 'text_2': []}, 'text_2'),
    (parse_score, {'model': 'r', 'text_1': ['a', 'b'], 'text_2': ['a', 'b', 'c']}, 'text_1'),
])
def test_bad_input_names_the_parameter(parse: Any, body: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse(body)
    assert raised.value.param == param
