"""The gateway: pick a backend, translate, send, fail over before the first byte, time everything.

Non-streaming calls return a `Completion`; streaming calls return an open `UpstreamStream` whose first
deltas have already arrived (so that a backend failing before its first byte can still be replaced by
another one), and which the caller must `close()` on every exit path — that frees the slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

import orjson

from core.config import Settings
from core.errors import BackendUnavailable, InvalidRequest, ModelNotFound, UpstreamError
from core.gateway.engines import EngineAdapter
from core.gateway.http import (
    EngineConnectionError,
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamResponse,
    UpstreamTimeout,
)
from core.gateway.shaping import PromptSize, shape_for_backend
from core.gateway.upstream import UpstreamPool
from core.models import Engine
from core.registry.view import BackendState, RegistryView
from core.scheduler.cost import prompt_estimate
from core.scheduler.scheduler import ANONYMOUS, FairScheduler, Requester, Slot
from core.translate import ollama_engine, vllm_engine
from core.translate.canonical import (
    ChatRequest,
    ChatResponse,
    Delta,
    EmbeddingRequest,
    EmbeddingResponse,
    RerankRequest,
    RerankResponse,
    ScoreRequest,
    ScoreResponse,
    ToolCall,
    Usage,
)
from core.translate.engine_errors import EngineResponseError, EngineStreamError
from core.translate.ollama_dialect import OllamaTimings
from core.translate.streaming import StreamParser

log = logging.getLogger('mindrouter.gateway')

T = TypeVar('T')

# Failures where the engine cannot have produced anything for the client: safe to try another backend.
_RETRYABLE = (UpstreamConnectError, UpstreamDisconnected)


class StreamBroken(Exception):
    """The engine failed after the first byte: the client gets its dialect's error event."""


@dataclass(slots=True)
class Timing:
    queue_ms: float = 0.0
    backend_ms: float = 0.0  # time spent waiting on the engine (for streams: until its first chunk)
    attempts: int = 0
    concurrency: int = 0  # requests on the backend when the last attempt was sent, itself included


@dataclass(slots=True)
class Completion:
    response: ChatResponse
    backend: BackendState
    timing: Timing


@dataclass(slots=True)
class Answered(Generic[T]):
    """A one-shot answer (embeddings, rerank, score), who gave it and how long it took."""

    response: T
    backend: BackendState
    timing: Timing


@dataclass(slots=True, eq=False)
class UpstreamStream:
    """An engine stream in flight. Iterate `batches()`, then read `complete`, `usage`, `finish_reason`."""

    backend: BackendState
    timing: Timing
    _slot: Slot
    _response: UpstreamResponse
    _chunks: AsyncIterator[bytes]
    _parser: StreamParser
    _first: list[Delta]
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    text: list[str] = field(default_factory=list)  # the answer, for the audit trail
    _calls: dict[int, ToolCall] = field(default_factory=dict)  # tool calls, their arguments joined as they come
    _observe: Callable[[OllamaTimings], None] | None = None  # where an Ollama answer's own durations go

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [self._calls[index] for index in sorted(self._calls)]

    async def batches(self) -> AsyncIterator[list[Delta]]:
        """The deltas of each read from the engine, together: one write to the client per read, however
        many tokens it carried (under load one read often holds several)."""
        first, self._first = self._first, []
        yield self._note(first)
        try:
            async for chunk in self._chunks:
                deltas = self._parser.feed(chunk)
                if deltas:
                    yield self._note(deltas)
        except EngineConnectionError as exc:
            raise StreamBroken(f'the backend failed mid-answer: {exc}') from exc
        except EngineStreamError as exc:  # the engine's own error event (after what came before it)
            if exc.deltas:
                yield self._note(exc.deltas)
            raise StreamBroken(exc.message) from exc

    @property
    def complete(self) -> bool:
        return self._parser.done

    def release(self) -> None:
        """Free the slot now (synchronous: safe in any cleanup path, even a cancelled one), charging the user
        what the engine reported using (the estimate stands when it reported nothing, as in a cut stream)."""
        self._slot.release(self.usage.total_tokens or None)
        observe, self._observe = self._observe, None
        timings = getattr(self._parser, 'timings', None)  # Ollama's parser keeps the final object's durations
        if observe is not None and isinstance(timings, OllamaTimings):
            observe(timings)

    async def close(self) -> None:
        self.release()
        await self._response.aclose()  # an unfinished body closes the connection: the engine stops generating

    def _note(self, deltas: list[Delta]) -> list[Delta]:
        for delta in deltas:
            if delta.content:
                self.text.append(delta.content)
            for fragment in delta.tool_calls:
                call = self._calls.setdefault(fragment.index, ToolCall(id='', name='', arguments=''))
                call.id, call.name = fragment.id or call.id, fragment.name or call.name
                call.arguments += fragment.arguments
            if delta.finish_reason:
                self.finish_reason = delta.finish_reason
            if delta.usage is not None:
                self.usage = delta.usage
        return deltas


