"""The speech pipeline (/v1/audio/*): the same path as every other inference request (app/inference.py) — the key,
the caller's limits, the speech budget, the fair-share slot and backend pick with failover before the first byte
(core.gateway.speech), the timing headers, one audit row on every exit path — with speech's own units in the row.

- `speak`: text to speech, the audio relayed as it arrives (or framed as `speech.audio.delta` events);
- `transcribe`: speech to text (transcriptions and translations), the upload read as it arrives and refused as
  soon as it shows it is not audio or too large (core.speech.upload), the transcript rendered in the client's
  format, or streamed as `transcript.text.delta` events.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import orjson
from starlette.responses import Response

from app.body_limit import BodyTooLarge
from app.inference import CLIENT_CLOSED, Exchange, _Relayed, _RelayResponse, _timing_headers, until_disconnect
from core.errors import MindRouterError, RequestTooLarge
from core.gateway.service import StreamBroken
from core.gateway.speech import AudioStream, SpeechGateway, TranscriptStream
from core.quotas.speech import SpeechQuota, SpeechUnit
from core.scheduler.cost import speech_cost, transcription_cost
from core.speech.artifacts import AudioStore
from core.speech.audio import estimated_seconds
from core.speech.requests import SpeechRequest, parse_transcription
from core.speech.transcripts import delta_event, done_event, render
from core.speech.upload import Upload, read_upload

SSE = 'text/event-stream'
_Finish = Callable[[str, int, str | None], Awaitable[None]]  # records the audit row of a relay (status, HTTP, error)


def _speech(exchange: Exchange) -> SpeechGateway:
    speech: SpeechGateway = exchange.request.app.state.speech
    return speech


async def _admit(exchange: Exchange, unit: SpeechUnit) -> None:
    """The caller's limits (concurrency, budget, requests per minute), then its speech budget in `unit`."""
    await exchange.admit()
    quota: SpeechQuota = exchange.request.app.state.speech_quota
    await quota.admit(exchange.principal, unit)


async def _keep_audio(exchange: Exchange, data: bytes, container: str) -> str | None:
    """The audio, stored when an admin turned audio capture on (AUDIT_LOG_AUDIO); its path for the audit row."""
    if not exchange.settings.audit_log_audio or not data:
        return None
    store: AudioStore = exchange.request.app.state.audio_store
    return await store.save(exchange.request_id, data, container)


# ------------------------------------------------------------------------------------------------ text to speech
async def speak(exchange: Exchange, request: SpeechRequest) -> Response:
    served = request.model = exchange.resolve(request.model)
    text = request.input if exchange.settings.audit_log_prompts else None
    speech = _speech(exchange)
    try:
        unfit = speech.check_speech(request)  # a wrong model or voice: 400, before anything is counted or sent
        await _admit(exchange, SpeechUnit.chars)
        upstream = await until_disconnect(exchange.request, speech.open_speech(
            request, exchange.requester(speech_cost(request.input)), unfit))
    except asyncio.CancelledError:
        exchange.record(status='cancelled', http_status=CLIENT_CLOSED, model=served, prompt=text, stream=True)
        return Response(status_code=CLIENT_CLOSED)
    except MindRouterError as exc:
        exchange.record(status='failed', http_status=exc.status_code, model=served, error=exc.message, prompt=text,
                        stream=True)
        raise
    relayed = _Relayed()
    capture: list[bytes] | None = [] if exchange.settings.audit_log_audio else None
    first_byte: list[float] = []  # when the first audio reached the client, from the request's start

    async def finish(status: str, http_status: int, error: str | None) -> None:
        audio_path = await _keep_audio(exchange, b''.join(capture or []), request.response_format)
        exchange.record(status=status, http_status=http_status, model=served, stream=True, error=error,
                        backend_id=upstream.backend.id, backend_name=upstream.backend.name,
                        queue_ms=upstream.timing.queue_ms, ttft_ms=first_byte[0] if first_byte else None, prompt=text,
                        speech_chars=len(request.input) if status == 'completed' else 0, audio_path=audio_path)

    async def abandon() -> None:
        if not relayed.done:
            relayed.done = True
            await upstream.close()
            await finish('cancelled', CLIENT_CLOSED, None)

    def sent() -> None:
        if not first_byte:
            first_byte.append(exchange.elapsed_ms())

    body = _audio_relay(upstream, request, relayed, capture, finish, sent)
    media_type = SSE if request.stream_format == 'sse' else request.media_type
    response = _RelayResponse(body, media_type=media_type, abandon=abandon)
    _timing_headers(response, exchange, upstream.backend.name, upstream.timing.queue_ms, upstream.timing.backend_ms)
    return response


async def _audio_relay(upstream: AudioStream, request: SpeechRequest, relayed: _Relayed, capture: list[bytes] | None,
                       finish: _Finish, sent: Callable[[], None]) -> AsyncIterator[bytes]:
    sse = request.stream_format == 'sse'
    status, http_status, error = 'completed', 200, None
    try:
        async for chunk in upstream.chunks():
            sent()
            if capture is not None:
                capture.append(chunk)
            yield _audio_event(chunk) if sse else chunk
        if sse:
            tokens = speech_cost(request.input)
            yield _event({'type': 'speech.audio.done',
                          'usage': {'input_tokens': tokens, 'output_tokens': 0, 'total_tokens': tokens}})
    except StreamBroken as exc:
        status, http_status, error = 'failed', 502, str(exc)
        if not sse:
            raise  # audio has no error frame: the connection is cut, so no client takes a torn file for a whole one
        yield _event({'type': 'error', 'error': {'message': error, 'type': 'server_error', 'code': 'backend_error'}})
    except BaseException:
        status, http_status = 'cancelled', CLIENT_CLOSED
        raise
    finally:
        if not relayed.done:
            relayed.done = True
            upstream.release()
            with anyio.CancelScope(shield=True):
                await upstream.close()
                await finish(status, http_status, error)


