"""The request pipeline every inference route shares, whatever its dialect.

(app/intake.py: authenticate, read the body (413 / 400)) → parse (the dialect's translator) → resolve the model
(404) → the gateway (slot, backend, failover) → render the answer or stream it re-framed → headers with honest
timing → one audit record on every exit path: success, error, client gone (app/intake.py records the refusals
that happen before the pipeline takes over).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import orjson
from fastapi import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.logs import REQUEST_ID
from app.responses import STREAM_HEADERS, JSONResponse
from app.shutdown import SHUTDOWN_MESSAGE, SHUTDOWN_STATUS, GracefulShutdown
from core.accounts.api_keys import Principal
from core.audit.writer import AuditRecord, AuditWriter
from core.config import Settings
from core.errors import MindRouterError
from core.gateway.image_fetch import prepare_images
from core.gateway.service import Answered, Gateway, StreamBroken, UpstreamStream
from core.models import utcnow
from core.quotas.guard import QuotaGuard
from core.quotas.speech import SpeechQuota, SpeechUnit
from core.registry.view import RegistryView
from core.scheduler.cost import chat_cost, embedding_cost
from core.scheduler.scheduler import Requester
from core.status.metrics import GatewayMetrics
from core.translate.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from core.translate.schema import answer_conforms
from core.translate.streaming import StreamEncoder

T = TypeVar('T')
A = TypeVar('A')

CLIENT_CLOSED = 499  # nginx's code for "the client went away first"; only ever seen in the audit trail

# Request ids: a random per-process prefix and a counter. Unique across processes and restarts, and free
# (os.urandom is a ~25 µs system call per request on this machine).
_ID_PREFIX = os.urandom(10).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f'{_ID_PREFIX}{next(_ID_COUNTER):012x}'


@dataclass(slots=True)
class Exchange:
    """One inference request on its way through: identity, timing and what the audit row will say."""

    request: Request
    principal: Principal
    endpoint: str
    request_id: str = field(default_factory=lambda: new_request_id())
    started: float = field(default_factory=time.perf_counter)
    created: int = field(default_factory=lambda: int(time.time()))
    recorded: bool = False  # its audit record was made (exactly one per request)
    alias: str | None = None  # the model alias the client named (resolve()), kept for the answer and the audit

    def __post_init__(self) -> None:
        REQUEST_ID.set(self.request_id)  # every line logged while it is served carries its id (app/logs.py)

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.request.app.state.gateway
        return gateway

    @property
    def settings(self) -> Settings:
        settings: Settings = self.request.app.state.settings
        return settings

    def resolve(self, model: str) -> str:
        """The served model for the name the client sent (404 if none), noting an alias it named. A name that is
        already served costs one comparison more: aliases are looked up only when the name changed."""
        served = self.gateway.resolve(model)
        if served != model:
            registry: RegistryView = self.request.app.state.registry
            if registry.alias_target(model) is not None:
                self.alias = model
        return served

    def answer_model(self, served: str) -> str:
        """The model name the answer carries: the alias when the client named one, so it sees what it asked for."""
        return self.alias or served

    async def admit(self) -> None:
        """The caller's own limits (429 with Retry-After), before the request queues or sends a byte."""
        quota: QuotaGuard = self.request.app.state.quota
        await quota.admit(self.principal)

    def requester(self, cost: int) -> Requester:
        """Who the scheduler serves: this user, at its weight, for about `cost` tokens."""
        return Requester(user_id=self.principal.user_id, weight=self.principal.scheduler_weight, cost=cost)

    def chat_requester(self, chat: ChatRequest) -> Requester:
        return self.requester(chat_cost(chat, default_completion=self.settings.scheduler_completion_tokens))

    @property
    def started_ns(self) -> int:
        return int(self.started * 1e9)  # perf_counter seconds -> the perf_counter_ns scale

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def record(self, *, status: str, http_status: int, overhead_ms: float | None = None, **fields: Any) -> None:
        """The request's audit record and metrics: called exactly once per request, on every exit path."""
        self.recorded = True
        state = self.request.app.state
        audit: AuditWriter = state.audit
        metrics: GatewayMetrics = state.metrics
        quota: QuotaGuard = state.quota
        quota.record(self.principal.user_id, fields.get('prompt_tokens', 0) + fields.get('completion_tokens', 0),
                     has_budget=self.principal.token_budget > 0)
        if 'speech_chars' in fields or 'audio_seconds' in fields:
            _record_speech(state, self.principal, fields)
        client = self.request.client
        total_ms = self.elapsed_ms()
        metrics.observe(endpoint=self.endpoint, model=fields.get('model', ''), status=status, total_s=total_ms / 1000,
                        prompt_tokens=fields.get('prompt_tokens', 0),
                        completion_tokens=fields.get('completion_tokens', 0),
                        overhead_s=overhead_ms / 1000 if overhead_ms is not None else None)
        now = utcnow()
        audit.submit(AuditRecord(
            request_id=self.request_id, endpoint=self.endpoint, status=status, http_status=http_status,
            requested_model=self.alias, user_id=self.principal.user_id, api_key_id=self.principal.key_id,
            total_ms=total_ms,
            client_ip=client.host if client else None,
            user_agent=(self.request.headers.get('user-agent') or '')[:255] or None,
            created_at=now - timedelta(milliseconds=total_ms), completed_at=now, **fields,
        ))