class Gateway:
    def __init__(self, *, registry: RegistryView, picker: FairScheduler, upstream: UpstreamPool,
                 adapters: Callable[[str], EngineAdapter], max_attempts: int = 3, context_cap: int = 32768,
                 override_num_ctx: bool = True, cooldown: float = 10.0,
                 on_failure: Callable[[int], None] | None = None, settings: Settings | None = None,
                 on_ollama_timings: Callable[[int, int, OllamaTimings], None] | None = None) -> None:
        self._registry = registry
        self._picker = picker
        self._upstream = upstream
        self._adapters = adapters
        self._max_attempts = max_attempts
        self._fixed_context = (context_cap, override_num_ctx)
        # Given, the cap and the override are read from it per request: an admin changes them at run time
        # (core.admin.site_settings) by assigning to this very object.
        self._settings = settings
        self._cooldown = cooldown
        self._on_failure = on_failure
        # (backend id, requests on it when sent, the answer's durations): evidence of a queue inside Ollama
        self._on_ollama_timings = on_ollama_timings

    @property
    def _context_cap(self) -> int:
        return self._fixed_context[0] if self._settings is None else self._settings.context_length_cap

    @property
    def _override_num_ctx(self) -> bool:
        return self._fixed_context[1] if self._settings is None else self._settings.ollama_override_num_ctx

    def for_backend(self, request: ChatRequest, backend: BackendState, prompt: PromptSize | None = None
                    ) -> ChatRequest:
        """The request as this backend gets it (core.gateway.shaping: thinking, context, Ollama's num_ctx)."""
        return shape_for_backend(request, backend, context_cap=self._context_cap,
                                 override_num_ctx=self._override_num_ctx, prompt=prompt)

    def resolve(self, model: str) -> str:
        """The served model name, or ModelNotFound (404 in the caller's dialect)."""
        name = self._registry.resolve(model)
        if name is None:
            raise ModelNotFound(f"The model '{model}' is not served by any backend.", param='model')
        return name

    async def complete(self, request: ChatRequest, requester: Requester = ANONYMOUS) -> Completion:
        unfit = self._unfit_for_chat(request)
        prompt = await self._prompt_size(request)
        response, backend, timing = await self._call(
            request.model, requester,
            lambda adapter, backend: adapter.chat_request(self.for_backend(request, backend, prompt)),
            lambda adapter, body: adapter.parse_chat_response(body, request),
            lambda response: response.usage.total_tokens, unfit)
        return Completion(response, backend, timing)

    async def embed(self, request: EmbeddingRequest, requester: Requester = ANONYMOUS
                    ) -> Answered[EmbeddingResponse]:
        response, backend, timing = await self._call(
            request.model, requester, lambda adapter, _backend: adapter.embed_request(request),
            lambda adapter, body: adapter.parse_embed_response(body, request.model),
            lambda response: response.prompt_tokens)
        return Answered(response, backend, timing)

    async def rerank(self, request: RerankRequest, requester: Requester = ANONYMOUS) -> Answered[RerankResponse]:
        """vLLM's /v1/rerank on a backend whose model is a reranker (Ollama serves none)."""
        return await self._on_reranker(request.model, requester, vllm_engine.rerank_request(request),
                                       lambda body: vllm_engine.parse_rerank_response(body, request),
                                       lambda response: response.total_tokens)

    async def score(self, request: ScoreRequest, requester: Requester = ANONYMOUS) -> Answered[ScoreResponse]:
        """vLLM's /v1/score on a backend whose model is a reranker."""
        return await self._on_reranker(request.model, requester, vllm_engine.score_request(request),
                                       lambda body: vllm_engine.parse_score_response(body, request),
                                       lambda response: response.prompt_tokens)

    async def _on_reranker(self, model: str, requester: Requester, call: tuple[str, dict[str, Any]],
                           parse: Callable[[dict[str, Any]], T], tokens: Callable[[T], int]) -> Answered[T]:
        unfit = self._unfit(model, 'rerank', "is not a reranker: /v1/rerank and /v1/score need one (see /v1/models, "
                            "modality 'reranking')", param='model')
        response, backend, timing = await self._call(model, requester, lambda _adapter, _backend: call,
                                                     lambda _adapter, body: parse(body), tokens, unfit)
        return Answered(response, backend, timing)

    def _unfit_for_chat(self, request: ChatRequest) -> frozenset[int]:
        serving = self._registry.serving(request.model)
        if serving and all(b.models[request.model].is_speech for b in serving):
            raise InvalidRequest(f"The model '{request.model}' is a speech model: it is served by /v1/audio/speech "
                                 "or /v1/audio/transcriptions, not by chat or completions.", param='model')
        if not request.has_images:
            return frozenset()
        return self._unfit(request.model, 'vision', "does not accept images; use a multimodal model (see /v1/models, "
                           "modality 'multimodal')", param='messages')

    def _unfit(self, model: str, capability: str, refusal: str, *, param: str) -> frozenset[int]:
        """Backends serving `model` that cannot take a request needing `capability` (and, for rerank, that
        are not vLLM); a 400 when that is all of them, before anything is queued or sent."""
        serving = self._registry.serving(model)
        unfit = frozenset(b.id for b in serving if capability not in b.models[model].capabilities
                          or (capability == 'rerank' and b.engine != Engine.vllm))
        if serving and len(unfit) == len(serving):
            raise InvalidRequest(f"The model '{model}' {refusal}.", param=param)
        return unfit

    async def _prompt_size(self, request: ChatRequest) -> PromptSize | None:
        """The prompt's size, for fitting it to the context: the estimate when it plainly fits (no cost on the
        hot path), else the count of a vLLM backend's own tokenizer (one cheap round trip), else the estimate."""
        info = self._registry.model_info(request.model)
        if info is None or info.context_length is None:
            return None
        estimate = PromptSize(prompt_estimate(request))
        context = min(info.context_length, self._context_cap)
        padded = estimate.tokens + estimate.margin
        if padded * 2 < context and padded + (request.max_tokens or 0) <= context:
            return estimate
        for backend in self._registry.serving(request.model):
            if backend.engine == Engine.vllm and backend.healthy:
                counted = await self._tokenize(backend, request)
                if counted is not None:
                    return PromptSize(counted, counted=True)
        return estimate

    async def _tokenize(self, backend: BackendState, request: ChatRequest) -> int | None:
        path, body = vllm_engine.tokenize_request(request)
        try:
            response = await self._upstream.pool(backend).request('POST', path, orjson.dumps(body))
            content = await response.read()
        except (EngineConnectionError, UpstreamTimeout):
            return None
        if response.status != 200:
            return None
        try:
            count = orjson.loads(content).get('count')
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return count if isinstance(count, int) else None

    async def _call(self, model: str, requester: Requester,
                    build: Callable[[EngineAdapter, BackendState], tuple[str, dict[str, Any]]],
                    parse: Callable[[EngineAdapter, dict[str, Any]], T],
                    tokens: Callable[[T], int], unfit: frozenset[int] = frozenset()) -> tuple[T, BackendState, Timing]:
        """One non-streaming exchange, failing over to another backend on errors before any answer."""
        timing = Timing()
        tried: set[int] = set(unfit)
        last_error = ''
        while timing.attempts < self._max_attempts:
            slot = await self._acquire(model, requester, tried, timing)
            try:  # every exit releases the slot (release is idempotent)
                adapter = self._adapters(slot.backend.engine)
                path, body = build(adapter, slot.backend)
                started = time.perf_counter()
                try:
                    response = await self._upstream.pool(slot.backend).request('POST', path, orjson.dumps(body))
                    content = await response.read()
                except _RETRYABLE as exc:
                    last_error = self._failed(slot, tried, str(exc))
                    continue
                except UpstreamTimeout as exc:
                    raise UpstreamError(f'backend {slot.backend.name}: {exc}', status_code=504) from exc
                finally:
                    elapsed = (time.perf_counter() - started) * 1000
                    timing.backend_ms += elapsed
                if response.status >= 400:
                    message = adapter.error_message(response.status, content)
                    if response.status < 500:
                        raise UpstreamError(message, status_code=response.status)
                    last_error = self._failed(slot, tried, f'HTTP {response.status}: {message}')
                    continue
                try:
                    answer = orjson.loads(content)
                    result = parse(adapter, answer)
                except (orjson.JSONDecodeError, EngineResponseError) as exc:
                    raise UpstreamError(f'backend {slot.backend.name} sent an unreadable answer: {exc}',
                                        status_code=502) from exc
                observe = self._ollama_observer(slot.backend, timing)
                if observe is not None and isinstance(answer, dict):
                    observe(ollama_engine.timings(answer))
                slot.backend.observe_latency(elapsed)
                slot.release(tokens(result) or None)  # the user's share is charged what was really used
                return result, slot.backend, timing
            finally:
                slot.release()
        raise UpstreamError(f'every backend tried failed ({timing.attempts} attempts); last error: {last_error}',
                            status_code=502)

    async def open_stream(self, request: ChatRequest, requester: Requester = ANONYMOUS) -> UpstreamStream:
        timing = Timing()
        tried: set[int] = set(self._unfit_for_chat(request))
        prompt = await self._prompt_size(request)
        last_error = ''
        while timing.attempts < self._max_attempts:
            slot = await self._acquire(request.model, requester, tried, timing)
            adapter = self._adapters(slot.backend.engine)
            path, body = adapter.chat_request(self.for_backend(request, slot.backend, prompt))
            started = time.perf_counter()
            response: UpstreamResponse | None = None
            try:
                response = await self._upstream.pool(slot.backend).request('POST', path, orjson.dumps(body))
                if response.status >= 400:
                    message = adapter.error_message(response.status, await response.read())
                    if response.status < 500:
                        slot.release()
                        raise UpstreamError(message, status_code=response.status)
                    last_error = self._failed(slot, tried, f'HTTP {response.status}: {message}')
                    continue
                parser = adapter.stream_parser(request)
                chunks = response.iter_raw()
                first: list[Delta] = []
                while not first and not parser.done:  # wait for the first byte that means something
                    first = parser.feed(await anext(chunks))
            except (StopAsyncIteration, EngineStreamError, *_RETRYABLE) as exc:
                if response is not None:
                    await response.aclose()
                reason = 'the stream ended before any token' if isinstance(exc, StopAsyncIteration) else str(exc)
                last_error = self._failed(slot, tried, reason)
                continue
            except UpstreamTimeout as exc:
                slot.release()
                if response is not None:
                    await response.aclose()
                raise UpstreamError(f'backend {slot.backend.name}: {exc}', status_code=504) from exc
            except BaseException:
                slot.release()
                if response is not None:
                    await response.aclose()
                raise
            first_byte_ms = (time.perf_counter() - started) * 1000
            timing.backend_ms += first_byte_ms
            slot.backend.observe_latency(first_byte_ms)
            return UpstreamStream(slot.backend, timing, slot, response, chunks, parser, first,
                                  _observe=self._ollama_observer(slot.backend, timing))
        raise UpstreamError(f'every backend tried failed ({timing.attempts} attempts); last error: {last_error}',
                            status_code=502)

    async def _acquire(self, model: str, requester: Requester, tried: set[int], timing: Timing) -> Slot:
        try:
            slot = await self._picker.acquire(model, requester=requester, exclude=frozenset(tried))
        except BackendUnavailable:
            if timing.attempts:  # we did have backends; they failed
                raise UpstreamError(f'every backend serving {model!r} failed', status_code=502) from None
            raise
        timing.queue_ms += slot.queued_ms
        timing.attempts += 1
        timing.concurrency = slot.backend.total_in_flight
        return slot

    def _ollama_observer(self, backend: BackendState, timing: Timing) -> Callable[[OllamaTimings], None] | None:
        if self._on_ollama_timings is None or backend.engine != Engine.ollama:
            return None
        return partial(self._on_ollama_timings, backend.id, timing.concurrency)

    def _failed(self, slot: Slot, tried: set[int], reason: str) -> str:
        """A backend failed a live request: try another, and keep new requests off it for a cool-down
        while the monitor checks it at once (rather than at its next periodic check)."""
        slot.release(used_tokens=0)  # the user is not charged for an attempt that produced nothing
        tried.add(slot.backend.id)
        slot.backend.cooldown_until = time.monotonic() + self._cooldown
        if self._on_failure is not None:
            self._on_failure(slot.backend.id)
        log.warning('backend %s failed before the first byte, trying another: %s', slot.backend.name, reason)
        return reason
