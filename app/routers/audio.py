"""OpenAI-compatible speech (/v1/audio): text to speech, and speech to text (transcriptions, translations), served by
the speech backends (engines tts and stt: Speaches, Kokoro-FastAPI; vLLM serving Whisper). The pipeline is
app/speech.py."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app import intake, speech
from app.inference import Exchange
from core.speech.requests import parse_speech

router = APIRouter(prefix='/v1/audio', tags=['OpenAI'])


@router.post('/speech')
@intake.route('/v1/audio/speech')
async def create_speech(exchange: Exchange) -> Response:
    """Text to speech: `{model, input, voice, response_format, speed, instructions, stream_format}`; the audio comes
    as the engine makes it (or as `speech.audio.delta` events with stream_format sse)."""
    return await speech.speak(exchange, parse_speech(await intake.read_json(exchange.request)))


@router.post('/transcriptions')
@intake.route('/v1/audio/transcriptions')
async def create_transcription(exchange: Exchange) -> Response:
    """Speech to text: a multipart `file` (at most AUDIO_MAX_BYTES) and `model`, `language`, `prompt`,
    `temperature`, `response_format` (json, text, srt, vtt, verbose_json), `timestamp_granularities[]`, `stream`."""
    return await speech.transcribe(exchange, 'transcribe')


@router.post('/translations')
@intake.route('/v1/audio/translations')
async def create_translation(exchange: Exchange) -> Response:
    """Speech in any language to English text: as transcriptions, without `language` and `stream`."""
    return await speech.transcribe(exchange, 'translate')
