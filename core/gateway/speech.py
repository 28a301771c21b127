"""Speech through the gateway: the same slot, backend choice and failover before the first byte as chat, for the
OpenAI-compatible speech servers (Speaches, Kokoro-FastAPI, vLLM serving Whisper).

- `open_speech`: text to speech. The engine's audio is relayed as it arrives (`AudioStream.chunks()`), never
  buffered whole; until its first bytes have arrived another backend can still take over.
- `transcribe`: speech to text, one answer (the engine's verbose_json, core.speech.transcripts).
- `open_transcript`: speech to text streamed (`stream=true`), as text deltas.

Every call holds a scheduler slot from before it is sent until `release()`/`close()` (streams) or its answer
(`transcribe`); the slot is charged what the request really cost, in token-equivalents (core.scheduler.cost).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import orjson

from core.errors import InvalidRequest, UpstreamError
from core.gateway.http import EngineConnectionError, UpstreamResponse, UpstreamTimeout
from core.gateway.service import _RETRYABLE, Answered, Gateway, StreamBroken, Timing
from core.registry.view import BackendState
from core.scheduler.cost import CHARS_PER_TOKEN, speech_cost, transcription_cost
from core.scheduler.scheduler import Requester, Slot
from core.speech.requests import SpeechRequest, TranscriptionRequest
from core.speech.transcripts import Transcript, TranscriptStreamParser, parse_verbose
from core.speech.upload import encode_multipart
from core.translate.engine_errors import EngineResponseError, error_text

T = TypeVar('T')

SPEECH_PATH = '/v1/audio/speech'
TRANSCRIBE_PATHS = {'transcribe': '/v1/audio/transcriptions', 'translate': '/v1/audio/translations'}


@dataclass(slots=True, eq=False)
class AudioStream:
    """Text-to-speech audio in flight: iterate `chunks()`, then `close()` on every exit path (frees the slot)."""

    backend: BackendState
    timing: Timing
    media_type: str
    _slot: Slot
    _response: UpstreamResponse
    _rest: AsyncIterator[bytes]
    _first: bytes
    cost: int = 0
    sent_bytes: int = 0
    complete: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        first, self._first = self._first, b''
        self.sent_bytes += len(first)
        yield first
        try:
            async for chunk in self._rest:
                if chunk:
                    self.sent_bytes += len(chunk)
                    yield chunk
        except EngineConnectionError as exc:
            raise StreamBroken(f'the backend failed mid-audio: {exc}') from exc
        self.complete = True

    def release(self) -> None:
        self._slot.release(self.cost)

    async def close(self) -> None:
        self.release()
        await self._response.aclose()  # an unfinished body closes the connection: the engine stops speaking


@dataclass(slots=True, eq=False)
class TranscriptStream:
    """A streamed transcript in flight: iterate `deltas()`, then `close()` on every exit path."""

    backend: BackendState
    timing: Timing
    _slot: Slot
    _response: UpstreamResponse
    _rest: AsyncIterator[bytes]
    _parser: TranscriptStreamParser
    _first: list[str]
    estimated_seconds: float = 0.0
    _seen: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return ''.join(self._parser.text).strip()

    @property
    def seconds(self) -> float:
        """The audio's length as the engine said, else the gateway's own estimate of the upload."""
        return self._parser.duration or self.estimated_seconds

    @property
    def complete(self) -> bool:
        return self._parser.done

    async def deltas(self) -> AsyncIterator[str]:
        first, self._first = self._first, []
        for delta in first:
            yield delta
        try:
            async for chunk in self._rest:
                for delta in self._parser.feed(chunk):
                    yield delta
        except EngineConnectionError as exc:
            raise StreamBroken(f'the backend failed mid-transcript: {exc}') from exc
        except EngineResponseError as exc:
            raise StreamBroken(exc.message) from exc

    def release(self) -> None:
        self._slot.release(transcription_cost(self.seconds))

    async def close(self) -> None:
        self.release()
        await self._response.aclose()


class SpeechGateway:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._registry = gateway._registry

    def check_speech(self, request: SpeechRequest) -> frozenset[int]:
        """The backends serving the model that cannot speak (400 naming `model` when none can), after checking the
        voice against the voices the model's servers listed (400 naming `voice`); nothing is sent on a refusal."""
        unfit = self._gateway._unfit(request.model, 'speech', 'is not a text-to-speech model (see /v1/models, '
                                     "modality 'tts')", param='model')
        known: set[str] = set()
        for backend in self._registry.serving(request.model):
            if backend.id in unfit:
                continue
            voices = backend.models[request.model].voices
            if voices is None:  # a server that does not list its voices takes any name: it will judge
                return unfit
            known.update(voices)
        if known and request.voice not in known:
            listed = ', '.join(sorted(known)[:20]) + (', ...' if len(known) > 20 else '')
            raise InvalidRequest(f"voice '{request.voice}' is not a voice of {request.model}; its voices: {listed}",
                                 param='voice')
        return unfit

    def check_transcription(self, model: str) -> frozenset[int]:
        return self._gateway._unfit(model, 'transcription', 'is not a speech-to-text model (see /v1/models, '
                                    "modality 'stt')", param='model')

    async def open_speech(self, request: SpeechRequest, requester: Requester, unfit: frozenset[int]) -> AudioStream:
        body = orjson.dumps(request.engine_body())

        async def first(response: UpstreamResponse) -> tuple[AsyncIterator[bytes], bytes]:
            chunks = response.iter_raw()
            data = b''
            while not data:  # the first bytes of audio: until then another backend may take over
                data = await anext(chunks)
            return chunks, data

        slot, response, (rest, head), timing = await self._open(request.model, requester, unfit, SPEECH_PATH,
                                                                 body, b'application/json', first)
        return AudioStream(slot.backend, timing, request.media_type, slot, response, rest, head,
                           cost=speech_cost(request.input))

    async def transcribe(self, request: TranscriptionRequest, data: bytes, requester: Requester,
                         unfit: frozenset[int]) -> Answered[Transcript]:
        body, content_type = self._form(request, data)

        async def read(response: UpstreamResponse) -> bytes:
            return await response.read()

        slot, _, content, timing = await self._open(request.model, requester, unfit,
                                                    TRANSCRIBE_PATHS[request.task], body, content_type, read)
        try:
            transcript = parse_verbose(orjson.loads(content))
        except (orjson.JSONDecodeError, EngineResponseError, TypeError, ValueError) as exc:
            slot.release()
            raise UpstreamError(f'backend {slot.backend.name} sent an unreadable transcript: {exc}',
                                status_code=502) from exc
        slot.release(max(transcription_cost(transcript.duration), len(transcript.text) // CHARS_PER_TOKEN))
        return Answered(transcript, slot.backend, timing)

    async def open_transcript(self, request: TranscriptionRequest, data: bytes, requester: Requester,
                              unfit: frozenset[int], estimated_seconds: float) -> TranscriptStream:
        body, content_type = self._form(request, data)

        async def first(response: UpstreamResponse) -> tuple[AsyncIterator[bytes], TranscriptStreamParser,
                                                             list[str]]:
            chunks, parser = response.iter_raw(), TranscriptStreamParser()
            deltas: list[str] = []
            while not deltas and not parser.done:
                try:
                    deltas = parser.feed(await anext(chunks))
                except EngineResponseError as exc:
                    raise UpstreamError(f'backend: {exc.message}', status_code=502) from exc
            return chunks, parser, deltas

        slot, response, (rest, parser, head), timing = await self._open(
            request.model, requester, unfit, TRANSCRIBE_PATHS[request.task], body, content_type, first)
        return TranscriptStream(slot.backend, timing, slot, response, rest, parser, head,
                                estimated_seconds=estimated_seconds)

    @staticmethod
    def _form(request: TranscriptionRequest, data: bytes) -> tuple[bytes, bytes]:
        return encode_multipart(request.engine_fields(), filename=request.filename or 'audio', data=data,
                                content_type='application/octet-stream')

    async def _open(self, model: str, requester: Requester, unfit: frozenset[int], path: str, body: bytes,
                    content_type: bytes, first: Callable[[UpstreamResponse], Awaitable[T]]
                    ) -> tuple[Slot, UpstreamResponse, T, Timing]:
        """Send to a backend and wait for `first` (the first audio bytes, or the whole answer); a backend that fails
        before then — refuses the connection, answers 5xx, closes without a byte — is replaced by another, up to the
        gateway's attempts. The slot is held on return: the caller releases it."""
        gateway = self._gateway
        timing = Timing()
        tried: set[int] = set(unfit)
        last_error = ''
        while timing.attempts < gateway._max_attempts:
            slot = await gateway._acquire(model, requester, tried, timing)
            started = time.perf_counter()
            response: UpstreamResponse | None = None
            try:
                response = await gateway._upstream.pool(slot.backend).request('POST', path, body,
                                                                              content_type=content_type)
                if response.status >= 400:
                    message = error_text(response.status, await response.read())
                    if response.status < 500:
                        slot.release(0)
                        raise UpstreamError(message, status_code=response.status)
                    last_error = gateway._failed(slot, tried, f'HTTP {response.status}: {message}')
                    continue
                result = await first(response)
            except (StopAsyncIteration, *_RETRYABLE) as exc:
                if response is not None:
                    await response.aclose()
                reason = 'the answer ended before any byte' if isinstance(exc, StopAsyncIteration) else str(exc)
                last_error = gateway._failed(slot, tried, reason)
                continue
            except UpstreamTimeout as exc:
                slot.release(0)
                if response is not None:
                    await response.aclose()
                raise UpstreamError(f'backend {slot.backend.name}: {exc}', status_code=504) from exc
            except BaseException:
                slot.release(0)
                if response is not None:
                    await response.aclose()
                raise
            elapsed = (time.perf_counter() - started) * 1000
            timing.backend_ms += elapsed
            slot.backend.observe_latency(elapsed)
            return slot, response, result, timing
        raise UpstreamError(f'every backend tried failed ({timing.attempts} attempts); last error: {last_error}',
                            status_code=502)