def _audio_event(chunk: bytes) -> bytes:
    return _event({'type': 'speech.audio.delta', 'audio': base64.b64encode(chunk).decode()})


def _event(payload: dict[str, object]) -> bytes:
    return b'data: ' + orjson.dumps(payload) + b'\n\n'


# ------------------------------------------------------------------------------------------------ speech to text
async def transcribe(exchange: Exchange, task: str) -> Response:
    """/v1/audio/transcriptions (task 'transcribe') and /v1/audio/translations ('translate')."""
    upload = await _read_upload(exchange)
    request = parse_transcription(upload.fields, task=task)
    request.filename, request.container = upload.filename, upload.container
    served = request.model = exchange.resolve(request.model)
    prompt = request.prompt if exchange.settings.audit_log_prompts else None
    speech = _speech(exchange)
    seconds = estimated_seconds(upload.data)
    try:
        unfit = speech.check_transcription(served)  # a text-to-speech model asked to listen: 400, nothing sent
        await _admit(exchange, SpeechUnit.seconds)
        requester = exchange.requester(transcription_cost(seconds))
        if request.stream:
            upstream = await until_disconnect(exchange.request, speech.open_transcript(
                request, upload.data, requester, unfit, seconds))
        else:
            result = await until_disconnect(exchange.request, speech.transcribe(request, upload.data, requester,
                                                                                unfit))
    except asyncio.CancelledError:
        exchange.record(status='cancelled', http_status=CLIENT_CLOSED, model=served, prompt=prompt)
        return Response(status_code=CLIENT_CLOSED)
    except MindRouterError as exc:
        exchange.record(status='failed', http_status=exc.status_code, model=served, error=exc.message,
                        prompt=prompt, stream=request.stream)
        raise
    if request.stream:
        return _transcript_stream(exchange, upstream, served, prompt, upload)
    transcript = result.response
    body, media_type = render(transcript, response_format=request.response_format, task=task,
                              granularities=request.timestamp_granularities)
    response = Response(body, media_type=media_type)
    overhead = _timing_headers(response, exchange, result.backend.name, result.timing.queue_ms,
                               result.timing.backend_ms)
    audio_path = await _keep_audio(exchange, upload.data, upload.container)
    exchange.record(status='completed', http_status=200, overhead_ms=overhead, model=served,
                    backend_id=result.backend.id, backend_name=result.backend.name, queue_ms=result.timing.queue_ms,
                    prompt=prompt, response=transcript.text if exchange.settings.audit_log_responses else None,
                    audio_seconds=round(transcript.duration or seconds, 3), audio_path=audio_path)
    return response


def _transcript_stream(exchange: Exchange, upstream: TranscriptStream, served: str, prompt: str | None,
                       upload: Upload) -> Response:
    relayed = _Relayed()

    async def finish(status: str, http_status: int, error: str | None) -> None:
        audio_path = await _keep_audio(exchange, upload.data, upload.container)
        exchange.record(status=status, http_status=http_status, model=served, stream=True, error=error,
                        backend_id=upstream.backend.id, backend_name=upstream.backend.name,
                        queue_ms=upstream.timing.queue_ms, ttft_ms=upstream.timing.backend_ms, prompt=prompt,
                        response=upstream.text if exchange.settings.audit_log_responses else None,
                        audio_seconds=round(upstream.seconds, 3) if status == 'completed' else 0.0,
                        audio_path=audio_path)

    async def abandon() -> None:
        if not relayed.done:
            relayed.done = True
            await upstream.close()
            await finish('cancelled', CLIENT_CLOSED, None)

    async def relay() -> AsyncIterator[bytes]:
        status, http_status, error = 'completed', 200, None
        try:
            async for delta in upstream.deltas():
                yield delta_event(delta)
            if upstream.complete or upstream.text:
                yield done_event(upstream.text, upstream.seconds)
            else:
                status, http_status, error = 'failed', 502, 'the backend ended the transcript before it was complete'
                yield _event({'type': 'error', 'error': {'message': error, 'type': 'server_error'}})
        except StreamBroken as exc:
            status, http_status, error = 'failed', 502, str(exc)
            yield _event({'type': 'error', 'error': {'message': error, 'type': 'server_error'}})
        except BaseException:
            status, http_status = 'cancelled', CLIENT_CLOSED
            raise
        finally:
            if not relayed.done:
                relayed.done = True
                with anyio.CancelScope(shield=True):
                    await upstream.close()
                    await finish(status, http_status, error)

    response = _RelayResponse(relay(), media_type=SSE, abandon=abandon)
    _timing_headers(response, exchange, upstream.backend.name, upstream.timing.queue_ms, upstream.timing.backend_ms)
    return response


async def _read_upload(exchange: Exchange) -> Upload:
    request = exchange.request
    try:
        return await read_upload(request.stream(), request.headers.get('content-type', ''),
                                 max_file_bytes=exchange.settings.audio_max_bytes)
    except BodyTooLarge as exc:
        raise RequestTooLarge(exc.detail, param='file') from None
