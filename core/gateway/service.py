"""The gateway: pick a backend, translate, send, fail over before the first byte, time everything.

Non-streaming calls return a `Completion`; streaming calls return an open `UpstreamStream` whose first
deltas have already arrived (so that a backend failing before its first byte can still be replaced by
another one), and which the caller must `close()` on every exit path — that frees the slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import orjson

from core.errors import BackendUnavailable, ModelNotFound, UpstreamError
from core.gateway.engines import EngineAdapter
from core.gateway.http import (
    EngineConnectionError,
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamResponse,
    UpstreamTimeout,
)
from core.gateway.upstream import UpstreamPool
from core.models import Engine
from core.registry.view import BackendState, RegistryView
from core.scheduler.scheduler import ANONYMOUS, FairScheduler, Requester, Slot
from core.translate.canonical import ChatRequest, ChatResponse, Delta, EmbeddingRequest, EmbeddingResponse, Usage
from core.translate.engine_errors import EngineResponseError, EngineStreamError
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


@dataclass(slots=True)
class Completion:
    response: ChatResponse
    backend: BackendState
    timing: Timing


@dataclass(slots=True)
class Embeddings:
    response: EmbeddingResponse
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

    async def close(self) -> None:
        self.release()
        await self._response.aclose()  # an unfinished body closes the connection: the engine stops generating

    def _note(self, deltas: list[Delta]) -> list[Delta]:
        for delta in deltas:
            if delta.content:
                self.text.append(delta.content)
            if delta.finish_reason:
                self.finish_reason = delta.finish_reason
            if delta.usage is not None:
                self.usage = delta.usage
        return deltas


class Gateway:
    def __init__(self, *, registry: RegistryView, picker: FairScheduler, upstream: UpstreamPool,
                 adapters: Callable[[str], EngineAdapter], max_attempts: int = 3, context_cap: int = 32768,
                 override_num_ctx: bool = True, cooldown: float = 10.0,
                 on_failure: Callable[[int], None] | None = None) -> None:
        self._registry = registry
        self._picker = picker
        self._upstream = upstream
        self._adapters = adapters
        self._max_attempts = max_attempts
        self._context_cap = context_cap
        self._override_num_ctx = override_num_ctx
        self._cooldown = cooldown
        self._on_failure = on_failure

    def for_backend(self, request: ChatRequest, backend: BackendState) -> ChatRequest:
        """The request as this backend gets it. Ollama loads a model with the context its request names
        (default 2-4k tokens, or whatever a user asks, up to what no GPU can hold): every request carries
        `num_ctx` = the model's context length capped at CONTEXT_LENGTH_CAP (or an admin's per-model
        override), so one model is loaded once, at a size an operator chose. A user's own num_ctx is kept
        only when OLLAMA_OVERRIDE_NUM_CTX is off."""
        if backend.engine != Engine.ollama:
            return request
        info = backend.models.get(request.model)
        context = info.effective_context(self._context_cap) if info is not None else None
        if context is None:
            return request
        if 'num_ctx' in request.backend_options and not self._override_num_ctx:
            return request
        options = {**request.backend_options, 'num_ctx': context}
        return replace(request, backend_options=options)

    def resolve(self, model: str) -> str:
        """The served model name, or ModelNotFound (404 in the caller's dialect)."""
        name = self._registry.resolve(model)
        if name is None:
            raise ModelNotFound(f"The model '{model}' is not served by any backend.", param='model')
        return name

    async def complete(self, request: ChatRequest, requester: Requester = ANONYMOUS) -> Completion:
        response, backend, timing = await self._call(
            request.model, requester,
            lambda adapter, backend: adapter.chat_request(self.for_backend(request, backend)),
            lambda adapter, body: adapter.parse_chat_response(body),
            lambda response: response.usage.total_tokens)
        return Completion(response, backend, timing)

    async def embed(self, request: EmbeddingRequest, requester: Requester = ANONYMOUS) -> Embeddings:
        response, backend, timing = await self._call(
            request.model, requester, lambda adapter, _backend: adapter.embed_request(request),
            lambda adapter, body: adapter.parse_embed_response(body, request.model),
            lambda response: response.prompt_tokens)
        return Embeddings(response, backend, timing)

    async def _call(self, model: str, requester: Requester,
                    build: Callable[[EngineAdapter, BackendState], tuple[str, dict[str, Any]]],
                    parse: Callable[[EngineAdapter, dict[str, Any]], T],
                    tokens: Callable[[T], int]) -> tuple[T, BackendState, Timing]:
        """One non-streaming exchange, failing over to another backend on errors before any answer."""
        timing = Timing()
        tried: set[int] = set()
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
                    result = parse(adapter, orjson.loads(content))
                except (orjson.JSONDecodeError, EngineResponseError) as exc:
                    raise UpstreamError(f'backend {slot.backend.name} sent an unreadable answer: {exc}',
                                        status_code=502) from exc
                slot.backend.observe_latency(elapsed)
                slot.release(tokens(result) or None)  # the user's share is charged what was really used
                return result, slot.backend, timing
            finally:
                slot.release()
        raise UpstreamError(f'every backend tried failed ({timing.attempts} attempts); last error: {last_error}',
                            status_code=502)

    async def open_stream(self, request: ChatRequest, requester: Requester = ANONYMOUS) -> UpstreamStream:
        timing = Timing()
        tried: set[int] = set()
        last_error = ''
        while timing.attempts < self._max_attempts:
            slot = await self._acquire(request.model, requester, tried, timing)
            adapter = self._adapters(slot.backend.engine)
            path, body = adapter.chat_request(self.for_backend(request, slot.backend))
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
                parser = adapter.stream_parser()
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
            return UpstreamStream(slot.backend, timing, slot, response, chunks, parser, first)
        raise UpstreamError(f'every backend tried failed ({timing.attempts} attempts); last error: {last_error}',
                            status_code=502)

    async def _acquire(self, model: str, requester: Requester, tried: set[int], timing: Timing) -> Slot:
        try:
            slot = await self._picker.acquire(model, requester=requester, exclude=frozenset(tried))
        except BackendUnavailable:
            if tried:  # we did have backends; they failed
                raise UpstreamError(f'every backend serving {model!r} failed', status_code=502) from None
            raise
        timing.queue_ms += slot.queued_ms
        timing.attempts += 1
        return slot

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