def _record_speech(state: Any, principal: Principal, fields: dict[str, Any]) -> None:
    """A speech request's own units (core.quotas.speech): in the user's speech budget and in /metrics."""
    speech: SpeechQuota = state.speech_quota
    metrics: GatewayMetrics = state.metrics
    chars, seconds = fields.get('speech_chars', 0), fields.get('audio_seconds', 0.0)
    if chars:
        speech.record(principal.user_id, SpeechUnit.chars, chars, has_budget=principal.tts_char_budget > 0)
    if seconds:
        speech.record(principal.user_id, SpeechUnit.seconds, seconds, has_budget=principal.stt_seconds_budget > 0)
    metrics.observe_speech(model=fields.get('model', ''), chars=chars, seconds=seconds)


async def complete(exchange: Exchange, chat: ChatRequest,
                   render: Callable[[ChatResponse, Exchange], dict[str, Any]]) -> Response:
    """A non-streaming chat or completion, rendered by the dialect."""
    served = chat.model = exchange.resolve(chat.model)
    chat.request_id = exchange.request_id
    prompt = _prompt_text(chat) if exchange.settings.audit_log_prompts else None
    try:
        await exchange.admit()
        await _prepare_images(exchange, chat)
        requester = exchange.chat_requester(chat)
        result = await until_disconnect(exchange.request, exchange.gateway.complete(chat, requester))
    except asyncio.CancelledError:
        exchange.record(status='cancelled', http_status=CLIENT_CLOSED, model=served, prompt=prompt)
        return Response(status_code=CLIENT_CLOSED)
    except MindRouterError as exc:
        exchange.record(status='failed', http_status=exc.status_code, model=served, error=exc.message,
                        prompt=prompt)
        raise
    answer = result.response
    chat.model = exchange.answer_model(served)  # the dialect renders the name the client asked for
    response = JSONResponse(render(answer, exchange))
    overhead = _timing_headers(response, exchange, result.backend.name, result.timing.queue_ms,
                               result.timing.backend_ms)
    valid = answer_conforms(chat, answer.content, answer.tool_calls)
    if valid is not None:
        response.headers['X-MindRouter-Schema-Valid'] = 'true' if valid else 'false'
    exchange.record(status='completed', http_status=200, overhead_ms=overhead, model=served, schema_valid=valid,
                    backend_id=result.backend.id, backend_name=result.backend.name,
                    prompt_tokens=answer.usage.prompt_tokens, completion_tokens=answer.usage.completion_tokens,
                    queue_ms=result.timing.queue_ms,
                    prompt=prompt, response=answer.content if exchange.settings.audit_log_responses else None)
    return response


