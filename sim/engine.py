"""What the two fake engines share: routing with fault injection, admission, timing and accounting of a job, and
the /_sim control routes. The engines (sim.ollama, sim.vllm) add their wire formats on top."""

from __future__ import annotations

import asyncio
import functools
import random
import re
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Literal

import orjson

from sim.config import Engine, SimConfig
from sim.http import AbortConnection, CloseConnection, EarlyResponse, Handler, Request, Response, Router, StreamResponse
from sim.slots import QueueFull, Slots
from sim.stats import SimStats
from sim.text import apply_stop, expected_thinking_tokens, expected_tokens
from sim.tools import TOOL_CALL_TOKENS, ToolCall

StepKind = Literal['thinking', 'content', 'tool']  # a 'tool' step's text is the index of the job's tool call
Step = tuple[StepKind, str]


class Job:
    """One request's work: the tokens to emit, the counts to report and, once run, when things happened
    (time.perf_counter_ns values)."""

    __slots__ = (
        'completion_tokens',
        'content',
        'finish',
        'load_s',
        'model',
        'prompt_tokens',
        'stop_reason',
        't_admitted',
        't_end',
        't_first',
        't_loaded',
        't_start',
        'thinking',
        'tool_calls',
    )

    def __init__(self, model: str, prompt_tokens: int) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.thinking: Sequence[str] = ()  # reasoning tokens, emitted first
        self.content: Sequence[str] = ()  # answer tokens
        self.tool_calls: list[ToolCall] = []  # instead of an answer
        self.completion_tokens = 0
        self.finish = 'stop'  # 'stop' | 'length'
        self.stop_reason: str | None = None  # the stop sequence that ended the answer
        self.load_s = 0.0
        self.t_start = time.perf_counter_ns()
        self.t_admitted = self.t_loaded = self.t_first = self.t_end = self.t_start

    @property
    def text(self) -> str:
        return ''.join(self.content)

    @property
    def reasoning(self) -> str:
        return ''.join(self.thinking)

    def step_count(self) -> int:
        return len(self.thinking) + (len(self.tool_calls) or len(self.content))

    def steps(self) -> list[Step]:
        """What a stream emits, in order: thinking tokens, then the tool calls (one step each) or the answer
        tokens."""
        out: list[Step] = [('thinking', t) for t in self.thinking]
        if self.tool_calls:
            out.extend(('tool', str(k)) for k in range(len(self.tool_calls)))
        else:
            out.extend(('content', t) for t in self.content)
        return out

    def plan_answer(
        self,
        seed_text: str,
        natural: int,
        limit: int | None,
        stops: Sequence[str] = (),
        thinking: int = 0,
        pieces: Sequence[str] | None = None,
    ) -> None:
        """Plan `thinking` reasoning tokens, then the answer of `natural` tokens, all within `limit` tokens
        (None: no limit), cut at the first stop sequence. `pieces` replaces the vocabulary answer (a structured
        output's JSON, for instance): its pieces are the tokens and `natural` is ignored."""
        think = thinking if limit is None else min(thinking, limit)
        if think:
            self.thinking = expected_thinking_tokens(seed_text, think)
        room = None if limit is None else limit - think
        if pieces is not None:
            natural = len(pieces)
        n = natural if room is None else min(natural, room)
        tokens: Sequence[str] = expected_tokens(seed_text, n) if pieces is None else tuple(pieces[:n])
        if stops:
            tokens, consumed, self.stop_reason = apply_stop(tokens, stops)
        else:
            consumed = n
        self.content = tokens
        self.completion_tokens = think + consumed
        if self.stop_reason is None and room is not None and room < natural:
            self.finish = 'length'

    def plan_tool_calls(self, calls: list[ToolCall], seed_text: str = '', thinking: int = 0) -> None:
        """Plan `thinking` reasoning tokens, then `calls` (TOOL_CALL_TOKENS completion tokens each)."""
        if thinking:
            self.thinking = expected_thinking_tokens(seed_text, thinking)
        self.tool_calls = calls
        self.completion_tokens = thinking + TOOL_CALL_TOKENS * len(calls)


@functools.lru_cache(maxsize=1024)
def is_thinking_model(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in ('qwen3', 'deepseek-r1', 'gpt-oss', 'qwq', 'magistral'))


@functools.lru_cache(maxsize=1024)
def is_reranker_model(name: str) -> bool:
    """A cross-encoder (vLLM: served by /rerank and /score, not by chat or /v1/embeddings)."""
    return 'rerank' in name.lower()


