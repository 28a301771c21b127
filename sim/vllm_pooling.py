"""The fake vLLM's pooling routes: `/v1/embeddings`, and `/rerank` + `/score` (with their `/v1`, `/v2` aliases).

As in vLLM 0.32, a server registers these routes by what its model can do: embeddings for an embedding model;
rerank and score for a cross-encoder (a name containing `rerank`) and for an embedding model (vLLM scores a
bi-encoder by cosine similarity; the fake uses its word-overlap score for both, see sim.rerank). A generate
model's server has none of them: 404 `{"detail": "Not Found"}`, like chat on a pooling model. Responses are
vLLM's `model_dump()`: every field present, nulls included.
"""

from __future__ import annotations

import time
from typing import Any

from sim.engine import Job, is_embedding_model, is_pooling_model
from sim.http import Request, Response
from sim.rerank import pair_tokens, relevance
from sim.text import count_prompt_tokens, embedding_base64, embedding_vector
from sim.vllm_base import BadRequest, VllmBase, field_error, int_or_none, rid


class VllmPooling(VllmBase):
    # -- embeddings ---------------------------------------------------------------------------------------------
    async def embeddings(self, request: Request) -> Response:
        try:
            body = self.body(request)
            model = self.model(body)
            if not is_embedding_model(model):
                return await self.not_found(request)  # a generate model's server has no embeddings route
            inputs = self._inputs(body.get('input'))
            encoding = body.get('encoding_format') or 'float'
            if encoding not in ('float', 'base64'):
                raise field_error("Input should be 'float' or 'base64'", 'encoding_format')
            dim = self.config.embedding_dim
            dims = int_or_none(body.get('dimensions'))
            if dims is not None:
                if dims < 1:
                    raise BadRequest(f'dimensions must be at least 1, got {dims}.', 'dimensions')
                dim = min(dim, dims)  # a prefix of the full vector, normalised again (matryoshka style)
        except BadRequest as e:
            return self.bad(e)
        job = Job(model, count_prompt_tokens(inputs))
        await self.complete(job)
        data = []
        for i, text in enumerate(inputs):
            vector = embedding_vector(text, dim)
            data.append(
                {
                    'index': i,
                    'object': 'embedding',
                    'embedding': embedding_base64(vector) if encoding == 'base64' else vector,
                }
            )
        return self.json(
            {
                'id': f'embd-{rid()}',
                'object': 'list',
                'created': int(time.time()),
                'model': model,
                'data': data,
                'usage': self.usage(job),
            }
        )

    @staticmethod
    def _inputs(raw: Any) -> list[str]:
        if isinstance(raw, str):
            return [raw]
        if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            return list(raw)
        if isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            return [' '.join(map(str, raw))]
        if isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
            return [' '.join(map(str, x)) for x in raw]
        raise field_error('Field required' if raw is None else 'Input should be a valid string', 'input')

    # -- rerank -------------------------------------------------------------------------------------------------
    async def rerank(self, request: Request) -> Response:
        try:
            body = self.body(request)
            model = self.model(body)
            if not is_pooling_model(model):
                return await self.not_found(request)
            query = body.get('query')
            if query is None:
                raise field_error('Field required', 'query')
            if not isinstance(query, str):
                raise field_error('Input should be a valid string', 'query')
            documents = self._documents(body.get('documents'))
            top_n = int_or_none(body.get('top_n')) or 0
            tokens = self._pair_tokens([(query, d) for d in documents], body)
        except BadRequest as e:
            return self.bad(e)
        job = Job(model, sum(tokens))
        await self.complete(job)
        order = sorted(range(len(documents)), key=lambda i: -relevance(query, documents[i]))  # stable: ties by index
        if 0 < top_n < len(order):
            order = order[:top_n]
        with_documents = body.get('return_documents') is not False
        results = []
        for i in order:
            result: dict[str, Any] = {'index': i}
            if with_documents:
                result['document'] = {'text': documents[i], 'multi_modal': None}
            result['relevance_score'] = relevance(query, documents[i])
            results.append(result)
        return self.json(
            {
                'id': f'rerank-{rid()}',
                'model': model,
                'usage': {'prompt_tokens': job.prompt_tokens, 'total_tokens': job.prompt_tokens},
                'results': results,
            }
        )

    @staticmethod
    def _documents(raw: Any) -> list[str]:
        """`documents`: strings, or objects with a `text` (the Cohere / Jina shape)."""
        if raw is None:
            raise field_error('Field required', 'documents')
        if not isinstance(raw, list):
            raise field_error('Input should be a valid list', 'documents')
        texts: list[str] = []
        for doc in raw:
            text = doc.get('text') if isinstance(doc, dict) else doc
            if not isinstance(text, str):
                raise field_error('Input should be a valid string', 'documents')
            texts.append(text)
        if not texts:
            raise BadRequest('At least one text_pair element must be given')
        return texts

    # -- score --------------------------------------------------------------------------------------------------
    async def score(self, request: Request) -> Response:
        try:
            body = self.body(request)
            model = self.model(body)
            if not is_pooling_model(model):
                return await self.not_found(request)
            first = self._texts(body.get('text_1'), 'text_1')
            second = self._texts(body.get('text_2'), 'text_2')
            if not first:
                raise BadRequest('At least one text element must be given')
            if not second:
                raise BadRequest('At least one text_pair element must be given')
            if len(first) > 1 and len(first) != len(second):
                raise BadRequest('Input lengths must be either 1:1, 1:N or N:N')
            pairs = [(first[0], t) for t in second] if len(first) == 1 else list(zip(first, second, strict=True))
            tokens = self._pair_tokens(pairs, body)
        except BadRequest as e:
            return self.bad(e)
        job = Job(model, sum(tokens))
        await self.complete(job)
        return self.json(
            {
                'id': f'score-{rid()}',
                'object': 'list',
                'created': int(time.time()),
                'model': model,
                'data': [{'index': i, 'object': 'score', 'score': relevance(a, b)} for i, (a, b) in enumerate(pairs)],
                'usage': self.usage(job),
            }
        )

    @staticmethod
    def _texts(raw: Any, field: str) -> list[str]:
        if raw is None:
            raise field_error('Field required', field)
        if isinstance(raw, str):
            return [raw]
        if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            return list(raw)
        raise field_error('Input should be a valid string', field)

    def _pair_tokens(self, pairs: list[tuple[str, str]], body: dict[str, Any]) -> list[int]:
        """Prompt tokens per pair, after `truncate_prompt_tokens` (-1: max_model_len), within max_model_len."""
        context = self.config.context_length
        truncate = int_or_none(body.get('truncate_prompt_tokens'))
        if truncate is not None and truncate > context:
            raise BadRequest(
                f'truncate_prompt_tokens value ({truncate}) is greater than max_model_len ({context}). Please, '
                'select a smaller truncation size.'
            )
        limit = context if truncate == -1 else truncate
        tokens = [pair_tokens(a, b) for a, b in pairs]
        if limit is not None and limit > 0:
            return [min(t, limit) for t in tokens]
        for t in tokens:
            if t > context:
                raise BadRequest(
                    f"This model's maximum context length is {context} tokens. However, you requested {t} tokens "
                    'in the input for embedding generation. Please reduce the length of the input.'
                )
        return tokens