async def stream(exchange: Exchange, chat: ChatRequest, encoder: Callable[[ChatRequest, Exchange], StreamEncoder],
                 ) -> Response:
    """A streaming chat or completion: the engine's chunks re-framed one by one in the client's dialect."""
    served = chat.model = exchange.resolve(chat.model)
    chat.request_id = exchange.request_id
    prompt = _prompt_text(chat) if exchange.settings.audit_log_prompts else None
    try:
        await exchange.admit()
        await _prepare_images(exchange, chat)
        requester = exchange.chat_requester(chat)
        upstream = await exchange.gateway.open_stream(chat, requester)
    except MindRouterError as exc:  # before any byte: a normal error response in the dialect
        exchange.record(status='failed', http_status=exc.status_code, model=served, stream=True,
                        error=exc.message, prompt=prompt)
        raise
    except asyncio.CancelledError:  # still queued when the server cut it off (a shutdown past its grace)
        exchange.record(status='cancelled', http_status=CLIENT_CLOSED, model=served, stream=True, prompt=prompt)
        raise
    relayed = _Relayed()

    async def abandon() -> None:
        """The relay never ran (the client left before the first byte was sent): free the slot anyway."""
        if not relayed.done:
            relayed.done = True
            upstream.release()
            await upstream.close()
            exchange.record(status='cancelled', http_status=CLIENT_CLOSED, model=served, stream=True,
                            backend_id=upstream.backend.id, backend_name=upstream.backend.name, prompt=prompt)

    try:
        chat.model = exchange.answer_model(served)  # the backend is chosen: frames name the model as asked
        framer = encoder(chat, exchange)
        response = _RelayResponse(_relay(exchange, chat, served, upstream, framer, prompt, relayed),
                                  media_type=framer.media_type, abandon=abandon)
    except BaseException:
        await abandon()
        raise
    _timing_headers(response, exchange, upstream.backend.name, upstream.timing.queue_ms, upstream.timing.backend_ms)
    return response


@dataclass(slots=True)
class _Relayed:
    done: bool = False  # the relay ran its cleanup (or the abandon path did)


class _RelayResponse(StreamingResponse):
    """A stream whose slot is freed even when its body is never iterated (Starlette never starts the body
    iterator if the client is gone before the response starts, so the relay's own `finally` would not run)."""

    def __init__(self, content: AsyncIterator[bytes], *, media_type: str,
                 abandon: Callable[[], Awaitable[None]]) -> None:
        super().__init__(content, media_type=media_type, headers=STREAM_HEADERS)
        self._abandon = abandon

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._abandon()


async def embed(exchange: Exchange, request: EmbeddingRequest,
                render: Callable[[EmbeddingResponse, Exchange], dict[str, Any]]) -> Response:
    served = request.model = exchange.resolve(request.model)

    def render_as_asked(answer: EmbeddingResponse, exchange: Exchange) -> dict[str, Any]:
        request.model = exchange.answer_model(served)  # the embedding is done: name the model as the client did
        return render(answer, exchange)

    return await one_shot(exchange, served, embedding_cost(request),
                          lambda requester: exchange.gateway.embed(request, requester), render_as_asked,
                          lambda answer: answer.prompt_tokens)


async def one_shot(exchange: Exchange, model: str, cost: int, work: Callable[[Requester], Awaitable[Answered[A]]],
                   render: Callable[[A, Exchange], dict[str, Any]], prompt_tokens: Callable[[A], int]) -> Response:
    """A request with one answer and no stream (embeddings, rerank, score): admitted, scheduled, audited."""
    try:
        await exchange.admit()
        result = await until_disconnect(exchange.request, work(exchange.requester(cost)))
    except asyncio.CancelledError:
        exchange.record(status='cancelled', http_status=CLIENT_CLOSED, model=model)
        return Response(status_code=CLIENT_CLOSED)
    except MindRouterError as exc:
        exchange.record(status='failed', http_status=exc.status_code, model=model, error=exc.message)
        raise
    response = JSONResponse(render(result.response, exchange))
    overhead = _timing_headers(response, exchange, result.backend.name, result.timing.queue_ms,
                               result.timing.backend_ms)
    exchange.record(status='completed', http_status=200, overhead_ms=overhead, model=model,
                    backend_id=result.backend.id, backend_name=result.backend.name,
                    prompt_tokens=prompt_tokens(result.response), queue_ms=result.timing.queue_ms)
    return response


