"""The fake vLLM: the OpenAI-compatible server of vLLM 0.32, field by field.

Shapes follow vLLM's pydantic models and how its server serialises them: full `model_dump()` for plain responses
(so null fields such as `refusal`, `stop_reason`, `token_ids`, `prompt_logprobs` are present), and
`exclude_unset` stream chunks (only the fields vLLM sets: no `usage` key on ordinary chunks, `stop_reason` only on
the finishing chunk). Errors use `{"error": {"message", "type", "param", "code"}}`; unknown routes FastAPI's
`{"detail": ...}`.

This module assembles the engine (routes, probes, listings, `/tokenize`, `/metrics`, `/v1/completions`); chat is
in sim.vllm_chat, embeddings / rerank / score in sim.vllm_pooling, what they share in sim.vllm_base.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from sim.config import SimConfig
from sim.engine import Job, dumps, is_pooling_model
from sim.http import Request, Response, StreamResponse
from sim.stats import SimStats
from sim.text import chat_prompt_texts, count_prompt_tokens, prompt_token_ids
from sim.vllm_base import DONE, SSE, BadRequest, field_error, rid
from sim.vllm_chat import VllmChat
from sim.vllm_pooling import VllmPooling

COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # vLLM's CompletionRequest default, unlike chat's "whatever fits"


class VllmEngine(VllmChat, VllmPooling):
    def __init__(self, config: SimConfig, stats: SimStats) -> None:
        super().__init__(config, stats)
        self.started = time.time()
        self.route('GET', '/health', self.health)
        self.route('GET', '/ping', self.health)
        self.route('POST', '/ping', self.health)
        self.route('GET', '/load', self.load)
        self.route('GET', '/version', self.version)
        self.route('GET', '/v1/models', self.models)
        self.route('POST', '/tokenize', self.tokenize)
        self.route('GET', '/metrics', self.metrics)
        self.route('POST', '/v1/chat/completions', self.chat, inference=True)
        self.route('POST', '/v1/completions', self.completions, inference=True)
        self.route('POST', '/v1/embeddings', self.embeddings, inference=True)
        for path in ('/rerank', '/v1/rerank', '/v2/rerank'):
            self.route('POST', path, self.rerank, inference=True)
        for path in ('/score', '/v1/score'):
            self.route('POST', path, self.score, inference=True)

    # -- probes and listings ------------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return Response(200, b'', None)

    async def load(self, request: Request) -> Response:
        return self.json({'server_load': self.stats.in_flight})

    async def version(self, request: Request) -> Response:
        return self.json({'version': self.config.version or '0.32.0'})

    async def models(self, request: Request) -> Response:
        created = int(time.time())
        data = [
            {
                'id': m,
                'object': 'model',
                'created': created,
                'owned_by': 'vllm',
                'root': m,
                'parent': None,
                'max_model_len': self.config.context_length,
                'permission': [
                    {
                        'id': f'modelperm-{rid()}',
                        'object': 'model_permission',
                        'created': created,
                        'allow_create_engine': False,
                        'allow_sampling': True,
                        'allow_logprobs': True,
                        'allow_search_indices': False,
                        'allow_view': True,
                        'allow_fine_tuning': False,
                        'organization': '*',
                        'group': None,
                        'is_blocking': False,
                    }
                ],
            }
            for m in self.config.models or []
        ]
        return self.json({'object': 'list', 'data': data})

    async def tokenize(self, request: Request) -> Response:
        try:
            body = self.body(request)
            self.model(body)
            if 'messages' in body:
                messages = body['messages']
                if not isinstance(messages, list):
                    raise field_error('Input should be a valid list', 'messages')
                ids = prompt_token_ids(chat_prompt_texts(messages))
            else:
                prompt = body.get('prompt')
                if not isinstance(prompt, str):
                    raise field_error('Field required', 'prompt')
                ids = prompt_token_ids([prompt])
        except BadRequest as e:
            return self.bad(e)
        return self.json(
            {'count': len(ids), 'max_model_len': self.config.context_length, 'tokens': ids, 'token_strs': None}
        )

    async def metrics(self, request: Request) -> Response:
        return Response(200, self._metrics_text().encode(), 'text/plain; version=0.0.4; charset=utf-8')

    def _metrics_text(self) -> str:
        models = list(self.config.models or [])
        limit = self.config.max_concurrency or 0
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, values: Sequence[tuple[str, float]]) -> None:
            lines.append(f'# HELP {name} {help_text}')
            lines.append(f'# TYPE {name} {kind}')
            lines.extend(f'{series} {float(v)!r}' for series, v in values)

        def labels(model: str, **extra: str) -> str:
            parts = [f'model_name="{model}"', 'engine="0"', *(f'{k}="{v}"' for k, v in extra.items())]
            return '{' + ','.join(parts) + '}'

        per = {m: self.stats.model(m) for m in models}
        family(
            'vllm:num_requests_running',
            'gauge',
            'Number of requests in model execution batches.',
            [(f'vllm:num_requests_running{labels(m)}', c.running) for m, c in per.items()],
        )
        family(
            'vllm:num_requests_waiting',
            'gauge',
            'Number of requests waiting to be processed.',
            [(f'vllm:num_requests_waiting{labels(m)}', c.waiting) for m, c in per.items()],
        )
        family(
            'vllm:kv_cache_usage_perc',
            'gauge',
            'KV-cache usage. 1 means 100 percent usage.',
            [
                (f'vllm:kv_cache_usage_perc{labels(m)}', min(1.0, c.running / limit) if limit > 0 else 0.0)
                for m, c in per.items()
            ],
        )
        for base, help_text, attr in (
            ('vllm:prompt_tokens', 'Number of prefill tokens processed.', 'prompt_tokens'),
            ('vllm:generation_tokens', 'Number of generation tokens processed.', 'generation_tokens'),
        ):
            family(base, 'counter', help_text, [(f'{base}_total{labels(m)}', getattr(c, attr)) for m, c in per.items()])
            family(f'{base}_created', 'gauge', help_text, [(f'{base}_created{labels(m)}', self.started) for m in per])
        success = [
            (f'vllm:request_success_total{labels(m, finished_reason=reason)}', c.finished.get(reason, 0))
            for m, c in per.items()
            for reason in ('stop', 'length', 'abort', 'error')
        ]
        family('vllm:request_success', 'counter', 'Count of successfully processed requests.', success)
        return '\n'.join(lines) + '\n'

    # -- completions --------------------------------------------------------------------------------------------
    @staticmethod
    def _prompts(body: dict[str, Any]) -> list[tuple[str, int]]:
        """(seed text, prompt tokens) per prompt; token-id prompts use their ids, space-joined, as seed text."""
        prompt = body.get('prompt')
        if isinstance(prompt, str):
            return [(prompt, count_prompt_tokens([prompt]))]
        if isinstance(prompt, list) and prompt:
            if all(isinstance(p, str) for p in prompt):
                return [(p, count_prompt_tokens([p])) for p in prompt]
            if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
                return [(' '.join(map(str, prompt)), len(prompt))]
            if all(isinstance(p, list) and all(isinstance(i, int) for i in p) for p in prompt):
                return [(' '.join(map(str, p)), len(p)) for p in prompt]
        raise field_error('Field required' if prompt is None else 'Input should be a valid string', 'prompt')

    async def completions(self, request: Request) -> Response | StreamResponse:
        try:
            body = self.body(request)
            model = self.model(body)
            if is_pooling_model(model):
                return await self.not_found(request)
            jobs: list[Job] = []
            for seed, prompt_tokens in self._prompts(body):
                limit = self.limits(body, prompt_tokens, COMPLETIONS_DEFAULT_MAX_TOKENS)
                job = Job(model, prompt_tokens)
                job.plan_answer(seed, self.config.tokens, limit, self.stops(body))
                jobs.append(job)
        except BadRequest as e:
            return self.bad(e)
        if body.get('stream') is True:
            include_usage, continuous = self.stream_flags(body)
            return StreamResponse(self._completion_events(jobs, include_usage, continuous), SSE)
        for job in jobs:
            await self.complete(job)
        total = Job(model, sum(j.prompt_tokens for j in jobs))
        total.completion_tokens = sum(j.completion_tokens for j in jobs)
        return self.json(
            {
                'id': f'cmpl-{rid()}',
                'object': 'text_completion',
                'created': int(time.time()),
                'model': model,
                'choices': [
                    {
                        'index': i,
                        'text': job.text,
                        'logprobs': None,
                        'finish_reason': job.finish,
                        'stop_reason': job.stop_reason,
                        'token_ids': None,
                        'prompt_logprobs': None,
                        'prompt_token_ids': None,
                    }
                    for i, job in enumerate(jobs)
                ],
                'service_tier': None,
                'system_fingerprint': self.system_fingerprint,
                'usage': self.usage(total),
                'kv_transfer_params': None,
            }
        )

    async def _completion_events(self, jobs: list[Job], include_usage: bool, continuous: bool) -> AsyncIterator[bytes]:
        head = {
            'id': f'cmpl-{rid()}',
            'object': 'text_completion',
            'created': int(time.time()),
            'model': jobs[0].model,
        }
        fingerprint = {} if include_usage else {'system_fingerprint': self.system_fingerprint}
        for index, job in enumerate(jobs):
            # "length" rides on the last token's chunk; an end of sequence (or a stop string) gets its own chunk.
            last = job.step_count() - 1 if job.finish == 'length' else -1
            i = -1
            async with aclosing(self.steps(job)) as steps:
                async for _kind, text in steps:
                    i += 1
                    if i == last:
                        yield self._completion_event(head, index, text, job, i + 1, continuous, fingerprint, True)
                    else:
                        yield self._completion_event(head, index, text, job, i + 1, continuous, {}, False)
            if last < 0 or i != last:
                tokens = job.completion_tokens
                yield self._completion_event(head, index, '', job, tokens, continuous, fingerprint, True)
        if include_usage:
            prompt = sum(j.prompt_tokens for j in jobs)
            completion = sum(j.completion_tokens for j in jobs)
            usage = {'prompt_tokens': prompt, 'total_tokens': prompt + completion, 'completion_tokens': completion}
            chunk = {**head, 'choices': [], 'usage': usage, 'system_fingerprint': self.system_fingerprint}
            yield b'data: ' + dumps(chunk) + b'\n\n'
        yield DONE

    @classmethod
    def _completion_event(
        cls,
        head: dict[str, Any],
        index: int,
        text: str,
        job: Job,
        emitted: int,
        continuous: bool,
        extra: dict[str, Any],
        final: bool,
    ) -> bytes:
        choice = {
            'index': index,
            'text': text,
            'logprobs': None,
            'finish_reason': job.finish if final else None,
            'stop_reason': job.stop_reason if final else None,
            'prompt_token_ids': None,
            'token_ids': None,
        }
        return cls.sse_chunk({**head, 'choices': [choice], **extra}, job, emitted if continuous else None)