@functools.lru_cache(maxsize=1024)
def is_embedding_model(name: str) -> bool:
    lowered = name.lower()
    if is_reranker_model(lowered):  # 'BAAI/bge-reranker-v2-m3' is no embedding model despite its 'bge-'
        return False
    return any(marker in lowered for marker in ('embed', 'bge-', 'bge_', 'e5-', 'gte-', 'minilm'))


def is_pooling_model(name: str) -> bool:
    """A model vLLM serves with its pooling runner: no chat or completions routes."""
    return is_embedding_model(name) or is_reranker_model(name)


_VISION_MARKERS = ('vl', 'vision', 'llava', 'pixtral', 'gemma-3', 'gemma3')
_TEXT_ONLY_GEMMA3 = re.compile(r'gemma-?3[^/]*?[-:](270m|1b)(?![a-z0-9])')


@functools.lru_cache(maxsize=1024)
def is_vision_model(name: str) -> bool:
    """A model that takes images: a name with a multimodal marker (Gemma 3 except the text-only 270M and 1B)."""
    lowered = name.lower()
    if _TEXT_ONLY_GEMMA3.search(lowered):
        return False
    return any(marker in lowered for marker in _VISION_MARKERS)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def json_object(body: bytes) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is not one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class BaseEngine:
    engine: Engine
    json_content_type = 'application/json'
    server_header: str | None = None

    def __init__(self, config: SimConfig, stats: SimStats) -> None:
        self.config = config
        self.stats = stats
        self.slots = Slots(config, stats)
        self._fault_draw = random.Random(0)  # which requests get the fault when fault_rate < 1 (repeatable)
        self.router = Router(self._counted(self.not_found, False), self._counted(self.method_not_allowed, False))
        self.router.add('GET', '/_sim/config', self._get_config)
        self.router.add('POST', '/_sim/config', self._post_config)
        self.router.add('GET', '/_sim/stats', self._get_stats)
        self.router.add('POST', '/_sim/stats/reset', self._reset_stats)

    # -- engine-specific answers (overridden) -------------------------------------------------------------------
    async def not_found(self, request: Request) -> Response:
        return Response(404, b'404 page not found', 'text/plain')

    async def method_not_allowed(self, request: Request) -> Response:
        return await self.not_found(request)

    def error_response(self, status: int, message: str) -> Response:
        raise NotImplementedError

    def busy_response(self) -> Response:
        raise NotImplementedError

    def fault_response(self) -> Response:
        raise NotImplementedError

    # -- helpers for the engines --------------------------------------------------------------------------------
    def json(self, obj: Any, status: int = 200) -> Response:
        return Response(status, orjson.dumps(obj), self.json_content_type)

    def route(self, method: str, path: str, handler: Handler, *, inference: bool = False) -> None:
        self.router.add(method, path, self._counted(handler, inference))

    def _admit_now(self, job: Job) -> bool:
        """The fast path of `_admit`: a free slot and a warm model, so nothing to wait for."""
        if job.load_s > 0 or not self.slots.try_acquire():
            return False
        self.stats.enter()
        self.stats.model(job.model).running += 1
        job.t_admitted = job.t_loaded = time.perf_counter_ns()
        return True

    async def _admit(self, job: Job) -> None:
        """Wait for a slot (EarlyResponse 503 when the queue is full), then load the model if it is cold."""
        stats = self.stats
        counters = stats.model(job.model)
        stats.enter()
        counters.waiting += 1
        try:
            await self.slots.acquire()
        except QueueFull:
            stats.in_flight -= 1
            stats.rejected += 1
            raise EarlyResponse(self.busy_response()) from None
        except BaseException:
            stats.in_flight -= 1
            stats.cancelled += 1
            raise
        finally:
            counters.waiting -= 1
        counters.running += 1
        job.t_admitted = time.perf_counter_ns()
        if job.load_s > 0:
            try:
                await asyncio.sleep(job.load_s)
            except BaseException:
                self._release(job, 'cancelled')
                raise
        job.t_loaded = time.perf_counter_ns()

    def _release(self, job: Job, outcome: str) -> None:
        """Free the slot and account for the job: 'served', 'fault' or 'cancelled'."""
        stats = self.stats
        counters = stats.model(job.model)
        self.slots.release()
        counters.running -= 1
        stats.in_flight -= 1
        if outcome == 'served':
            stats.requests_served += 1
            stats.prompt_tokens += job.prompt_tokens
            stats.generation_tokens += job.completion_tokens
            counters.prompt_tokens += job.prompt_tokens
            counters.generation_tokens += job.completion_tokens
            counters.finished[job.finish] += 1
        elif outcome == 'fault':
            stats.faults += 1
            counters.finished['error'] += 1
        else:
            stats.cancelled += 1
            counters.finished['abort'] += 1

    async def steps(self, job: Job) -> AsyncGenerator[Step, None]:
        """Run `job` and yield its steps in real time: `ttft_ms` before the first, `token_delay_ms` between two.

        The die_mid_stream fault raises CloseConnection after `fault_after_tokens` steps (before the end of the
        answer at the latest). A client that goes away cancels the generation at its next await, or closes this
        generator at its yield; either way the slot is released and the job counted as cancelled.
        """
        if not self._admit_now(job):
            await self._admit(job)
        outcome = 'cancelled'
        try:
            config = self.config
            cut = config.fault_after_tokens if config.fault == 'die_mid_stream' and self._faulty() else -1
            if config.ttft_ms > 0:
                await asyncio.sleep(config.ttft_ms / 1000)
            delay = config.token_delay_ms / 1000
            steps = job.steps()
            for i, step in enumerate(steps):
                if i == cut:
                    outcome = 'fault'
                    raise CloseConnection
                if i == 0:
                    job.t_first = time.perf_counter_ns()
                elif delay > 0:
                    await asyncio.sleep(delay)
                yield step
            if cut >= 0:
                outcome = 'fault'
                raise CloseConnection
            job.t_end = time.perf_counter_ns()
            if not steps:
                job.t_first = job.t_end
            outcome = 'served'
        finally:
            self._release(job, outcome)

    async def complete(self, job: Job) -> None:
        """Run `job` for a non-streaming answer: the same timing and faults as `steps`, in one sleep."""
        config = self.config
        if not self._admit_now(job):
            await self._admit(job)
        elif not config.ttft_ms and not config.token_delay_ms and config.fault is None:
            job.t_first = job.t_end = job.t_admitted  # nothing to wait for: the benchmark fast path
            self._release(job, 'served')
            return
        outcome = 'cancelled'
        try:
            n = job.step_count()
            cut = config.fault_after_tokens if config.fault == 'die_mid_stream' and self._faulty() else -1
            shown = n if cut < 0 else min(cut, n)
            delay_ms = config.ttft_ms + config.token_delay_ms * max(shown - 1, 0)
            first_at = time.perf_counter_ns() + int(config.ttft_ms * 1e6)
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
            if cut >= 0:
                outcome = 'fault'
                raise CloseConnection
            job.t_end = time.perf_counter_ns()
            job.t_first = min(first_at, job.t_end)
            outcome = 'served'
        finally:
            self._release(job, outcome)

    # -- fault injection and counting ---------------------------------------------------------------------------
    def _counted(self, handler: Handler, inference: bool) -> Handler:
        stats = self.stats

        async def counted(request: Request) -> Response | StreamResponse:
            stats.http_requests += 1
            if inference:
                stats.requests_total += 1
            fault = self.config.fault
            # die_mid_stream strikes an answer in progress (steps/complete); before one, it is a refusal
            acts_now = fault is not None and (fault != 'die_mid_stream' or not inference)
            if acts_now and (inference or self.config.fault_scope == 'all') and self._faulty():
                if fault == 'refuse' or fault == 'die_mid_stream':
                    stats.faults += 1
                    raise AbortConnection
                if fault == 'error_500':
                    stats.faults += 1
                    return self.fault_response()
                if fault == 'hang':
                    stats.faults += 1
                    await self._hang()
            response = await handler(request)
            if inference and isinstance(response, Response) and 400 <= response.status < 500:
                stats.client_errors += 1
            return response

        return counted

    def _faulty(self) -> bool:
        """Whether this request gets the configured fault (every one at fault_rate 1, none at 0)."""
        rate = self.config.fault_rate
        return rate >= 1.0 or (rate > 0.0 and self._fault_draw.random() < rate)

    async def _hang(self) -> None:
        """Never answer; the request counts as in flight until the client gives up."""
        self.stats.enter()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self.stats.cancelled += 1
            raise
        finally:
            self.stats.in_flight -= 1

    # -- /_sim control routes (never subject to faults) ---------------------------------------------------------
    async def _get_config(self, request: Request) -> Response:
        return Response(200, orjson.dumps(self.config.to_dict()))

    async def _post_config(self, request: Request) -> Response:
        values = json_object(request.body)
        if values is None:
            return Response(400, orjson.dumps({'error': 'body must be a JSON object of knob values'}))
        try:
            self.config.update(values)
        except ValueError as e:
            return Response(400, orjson.dumps({'error': str(e)}))
        self.slots.wake()  # a raised max_concurrency lets waiters in at once
        return Response(200, orjson.dumps(self.config.to_dict()))

    async def _get_stats(self, request: Request) -> Response:
        return Response(200, orjson.dumps(self.stats.to_dict()))

    async def _reset_stats(self, request: Request) -> Response:
        self.stats.reset()
        return Response(200, orjson.dumps(self.stats.to_dict()))
