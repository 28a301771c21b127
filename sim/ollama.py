"""The fake Ollama: the native /api/* surface, field by field as Ollama's api/types.go marshals it.

Wire rules reproduced: NDJSON streams (`application/x-ndjson`, one object per line), `stream` true unless it is
false, `created_at` RFC 3339 UTC with nanoseconds, durations as integer nanoseconds, `{"error": "..."}` bodies,
`done_reason` stop/length/load/unload, tool-call arguments as JSON objects (every call of an answer in one
chunk, as Ollama's tool parser hands them over whole), `message.thinking` fragments, `format` ("json" or a JSON
Schema) and `images` for models with the `vision` capability.

This module holds the inference routes; the model registry and the other routes are in sim.ollama_models.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from sim.catalog import ModelCard
from sim.config import SimConfig
from sim.engine import Job, dumps
from sim.http import Request, Response, StreamResponse
from sim.ollama_models import NDJSON, OllamaModels, keep_alive_seconds, rfc3339_nano
from sim.stats import SimStats
from sim.structured import Constraint, constrained_text, json_pieces
from sim.text import (
    chat_prompt,
    count_prompt_tokens,
    embedding_vector,
    expected_text,
    prompt_token_ids,
    reply_tokens,
    seed_message,
    vision_seed_text,
    word_id,
)
from sim.tools import auto_tool_calls

# Ollama answers images sent to a model without a vision projector with this runner error.
NO_VISION_MESSAGE = 'this model is missing data required for image input'
TOOL_CALL_IDS_SINCE = (0, 12, 10)  # the release that added `id` to tool calls ("call_" + 8 characters)
_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789'


def version_tuple(version: str | None) -> tuple[int, ...]:
    """'0.12.10' -> (0, 12, 10); a version the fake cannot read counts as the newest."""
    parts = re.findall(r'\d+', version or '')
    return tuple(int(p) for p in parts[:3]) if parts else (1_000_000,)


def images_in(message: Any) -> int:
    images = message.get('images') if isinstance(message, Mapping) else None
    return len(images) if isinstance(images, list) else 0


class OllamaEngine(OllamaModels):
    def __init__(self, config: SimConfig, stats: SimStats) -> None:
        super().__init__(config, stats)
        self.route('POST', '/api/chat', self.chat, inference=True)
        self.route('POST', '/api/generate', self.generate, inference=True)
        self.route('POST', '/api/embed', self.embed, inference=True)
        self.route('POST', '/api/embeddings', self.embeddings, inference=True)

    # -- inference ----------------------------------------------------------------------------------------------
    def _common(self, body: dict[str, Any]) -> tuple[ModelCard, str, dict[str, Any], float] | Response:
        """Validate what the inference routes share: model, options, keep_alive."""
        name = body.get('model')
        if not isinstance(name, str) or not name:
            return self.error_response(400, 'model is required')
        card = self.find(name)
        if card is None:
            return self._not_found_model(name)
        options = body.get('options') or {}
        if not isinstance(options, dict):
            return self.error_response(400, 'options must be an object')
        keep_alive = keep_alive_seconds(body.get('keep_alive'))
        if keep_alive is None:
            return self.error_response(400, f'time: invalid duration "{body.get("keep_alive")}"')
        return card, name, options, keep_alive

    def _thinking(self, body: dict[str, Any], card: ModelCard, name: str) -> bool | Response:
        think = body.get('think')
        wants = think is True or think in ('low', 'medium', 'high', 'max')
        if wants and 'thinking' not in card.capabilities:
            return self.error_response(400, f"'{name}' does not support thinking")
        return wants

    def _constraint(self, body: dict[str, Any]) -> Constraint | Response | None:
        """`format`: "json" (any JSON object) or a JSON Schema object; null and "" mean none. Anything else is
        the runner's error, a 500 as Ollama reports it."""
        fmt = body.get('format')
        if fmt is None or fmt == '':
            return None
        if fmt == 'json':
            return 'object', None
        if isinstance(fmt, dict):
            return 'schema', fmt
        shown = dumps(fmt).decode()
        return self.error_response(500, f'invalid format: {shown}; expected "json" or a valid JSON Schema object')

    def _plan(
        self,
        job: Job,
        seed: str,
        options: dict[str, Any],
        thinking: bool,
        constraint: Constraint | None = None,
    ) -> None:
        limit = options.get('num_predict')
        # num_predict -1 (infinite) and -2 (fill the context) do not shorten the answer.
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 else None
        stops = options.get('stop') or []
        stops = [stops] if isinstance(stops, str) else [s for s in stops if isinstance(s, str)]
        pieces = None
        if constraint is not None:
            answer = expected_text(seed, self.config.tokens)
            pieces = json_pieces(constrained_text(constraint, seed, answer, self.config.schema_violation))
        elif self.config.reply is not None:
            pieces = reply_tokens(self.config.reply)
        think = self.config.thinking_tokens if thinking else 0
        job.plan_answer(seed, self.config.tokens, limit, stops, think, pieces)

    def _inputs(self, card: ModelCard, images: int, body: dict[str, Any]) -> Constraint | Response | None:
        """Images only for a model with vision, then the `format` constraint (or the error refusing either)."""
        if images and 'vision' not in card.capabilities:
            return self.error_response(400, NO_VISION_MESSAGE)
        return self._constraint(body)

    @staticmethod
    def _metrics(job: Job) -> dict[str, int]:
        # Measured durations, at least 1 ns: Ollama omits zero durations (omitempty), real ones never are.
        return {
            'total_duration': (job.t_end - job.t_start) or 1,
            'load_duration': (job.t_loaded - job.t_admitted) or 1,
            'prompt_eval_count': job.prompt_tokens,
            'prompt_eval_duration': (job.t_first - job.t_loaded) or 1,
            'eval_count': job.completion_tokens,
            'eval_duration': (job.t_end - job.t_first) or 1,
        }

    def _tool_calls(self, job: Job) -> list[dict[str, Any]]:
        """The calls as Ollama marshals them; `id` only from the release that added it (the `version` knob)."""
        with_ids = version_tuple(self.config.version) >= TOOL_CALL_IDS_SINCE
        calls: list[dict[str, Any]] = []
        for k, call in enumerate(job.tool_calls):
            entry: dict[str, Any] = {}
            if with_ids:
                entry['id'] = 'call_' + ''.join(random.choices(_ID_ALPHABET, k=8))
            entry['function'] = {'index': k, 'name': call.name, 'arguments': call.arguments}
            calls.append(entry)
        return calls

    async def chat(self, request: Request) -> Response | StreamResponse:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        common = self._common(body)
        if isinstance(common, Response):
            return common
        card, name, options, keep_alive = common
        if card.is_embedding:
            return self.error_response(400, f'"{name}" does not support chat')
        messages = body.get('messages') or []
        if not isinstance(messages, list):
            return self.error_response(400, 'messages must be an array')
        thinking = self._thinking(body, card, name)
        if isinstance(thinking, Response):
            return thinking
        tools = body.get('tools')
        if tools and 'tools' not in card.capabilities:
            return self.error_response(400, f'registry.ollama.ai/library/{card.name} does not support tools')
        images = 0
        for m in messages:
            if isinstance(m, dict) and 'images' in m:  # the common text-only chat pays one lookup per message
                images += images_in(m)
        constraint = self._inputs(card, images, body)
        if isinstance(constraint, Response):
            return constraint
        load_s = self._touch(card, keep_alive, options.get('num_ctx'))
        if not messages:
            reason = 'unload' if keep_alive == 0 else 'load'
            empty = {'role': 'assistant', 'content': ''}
            return self.json(
                {'model': name, 'created_at': rfc3339_nano(), 'message': empty, 'done_reason': reason, 'done': True}
            )
        prompt_tokens, seed = chat_prompt(messages)
        if images:
            seed = vision_seed_text(seed, images_in(seed_message(messages)))
        job = Job(card.name, prompt_tokens)
        job.load_s = load_s
        calls = auto_tool_calls(tools, messages, self.config.tool_call) if tools else []
        if calls:
            job.plan_tool_calls(calls, seed, self.config.thinking_tokens if thinking else 0)
        else:
            self._plan(job, seed, options, thinking, constraint)
        if body.get('stream') is False:
            await self.complete(job)
            message: dict[str, Any] = {'role': 'assistant', 'content': job.text}
            thoughts = job.reasoning
            if thoughts:
                message['thinking'] = thoughts
            if job.tool_calls:
                message['tool_calls'] = self._tool_calls(job)
            return self.json(
                {
                    'model': name,
                    'created_at': rfc3339_nano(),
                    'message': message,
                    'done_reason': job.finish,
                    'done': True,
                    **self._metrics(job),
                }
            )
        return StreamResponse(self._chat_lines(job, name), NDJSON)

    async def _chat_lines(self, job: Job, name: str) -> AsyncIterator[bytes]:
        last_call = str(len(job.tool_calls) - 1)
        async with aclosing(self.steps(job)) as steps:
            async for kind, text in steps:
                if kind == 'content':
                    message: dict[str, Any] = {'role': 'assistant', 'content': text}
                elif kind == 'thinking':
                    message = {'role': 'assistant', 'content': '', 'thinking': text}
                elif text == last_call:  # the calls go out together, once the last one is complete
                    message = {'role': 'assistant', 'content': '', 'tool_calls': self._tool_calls(job)}
                else:
                    continue
                yield dumps({'model': name, 'created_at': rfc3339_nano(), 'message': message, 'done': False}) + b'\n'
        final = {
            'model': name,
            'created_at': rfc3339_nano(),
            'message': {'role': 'assistant', 'content': ''},
            'done_reason': job.finish,
            'done': True,
            **self._metrics(job),
        }
        yield dumps(final) + b'\n'

    async def generate(self, request: Request) -> Response | StreamResponse:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        common = self._common(body)
        if isinstance(common, Response):
            return common
        card, name, options, keep_alive = common
        if card.is_embedding:
            return self.error_response(400, f'"{name}" does not support generate')
        thinking = self._thinking(body, card, name)
        if isinstance(thinking, Response):
            return thinking
        prompt = body.get('prompt') or ''
        if not isinstance(prompt, str):
            return self.error_response(400, 'prompt must be a string')
        images = images_in(body)
        constraint = self._inputs(card, images, body)
        if isinstance(constraint, Response):
            return constraint
        load_s = self._touch(card, keep_alive, options.get('num_ctx'))
        if not prompt:
            reason = 'unload' if keep_alive == 0 else 'load'
            return self.json(
                {'model': name, 'created_at': rfc3339_nano(), 'response': '', 'done': True, 'done_reason': reason}
            )
        system = body.get('system')
        texts = [system, prompt] if isinstance(system, str) and system else [prompt]
        context_in = body.get('context')
        context_in = [i for i in context_in if isinstance(i, int)] if isinstance(context_in, list) else []
        job = Job(card.name, count_prompt_tokens(texts) + len(context_in))
        job.load_s = load_s
        self._plan(job, vision_seed_text(prompt, images), options, thinking, constraint)
        context = context_in + prompt_token_ids(texts)
        if body.get('stream') is False:
            await self.complete(job)
            out: dict[str, Any] = {'model': name, 'created_at': rfc3339_nano(), 'response': job.text}
            thoughts = job.reasoning
            if thoughts:
                out['thinking'] = thoughts
            out.update(done=True, done_reason=job.finish, context=self._context(context, job), **self._metrics(job))
            return self.json(out)
        return StreamResponse(self._generate_lines(job, name, context), NDJSON)

    @staticmethod
    def _context(prompt_ids: list[int], job: Job) -> list[int]:
        return prompt_ids + [word_id(t.strip()) for t in job.content]

    async def _generate_lines(self, job: Job, name: str, context: list[int]) -> AsyncIterator[bytes]:
        async with aclosing(self.steps(job)) as steps:
            async for kind, text in steps:
                line: dict[str, Any] = {'model': name, 'created_at': rfc3339_nano()}
                if kind == 'thinking':
                    line.update(response='', thinking=text, done=False)
                else:
                    line.update(response=text, done=False)
                yield dumps(line) + b'\n'
        final = {
            'model': name,
            'created_at': rfc3339_nano(),
            'response': '',
            'done': True,
            'done_reason': job.finish,
            'context': self._context(context, job),
            **self._metrics(job),
        }
        yield dumps(final) + b'\n'

    async def embed(self, request: Request) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        common = self._common(body)
        if isinstance(common, Response):
            return common
        card, name, options, keep_alive = common
        raw = body.get('input')
        if raw is None:
            inputs: list[str] = []
        elif isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            inputs = list(raw)
        else:
            return self.error_response(400, 'invalid input type')
        dims = body.get('dimensions')
        dim = self.config.embedding_dim
        if isinstance(dims, int) and not isinstance(dims, bool) and dims > 0:
            dim = min(dim, dims)
        job = Job(card.name, count_prompt_tokens(inputs))
        job.load_s = self._touch(card, keep_alive, options.get('num_ctx'))
        if inputs:
            await self.complete(job)
        else:
            job.t_end = time.perf_counter_ns()
        return self.json(
            {
                'model': name,
                'embeddings': [embedding_vector(t, dim) for t in inputs],
                'total_duration': max(1, job.t_end - job.t_start),
                'load_duration': max(1, job.t_loaded - job.t_admitted),
                'prompt_eval_count': job.prompt_tokens,
            }
        )

    async def embeddings(self, request: Request) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        common = self._common(body)
        if isinstance(common, Response):
            return common
        card, _name, options, keep_alive = common
        prompt = body.get('prompt') or ''
        if not isinstance(prompt, str):
            return self.error_response(400, 'prompt must be a string')
        job = Job(card.name, count_prompt_tokens([prompt]))
        job.load_s = self._touch(card, keep_alive, options.get('num_ctx'))
        if not prompt:
            return self.json({'embedding': []})
        await self.complete(job)
        # The legacy endpoint returns the raw (not normalised) vector.
        return self.json({'embedding': embedding_vector(prompt, self.config.embedding_dim, normalize=False)})