async def _relay(exchange: Exchange, chat: ChatRequest, served: str, upstream: UpstreamStream,
                 framer: StreamEncoder, prompt: str | None, relayed: _Relayed) -> AsyncIterator[bytes]:
    status, http_status, error = 'completed', 200, None
    first_token_ms: float | None = None
    shutdown: GracefulShutdown = exchange.request.app.state.shutdown
    watch = shutdown.watch()  # at SIGTERM + grace, the stream is ended with the dialect's error (app/shutdown.py)
    try:
        opening = framer.start()
        if opening:
            yield opening
        batches = upstream.batches()
        while not watch.cut:
            watch.reading = True  # a shutdown's cancel may land here, and only here
            try:
                batch = await anext(batches)
            except StopAsyncIteration:
                break
            finally:
                watch.reading = False
            frame = b''.join([framer.delta(delta) for delta in batch])
            if frame:
                if first_token_ms is None:
                    first_token_ms = exchange.elapsed_ms()
                yield frame
        if watch.cut:
            status, http_status, error = 'failed', SHUTDOWN_STATUS, SHUTDOWN_MESSAGE
            yield framer.error(error)
        elif upstream.complete:
            yield framer.end(upstream.finish_reason or 'stop', upstream.usage)
        else:  # the engine closed cleanly but never said it was done: never pretend the answer is whole
            status, http_status, error = 'failed', 502, 'the backend ended the stream before the answer was complete'
            yield framer.error(error)
    except StreamBroken as exc:
        status, http_status, error = 'failed', 502, str(exc)
        yield framer.error(error)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not watch.cut or task is None or task.cancelling() != 1:  # the client went away, or more than us
            status, http_status = 'cancelled', CLIENT_CLOSED
            raise
        task.uncancel()  # the shutdown's own cancel, which only ends the wait on the engine
        status, http_status, error = 'failed', SHUTDOWN_STATUS, SHUTDOWN_MESSAGE
        yield framer.error(error)
    except BaseException:  # something unexpected: stop at once
        status, http_status = 'cancelled', CLIENT_CLOSED
        raise
    finally:
        shutdown.forget(watch)
        if not relayed.done:  # else the response already gave up on this relay and recorded it
            relayed.done = True
            upstream.release()  # synchronous, so the slot frees even inside a cancelled scope
            with anyio.CancelScope(shield=True):
                await upstream.close()
            # the answer's text only when something reads it (a structured answer's check, the audit row)
            wanted = chat.response_format is not None or exchange.settings.audit_log_responses
            text = ''.join(upstream.text) if wanted else ''
            valid = answer_conforms(chat, text, upstream.tool_calls) if status == 'completed' else None
            exchange.record(
                status=status, http_status=http_status, model=served, stream=True, error=error,
                schema_valid=valid,
                backend_id=upstream.backend.id, backend_name=upstream.backend.name,
                prompt_tokens=upstream.usage.prompt_tokens, completion_tokens=upstream.usage.completion_tokens,
                queue_ms=upstream.timing.queue_ms, ttft_ms=first_token_ms, prompt=prompt,
                response=text if exchange.settings.audit_log_responses else None)


async def _prepare_images(exchange: Exchange, chat: ChatRequest) -> None:
    if chat.has_images:
        await prepare_images(chat, exchange.request.app.state.images, max_bytes=exchange.settings.image_max_bytes)


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`; if the client disconnects first, cancel it (frees the slot, stops the engine) and raise
    CancelledError here. One watcher task per request, no task for the work itself."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())['type'] != 'http.disconnect':
            pass
        gone = True
        current.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            current.uncancel()  # our own doing: the caller turns it into a 499, not a task cancellation
        raise
    finally:
        watcher.cancel()


def _timing_headers(response: Response, exchange: Exchange, backend: str, queue_ms: float, backend_ms: float
                    ) -> float:
    """Set the timing headers; returns the overhead in ms. Appended to the raw list: none of them is set yet, and
    `response.headers[...] =` would search the list for each one first."""
    overhead = max(0.0, exchange.elapsed_ms() - queue_ms - backend_ms)
    response.raw_headers += (
        (b'x-request-id', exchange.request_id.encode()), (b'x-mindrouter-backend', backend.encode()),
        (b'x-mindrouter-queue-ms', f'{queue_ms:.2f}'.encode()),
        (b'x-mindrouter-overhead-ms', f'{overhead:.3f}'.encode()))
    return overhead


def _prompt_text(chat: ChatRequest) -> str:
    if chat.messages:
        return orjson.dumps([{'role': m.role, 'content': m.content} for m in chat.messages]).decode()
    return chat.prompt
