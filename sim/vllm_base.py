"""What every route of the fake vLLM shares: its error format, model lookup, request limits and usage blocks.

The routes themselves live in sim.vllm (probes, listings, completions), sim.vllm_chat and sim.vllm_pooling; they
are mixins of `VllmBase`, assembled into `sim.vllm.VllmEngine`.
"""

from __future__ import annotations

import functools
import hashlib
import random
from typing import Any

from sim.engine import BaseEngine, Job, dumps, json_object
from sim.http import Request, Response

SSE = 'text/event-stream; charset=utf-8'
DONE = b'data: [DONE]\n\n'
FAULT_MESSAGE = 'EngineCore encountered an issue. See stack trace (above) for the root cause.'
BUSY_MESSAGE = 'The server is overloaded: too many requests waiting. Please retry later.'


@functools.lru_cache(maxsize=16)
def fingerprint(version: str) -> str:
    """vLLM's `vllm-<version>-<hash>` system_fingerprint (the hash stands for the build)."""
    return f'vllm-{version}-{hashlib.sha256(version.encode()).hexdigest()[:8]}'


def rid() -> str:
    # random.getrandbits, not os.urandom: no system call per id (these ids need to be unique, not secret).
    return f'{random.getrandbits(128):032x}'


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class BadRequest(Exception):
    """An error answer in vLLM's format, raised from request parsing."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, kind: str = 'BadRequestError'):
        super().__init__(message)
        self.message, self.param, self.status, self.kind = message, param, status, kind


def field_error(message: str, field: str) -> BadRequest:
    """A pydantic validation error, as vLLM's RequestValidationError handler reports it ('Bad Request')."""
    return BadRequest(message, f'body.{field}', kind='Bad Request')


class VllmBase(BaseEngine):
    engine = 'vllm'
    server_header = 'uvicorn'

    @property
    def system_fingerprint(self) -> str:
        return fingerprint(self.config.version or '0.32.0')

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

    def bad(self, e: BadRequest) -> Response:
        return self.error_response(e.status, e.message, e.kind, e.param)

    # -- request parsing ----------------------------------------------------------------------------------------
    def body(self, request: Request) -> dict[str, Any]:
        body = json_object(request.body)
        if body is None:
            raise BadRequest('JSON decode error', 'body', kind='Bad Request')
        return body

    def model(self, body: dict[str, Any]) -> str:
        """The served model a request names (the first one when it names none)."""
        models = self.config.models or []
        name = body.get('model')
        if name is None or name == '':
            if not models:
                raise BadRequest('No model is served.', 'model', 404, 'NotFoundError')
            name = models[0]
        if not isinstance(name, str) or name not in models:
            raise BadRequest(
                f'The model `{name}` does not exist. Valid aliases: {", ".join(models)}.',
                'model',
                404,
                'NotFoundError',
            )
        return name

    def limits(self, body: dict[str, Any], prompt_tokens: int, default: int | None) -> int:
        """The max_tokens in force, after vLLM's checks against max_model_len."""
        context = self.config.context_length
        if prompt_tokens >= context:
            raise BadRequest(
                f"This model's maximum context length is {context} tokens. However, your request has "
                f'{prompt_tokens} input tokens. Please reduce the length of the input messages.'
            )
        requested = int_or_none(body.get('max_completion_tokens'))
        param = 'max_completion_tokens'
        if requested is None:
            requested, param = int_or_none(body.get('max_tokens')), 'max_tokens'
        if requested is None:
            requested = default if default is not None else context - prompt_tokens
        if requested < 1:
            raise BadRequest(f'{param} must be at least 1, got {requested}.', param)
        if prompt_tokens + requested > context:
            raise BadRequest(
                f"'max_tokens' or 'max_completion_tokens' is too large: {requested}. This model's maximum context "
                f'length is {context} tokens and your request has {prompt_tokens} input tokens ({requested} > '
                f'{context} - {prompt_tokens}).',
                param,
            )
        return requested

    @staticmethod
    def stops(body: dict[str, Any]) -> list[str]:
        stop = body.get('stop') or []
        return [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]

    @staticmethod
    def stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
        options = body.get('stream_options') or {}
        if not isinstance(options, dict):
            return False, False
        include = bool(options.get('include_usage'))
        return include, include and bool(options.get('continuous_usage_stats'))

    @staticmethod
    def sse_chunk(chunk: dict[str, Any], job: Job, emitted: int | None) -> bytes:
        """One stream event; with continuous usage stats (`emitted` = completion tokens so far), its usage."""
        if emitted is not None:
            chunk['usage'] = {
                'prompt_tokens': job.prompt_tokens,
                'total_tokens': job.prompt_tokens + emitted,
                'completion_tokens': emitted,
            }
        return b'data: ' + dumps(chunk) + b'\n\n'

    @staticmethod
    def usage(job: Job, details: bool = True) -> dict[str, Any]:
        usage: dict[str, Any] = {
            'prompt_tokens': job.prompt_tokens,
            'total_tokens': job.prompt_tokens + job.completion_tokens,
            'completion_tokens': job.completion_tokens,
        }
        if details:
            usage['prompt_tokens_details'] = None
        return usage
