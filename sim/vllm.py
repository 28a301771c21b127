"""The fake vLLM: the OpenAI-compatible server of vLLM 0.32, field by field.

Shapes follow vLLM's pydantic models and how its server serialises them: full `model_dump()` for plain responses
(so null fields such as `refusal`, `stop_reason`, `token_ids`, `prompt_logprobs` are present), and
`exclude_unset` stream chunks (only the fields vLLM sets: no `usage` key on ordinary chunks, `stop_reason` only on
the finishing chunk). Errors use `{"error": {"message", "type", "param", "code"}}`; unknown routes FastAPI's
`{"detail": ...}`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from sim.config import SimConfig
from sim.engine import BaseEngine, Job, dumps, is_embedding_model, is_thinking_model, json_object, wants_tool_call
from sim.http import Request, Response, StreamResponse
from sim.stats import SimStats
from sim.text import (
    chat_prompt,
    chat_prompt_texts,
    count_prompt_tokens,
    embedding_base64,
    embedding_vector,
    prompt_token_ids,
)

SSE = 'text/event-stream; charset=utf-8'
DONE = b'data: [DONE]\n\n'
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # vLLM's CompletionRequest default, unlike chat's "whatever fits"
FAULT_MESSAGE = 'EngineCore encountered an issue. See stack trace (above) for the root cause.'
BUSY_MESSAGE = 'The server is overloaded: too many requests waiting. Please retry later.'


@functools.lru_cache(maxsize=16)
def _fingerprint(version: str) -> str:
    """vLLM's `vllm-<version>-<hash>` system_fingerprint (the hash stands for the build)."""
    return f'vllm-{version}-{hashlib.sha256(version.encode()).hexdigest()[:8]}'


def _rid() -> str:
    # random.getrandbits, not os.urandom: no system call per id (these ids need to be unique, not secret).
    return f'{random.getrandbits(128):032x}'


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400, kind: str = 'BadRequestError'):
        super().__init__(message)
        self.message, self.param, self.status, self.kind = message, param, status, kind


