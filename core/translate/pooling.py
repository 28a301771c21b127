"""`/v1/rerank` and `/v1/score`: request bodies -> canonical, canonical answers -> bodies, as vLLM serves them.

Rerank is the Jina/Cohere shape vLLM adopted (`query`, `documents`, `top_n` -> `results` best first, each
with its `index`, `relevance_score` and, unless `return_documents` is false, the `document`). Score is
vLLM's own (`text_1` against `text_2`, one-to-many or pairwise -> `data[].score` in input order).
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidRequest
from core.translate import validate as v
from core.translate.canonical import RerankRequest, RerankResponse, ScoreRequest, ScoreResponse
from core.translate.ids import with_prefix

__all__ = ['parse_rerank', 'parse_score', 'render_rerank', 'render_score']


def parse_rerank(body: object) -> RerankRequest:
    d = v.body_object(body)
    model = v.model_name(d)
    query = v.required_str(d, 'query')
    raw = v.required_list(d, 'documents')
    documents = [_document(item, f'documents[{i}]') for i, item in enumerate(raw)]
    top_n = v.optional_int(d, 'top_n', minimum=0)
    return RerankRequest(model=model, query=query, documents=documents, top_n=top_n or None,
                         return_documents=v.flag(d, 'return_documents', default=True),
                         truncate_prompt_tokens=v.optional_int(d, 'truncate_prompt_tokens', minimum=1))


def parse_score(body: object) -> ScoreRequest:
    d = v.body_object(body)
    model = v.model_name(d)
    text_1, text_2 = _texts(d, 'text_1'), _texts(d, 'text_2')
    if len(text_1) != 1 and len(text_1) != len(text_2):
        raise InvalidRequest(f"'text_1' has {len(text_1)} texts and 'text_2' {len(text_2)}: give one text_1 to score "
                             'against every text_2, or as many of each to score them in pairs.', param='text_1')
    return ScoreRequest(model=model, text_1=text_1, text_2=text_2,
                        truncate_prompt_tokens=v.optional_int(d, 'truncate_prompt_tokens', minimum=1))


def render_rerank(resp: RerankResponse, req: RerankRequest, *, request_id: str) -> dict[str, Any]:
    results = resp.results[:req.top_n] if req.top_n else resp.results
    rendered = []
    for result in results:
        item: dict[str, Any] = {'index': result.index, 'relevance_score': result.relevance_score}
        if req.return_documents:
            item['document'] = {'text': req.documents[result.index]}
        rendered.append(item)
    return {'id': with_prefix('rerank-', request_id), 'model': req.model,
            'usage': {'total_tokens': resp.total_tokens}, 'results': rendered}


def render_score(resp: ScoreResponse, *, request_id: str, created: int) -> dict[str, Any]:
    return {'id': with_prefix('score-', request_id), 'object': 'list', 'created': created, 'model': resp.model,
            'data': [{'index': i, 'object': 'score', 'score': score} for i, score in enumerate(resp.scores)],
            'usage': {'prompt_tokens': resp.prompt_tokens, 'total_tokens': resp.prompt_tokens,
                      'completion_tokens': 0}}


def _document(item: object, param: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return v.required_str(item, 'text', f'{param}.text')
    raise InvalidRequest(f"'{param}' must be a string or an object with 'text'.", param=param)


def _texts(d: v.JsonObject, key: str) -> list[str]:
    value = d.get(key)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        return list(value)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{key}'.", param=key)
    raise InvalidRequest(f"'{key}' must be a string or a non-empty array of strings.", param=key)