class VllmEngine(BaseEngine):
    engine = 'vllm'
    server_header = 'uvicorn'

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

    @property
    def system_fingerprint(self) -> str:
        return _fingerprint(self.config.version or '0.32.0')

    # -- errors -------------------------------------------------------------------------------------------------
    def error_response(
        self, status: int, message: str, kind: str = 'BadRequestError', param: str | None = None
    ) -> Response:
        return self.json({'error': {'message': message, 'type': kind, 'param': param, 'code': status}}, status)

    def busy_response(self) -> Response:
        return self.error_response(503, BUSY_MESSAGE, 'ServiceUnavailableError')

    def fault_response(self) -> Response:
        return self.error_response(500, FAULT_MESSAGE, 'InternalServerError')

    async def not_found(self, request: Request) -> Response:
        return self.json({'detail': 'Not Found'}, 404)

    async def method_not_allowed(self, request: Request) -> Response:
        return self.json({'detail': 'Method Not Allowed'}, 405)

    def _bad(self, e: _BadRequest) -> Response:
        return self.error_response(e.status, e.message, e.kind, e.param)

    def _body(self, request: Request) -> dict[str, Any]:
        body = json_object(request.body)
        if body is None:
            raise _BadRequest('JSON decode error', 'body', kind='Bad Request')
        return body

    def _model(self, body: dict[str, Any]) -> str:
        """The served model a request names (the first one when it names none)."""
        models = self.config.models or []
        name = body.get('model')
        if name is None or name == '':
            if not models:
                raise _BadRequest('No model is served.', 'model', 404, 'NotFoundError')
            name = models[0]
        if not isinstance(name, str) or name not in models:
            raise _BadRequest(
                f'The model `{name}` does not exist. Valid aliases: {", ".join(models)}.',
                'model',
                404,
                'NotFoundError',
            )
        return name

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
                        'id': f'modelperm-{_rid()}',
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
            body = self._body(request)
            self._model(body)
            if 'messages' in body:
                messages = body['messages']
                if not isinstance(messages, list):
                    raise _BadRequest('Input should be a valid list', 'body.messages', kind='Bad Request')
                ids = prompt_token_ids(chat_prompt_texts(messages))
            else:
                prompt = body.get('prompt')
                if not isinstance(prompt, str):
                    raise _BadRequest('Field required', 'body.prompt', kind='Bad Request')
                ids = prompt_token_ids([prompt])
        except _BadRequest as e:
            return self._bad(e)
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

    # -- shared request parsing ---------------------------------------------------------------------------------
    def _limits(self, body: dict[str, Any], prompt_tokens: int, default: int | None) -> int:
        """The max_tokens in force, after vLLM's checks against max_model_len."""
        context = self.config.context_length
        if prompt_tokens >= context:
            raise _BadRequest(
                f"This model's maximum context length is {context} tokens. However, your request has "
                f'{prompt_tokens} input tokens. Please reduce the length of the input messages.'
            )
        requested = _int_or_none(body.get('max_completion_tokens'))
        param = 'max_completion_tokens'
        if requested is None:
            requested, param = _int_or_none(body.get('max_tokens')), 'max_tokens'
        if requested is None:
            requested = default if default is not None else context - prompt_tokens
        if requested < 1:
            raise _BadRequest(f'{param} must be at least 1, got {requested}.', param)
        if prompt_tokens + requested > context:
            raise _BadRequest(
                f"'max_tokens' or 'max_completion_tokens' is too large: {requested}. This model's maximum context "
                f'length is {context} tokens and your request has {prompt_tokens} input tokens ({requested} > '
                f'{context} - {prompt_tokens}).',
                param,
            )
        return requested

    @staticmethod
    def _stops(body: dict[str, Any]) -> list[str]:
        stop = body.get('stop') or []
        return [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]

    @staticmethod
    def _stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
        options = body.get('stream_options') or {}
        if not isinstance(options, dict):
            return False, False
        include = bool(options.get('include_usage'))
        return include, include and bool(options.get('continuous_usage_stats'))

    @staticmethod
    def _usage(job: Job, details: bool = True) -> dict[str, Any]:
        usage: dict[str, Any] = {
            'prompt_tokens': job.prompt_tokens,
            'total_tokens': job.prompt_tokens + job.completion_tokens,
            'completion_tokens': job.completion_tokens,
        }
        if details:
            usage['prompt_tokens_details'] = None
        return usage

    # -- chat -------------------------------------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response | StreamResponse:
        try:
            body = self._body(request)
            messages = body.get('messages')
            if messages is None:
                raise _BadRequest('Field required', 'body.messages', kind='Bad Request')
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise _BadRequest('Input should be a valid list', 'body.messages', kind='Bad Request')
            model = self._model(body)
            if is_embedding_model(model):
                return await self.not_found(request)  # a pooling model's server has no chat route
            prompt_tokens, seed = chat_prompt(messages)
            limit = self._limits(body, prompt_tokens, None)
        except _BadRequest as e:
            return self._bad(e)
        job = Job(model, prompt_tokens)
        tool = wants_tool_call(body.get('tools'), seed) if body.get('tool_choice', 'auto') != 'none' else None
        if tool is not None:
            job.plan_tool_call(tool)
        else:
            kwargs = body.get('chat_template_kwargs')
            enable = kwargs.get('enable_thinking') if isinstance(kwargs, dict) else None
            if enable is None and body.get('reasoning_effort') is not None:
                enable = body.get('reasoning_effort') != 'none'
            thinking = self.config.thinking_tokens if enable is True and is_thinking_model(model) else 0
            job.plan_answer(seed, self.config.tokens, limit, self._stops(body), thinking)
        if body.get('stream') is True:
            include_usage, continuous = self._stream_flags(body)
            return StreamResponse(self._chat_events(job, include_usage, continuous), SSE)
        await self.complete(job)
        return self.json(self._chat_completion(job))

    def _tool_call_id(self) -> str:
        return f'chatcmpl-tool-{_rid()}'

    def _chat_completion(self, job: Job) -> dict[str, Any]:
        content = job.text
        reasoning = job.reasoning or None
        message: dict[str, Any] = {
            'role': 'assistant',
            'content': content,
            'refusal': None,
            'annotations': None,
            'audio': None,
            'function_call': None,
        }
        finish = job.finish
        if job.tool_call is not None:
            message['content'] = None
            arguments = json.dumps(job.tool_call.arguments, ensure_ascii=False)
            message['tool_calls'] = [
                {
                    'id': self._tool_call_id(),
                    'type': 'function',
                    'function': {'name': job.tool_call.name, 'arguments': arguments},
                }
            ]
            finish = 'tool_calls'
        message['reasoning'] = reasoning
        return {
            'id': f'chatcmpl-{_rid()}',
            'object': 'chat.completion',
            'created': int(time.time()),
            'model': job.model,
            'choices': [
                {
                    'index': 0,
                    'message': message,
                    'logprobs': None,
                    'finish_reason': finish,
                    'stop_reason': job.stop_reason,
                    'token_ids': None,
                }
            ],
            'service_tier': None,
            'system_fingerprint': self.system_fingerprint,
            'usage': self._usage(job),
            'prompt_logprobs': None,
            'prompt_token_ids': None,
            'kv_transfer_params': None,
            'metrics': None,
        }

    async def _chat_events(self, job: Job, include_usage: bool, continuous: bool) -> AsyncIterator[bytes]:
        head = {
            'id': f'chatcmpl-{_rid()}',
            'object': 'chat.completion.chunk',
            'created': int(time.time()),
            'model': job.model,
        }
        emitted = 0  # completion tokens streamed so far, for continuous usage stats

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {**head, 'choices': choices, **extra}
            if continuous:
                chunk['usage'] = {
                    'prompt_tokens': job.prompt_tokens,
                    'total_tokens': job.prompt_tokens + emitted,
                    'completion_tokens': emitted,
                }
            return b'data: ' + dumps(chunk) + b'\n\n'

        role = event(
            [{'index': 0, 'delta': {'role': 'assistant', 'content': ''}, 'logprobs': None, 'finish_reason': None}],
            prompt_token_ids=None,
        )
        finish = 'tool_calls' if job.tool_call is not None else job.finish
        # "length" rides on the last token's chunk; an end of sequence (or a stop string) gets a chunk of its own.
        last = job.step_count() - 1 if finish == 'length' else -1
        fingerprint = {} if include_usage else {'system_fingerprint': self.system_fingerprint}
        sent_role = False
        i = -1
        async with aclosing(self.steps(job)) as steps:
            async for kind, text in steps:
                i += 1
                if not sent_role:
                    sent_role = True
                    yield role
                emitted += 1
                choice: dict[str, Any] = {
                    'index': 0,
                    'delta': self._delta(job, kind, text),
                    'logprobs': None,
                    'finish_reason': None,
                    'token_ids': None,
                }
                if kind == 'tool':
                    emitted = job.completion_tokens
                    yield event([choice])
                    arguments = json.dumps(job.tool_call.arguments if job.tool_call else {}, ensure_ascii=False)
                    choice = {**choice, 'delta': {'tool_calls': [{'index': 0, 'function': {'arguments': arguments}}]}}
                if i == last:
                    yield event([{**choice, 'finish_reason': finish, 'stop_reason': None}], **fingerprint)
                else:
                    yield event([choice])
        if not sent_role:
            yield role
        emitted = job.completion_tokens
        if last < 0 or i != last:
            delta: dict[str, Any] = {} if job.tool_call is not None else {'content': ''}
            yield event(
                [
                    {
                        'index': 0,
                        'delta': delta,
                        'logprobs': None,
                        'finish_reason': finish,
                        'stop_reason': job.stop_reason,
                        'token_ids': None,
                    }
                ],
                **fingerprint,
            )
        if include_usage:
            usage_chunk = {
                **head,
                'choices': [],
                'usage': self._usage(job, details=False),
                'system_fingerprint': self.system_fingerprint,
            }
            yield b'data: ' + dumps(usage_chunk) + b'\n\n'
        yield DONE

    def _delta(self, job: Job, kind: str, text: str) -> dict[str, Any]:
        if kind == 'content':
            return {'content': text}
        if kind == 'thinking':
            return {'reasoning': text}
        assert job.tool_call is not None
        return {
            'tool_calls': [
                {'id': self._tool_call_id(), 'type': 'function', 'index': 0, 'function': {'name': job.tool_call.name}}
            ]
        }

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
        raise _BadRequest(
            'Field required' if prompt is None else 'Input should be a valid string', 'body.prompt', kind='Bad Request'
        )

    async def completions(self, request: Request) -> Response | StreamResponse:
        try:
            body = self._body(request)
            model = self._model(body)
            if is_embedding_model(model):
                return await self.not_found(request)
            jobs: list[Job] = []
            for seed, prompt_tokens in self._prompts(body):
                limit = self._limits(body, prompt_tokens, COMPLETIONS_DEFAULT_MAX_TOKENS)
                job = Job(model, prompt_tokens)
                job.plan_answer(seed, self.config.tokens, limit, self._stops(body))
                jobs.append(job)
        except _BadRequest as e:
            return self._bad(e)
        if body.get('stream') is True:
            include_usage, continuous = self._stream_flags(body)
            return StreamResponse(self._completion_events(jobs, include_usage, continuous), SSE)
        for job in jobs:
            await self.complete(job)
        total = Job(model, sum(j.prompt_tokens for j in jobs))
        total.completion_tokens = sum(j.completion_tokens for j in jobs)
        return self.json(
            {
                'id': f'cmpl-{_rid()}',
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
                'usage': self._usage(total),
                'kv_transfer_params': None,
            }
        )

    async def _completion_events(self, jobs: list[Job], include_usage: bool, continuous: bool) -> AsyncIterator[bytes]:
        head = {
            'id': f'cmpl-{_rid()}',
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

    @staticmethod
    def _completion_event(
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
        chunk: dict[str, Any] = {**head, 'choices': [choice], **extra}
        if continuous:
            chunk['usage'] = {
                'prompt_tokens': job.prompt_tokens,
                'total_tokens': job.prompt_tokens + emitted,
                'completion_tokens': emitted,
            }
        return b'data: ' + dumps(chunk) + b'\n\n'

    # -- embeddings ---------------------------------------------------------------------------------------------
    async def embeddings(self, request: Request) -> Response:
        try:
            body = self._body(request)
            model = self._model(body)
            if not is_embedding_model(model):
                return await self.not_found(request)  # a generate model's server has no embeddings route
            raw = body.get('input')
            if isinstance(raw, str):
                inputs = [raw]
            elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
                inputs = list(raw)
            elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
                inputs = [' '.join(map(str, raw))]
            elif isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
                inputs = [' '.join(map(str, x)) for x in raw]
            else:
                raise _BadRequest(
                    'Field required' if raw is None else 'Input should be a valid string',
                    'body.input',
                    kind='Bad Request',
                )
            encoding = body.get('encoding_format') or 'float'
            if encoding not in ('float', 'base64'):
                raise _BadRequest("Input should be 'float' or 'base64'", 'body.encoding_format', kind='Bad Request')
            dim = self.config.embedding_dim
            dims = _int_or_none(body.get('dimensions'))
            if dims is not None:
                if dims < 1:
                    raise _BadRequest(f'dimensions must be at least 1, got {dims}.', 'dimensions')
                dim = min(dim, dims)
        except _BadRequest as e:
            return self._bad(e)
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
                'id': f'embd-{_rid()}',
                'object': 'list',
                'created': int(time.time()),
                'model': model,
                'data': data,
                'usage': self._usage(job),
            }
        )
