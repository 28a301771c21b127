"""A fake OpenAI-compatible speech server, in the wire formats of the servers people run:

- `speaches` (default): Speaches — text to speech (Kokoro) and speech to text (faster-whisper) on one server;
  `/v1/models` entries carry `task`, `/v1/audio/voices` lists `{voice_id, model_id, ...}`, `/health` says OK,
  errors are FastAPI's `{"detail": ...}`; a streamed transcript is one `data: {...}` object per segment.
- `kokoro`: Kokoro-FastAPI — text to speech only; `/v1/models` lists tts-1, tts-1-hd, kokoro, gpt-4o-mini-tts
  (no task), `/v1/audio/voices` `{"voices": [{"id", "name"}]}`, errors `{"detail": {"error", "message", "type"}}`.
- `vllm`: vLLM serving Whisper — speech to text only; `/v1/models` with `max_model_len`, `/health`, `/version`,
  `/metrics`, errors `{"error": {"message", "type", "param", "code"}}`, a streamed transcript as
  `transcription.chunk` objects then `data: [DONE]`.

The audio is real speech from espeak-ng where it is installed (sim/speech_audio.py says what else), sent in chunks
as it would be generated. Speech to text reads back the text a WAV made by this fake carries in its comment; any
other audio gets the fixed `transcript` knob. It does no speech recognition.

    python -m sim speech --flavor kokoro --port 8880
    async with SpeechSim(SpeechConfig(flavor='vllm')) as engine: ...
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from core.speech.audio import wav_duration
from sim.fake_server import FakeServer, KnobSet, json_response
from sim.http import AbortConnection, CloseConnection, Request, Response, StreamResponse
from sim.speech_audio import encode, synthesize, wav_comment

FLAVORS = ('speaches', 'kokoro', 'vllm')
# error_500: 500 before any byte; drop: close the connection without answering; cut: close mid-answer
SPEECH_FAULTS = ('error_500', 'drop', 'cut')
MEDIA = {
    'mp3': 'audio/mpeg',
    'opus': 'audio/opus',
    'aac': 'audio/aac',
    'flac': 'audio/flac',
    'wav': 'audio/wav',
    'pcm': 'audio/pcm',
}
KOKORO_VOICES = [
    'af_alloy',
    'af_bella',
    'af_heart',
    'af_nicole',
    'af_sky',
    'am_adam',
    'am_echo',
    'am_michael',
    'bf_emma',
    'bm_george',
]
DEFAULT_MODELS: dict[str, dict[str, str | None]] = {
    'speaches': {
        'speaches-ai/Kokoro-82M-v1.0-ONNX': 'text-to-speech',
        'Systran/faster-whisper-small': 'automatic-speech-recognition',
    },
    'kokoro': {'tts-1': None, 'tts-1-hd': None, 'kokoro': None, 'gpt-4o-mini-tts': None},
    'vllm': {'openai/whisper-large-v3-turbo': 'automatic-speech-recognition'},
}
FIXED_TRANSCRIPT = 'This is the simulated transcript of audio the simulator did not make.'


@dataclasses.dataclass
class SpeechConfig(KnobSet):
    flavor: str = 'speaches'
    models: list[str] | None = None  # None: the flavor's usual models; names decide tts/stt where no task is known
    voices: list[str] | None = None  # None: Kokoro's voices
    chunk_bytes: int = 4096  # audio sent per chunk
    chunk_delay_ms: float = 0.0  # between chunks: a real engine speaks as it goes
    first_byte_ms: float = 0.0  # before the first chunk (model load, first sentence)
    fault: str | None = None
    espeak: bool = True  # real speech from espeak-ng when it is installed
    transcript: str = FIXED_TRANSCRIPT  # for audio this fake did not make

    def validate(self) -> None:
        if self.flavor not in FLAVORS:
            raise ValueError(f'flavor must be one of {", ".join(FLAVORS)}')
        if self.fault is not None and self.fault not in SPEECH_FAULTS:
            raise ValueError(f'fault must be one of {", ".join(SPEECH_FAULTS)}')
        if self.chunk_bytes < 1:
            raise ValueError('chunk_bytes must be at least 1')

    def served(self) -> dict[str, str | None]:
        """model -> task ('text-to-speech', 'automatic-speech-recognition', or None where the flavor says none)."""
        if self.models is None:
            return dict(DEFAULT_MODELS[self.flavor])
        served: dict[str, str | None] = {}
        for name in self.models:
            listening = any(m in name.lower() for m in ('whisper', 'stt', 'asr', 'parakeet'))
            task = 'automatic-speech-recognition' if listening or self.flavor == 'vllm' else 'text-to-speech'
            served[name] = task if self.flavor != 'kokoro' else None
        return served


@dataclasses.dataclass
class SpeechStats:
    requests: int = 0
    speech_requests: int = 0
    transcriptions: int = 0
    translations: int = 0
    audio_bytes_sent: int = 0
    in_flight: int = 0
    last_speech: dict[str, Any] | None = None  # the last /v1/audio/speech body, for tests
    last_fields: dict[str, str] | None = None  # the last transcription's form fields

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SpeechSim(FakeServer):
    def __init__(self, config: SpeechConfig | None = None) -> None:
        super().__init__()
        self.config: SpeechConfig = config or SpeechConfig()
        self.config.validate()
        self.stats: SpeechStats = SpeechStats()
        add = self.router.add
        add('GET', '/health', self._health)
        add('GET', '/v1/models', self._models)
        add('GET', '/version', self._version)
        add('GET', '/metrics', self._metrics)
        add('GET', '/v1/audio/voices', self._voices)
        add('POST', '/v1/audio/speech', self._speech)
        add('POST', '/v1/audio/transcriptions', self._transcriptions)
        add('POST', '/v1/audio/translations', self._translations)
        self.listen(server_header='uvicorn')

    # ---------------------------------------------------------------------------------------------- listings
    def _tasks(self) -> dict[str, str | None]:
        return self.config.served()

    def _speaks(self, model: str) -> bool:
        task = self._tasks().get(model, 'missing')
        return (self.config.flavor == 'kokoro' and task is None) or task == 'text-to-speech'

    def _listens(self, model: str) -> bool:
        return self._tasks().get(model) == 'automatic-speech-recognition'

    async def _health(self, request: Request) -> Response:
        if self.config.flavor == 'kokoro':
            return json_response(200, {'status': 'healthy'})
        if self.config.flavor == 'vllm':
            return Response(200, b'', None)
        return Response(200, b'OK', 'text/plain; charset=utf-8')

    async def _version(self, request: Request) -> Response:
        if self.config.flavor != 'vllm':
            return await self._not_found(request)
        return json_response(200, {'version': '0.32.0'})

    async def _metrics(self, request: Request) -> Response:
        if self.config.flavor != 'vllm':
            return await self._not_found(request)
        lines = []
        for model in self._tasks():
            labels = f'{{engine="0",model_name="{model}"}}'
            lines += [
                f'vllm:num_requests_running{labels} {float(self.stats.in_flight)}',
                f'vllm:num_requests_waiting{labels} 0.0',
                f'vllm:kv_cache_usage_perc{labels} 0.0',
            ]
        return Response(200, ('\n'.join(lines) + '\n').encode(), 'text/plain; version=0.0.4; charset=utf-8')

    async def _models(self, request: Request) -> Response:
        created = int(time.time())
        data = []
        for name, task in self._tasks().items():
            if self.config.flavor == 'vllm':
                data.append(
                    {
                        'id': name,
                        'object': 'model',
                        'created': created,
                        'owned_by': 'vllm',
                        'root': name,
                        'parent': None,
                        'max_model_len': 448,
                        'permission': [],
                    }
                )
            elif self.config.flavor == 'kokoro':
                data.append({'id': name, 'object': 'model', 'created': 1686935002, 'owned_by': 'kokoro'})
            else:
                data.append(
                    {
                        'id': name,
                        'object': 'model',
                        'created': created,
                        'owned_by': name.split('/')[0],
                        'language': ['en'],
                        'task': task,
                    }
                )
        return json_response(200, {'object': 'list', 'data': data})

    def _voice_names(self) -> list[str]:
        return list(self.config.voices or KOKORO_VOICES)

    async def _voices(self, request: Request) -> Response:
        if self.config.flavor == 'vllm':
            return await self._not_found(request)
        if self.config.flavor == 'kokoro':
            return json_response(200, {'voices': [{'id': v, 'name': v} for v in self._voice_names()]})
        speakers = [m for m in self._tasks() if self._speaks(m)]
        return json_response(
            200,
            {
                'object': 'list',
                'voices': [
                    {
                        'object': 'voice',
                        'model_id': model,
                        'voice_id': voice,
                        'created': 0,
                        'owned_by': 'speaches-ai',
                        'sample_rate': 24000,
                        'model_path': f'voices/{voice}.bin',
                    }
                    for model in speakers
                    for voice in self._voice_names()
                ],
            },
        )

    # ------------------------------------------------------------------------------------------ errors, faults
    def _error(self, status: int, message: str, param: str | None = None) -> Response:
        if self.config.flavor == 'vllm':
            kind = 'BadRequestError' if status == 400 else 'NotFoundError' if status == 404 else 'InternalServerError'
            return json_response(status, {'error': {'message': message, 'type': kind, 'param': param, 'code': status}})
        if self.config.flavor == 'kokoro':
            return json_response(
                status,
                {
                    'detail': {
                        'error': 'validation_error' if status < 500 else 'processing_error',
                        'message': message,
                        'type': 'invalid_request_error' if status < 500 else 'server_error',
                    }
                },
            )
        return json_response(status, {'detail': message})

    def _fault_before_answer(self) -> Response | None:
        if self.config.fault == 'error_500':
            return self._error(500, 'simulated engine failure')
        if self.config.fault == 'drop':
            raise AbortConnection
        return None

    # --------------------------------------------------------------------------------------------- speech
    async def _speech(self, request: Request) -> Response | StreamResponse:
        self.stats.requests += 1
        fault = self._fault_before_answer()
        if fault is not None:
            return fault
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return self._error(422, 'request body is not JSON')
        if not isinstance(body, dict):
            return self._error(422, 'request body must be an object')
        model, text, voice = body.get('model'), body.get('input'), body.get('voice')
        fmt, speed = body.get('response_format', 'mp3'), body.get('speed', 1.0)
        if not isinstance(model, str) or not self._speaks(model):
            return self._error(400 if self.config.flavor == 'kokoro' else 404, f'Unsupported model: {model}', 'model')
        if not isinstance(text, str) or not text:
            return self._error(422, 'input must be a non-empty string', 'input')
        if voice not in self._voice_names():
            return self._error(
                400, f"Voice '{voice}' not found. Available voices: {', '.join(self._voice_names())}", 'voice'
            )
        if fmt not in MEDIA:
            return self._error(422, f'unsupported response_format {fmt!r}', 'response_format')
        self.stats.speech_requests += 1
        self.stats.last_speech = body
        pcm = await synthesize(text, voice=str(voice), speed=float(speed or 1.0), espeak=self.config.espeak)
        audio = await encode(pcm, fmt, text=text)
        return StreamResponse(
            self._chunked(audio), MEDIA[fmt], headers=[('Content-Disposition', f'attachment; filename=speech.{fmt}')]
        )

    async def _chunked(self, audio: bytes) -> AsyncIterator[bytes]:
        config = self.config
        self.stats.in_flight += 1
        try:
            if config.first_byte_ms:
                await asyncio.sleep(config.first_byte_ms / 1000)
            for index, start in enumerate(range(0, len(audio), config.chunk_bytes)):
                if index and config.fault == 'cut':
                    raise CloseConnection
                if index and config.chunk_delay_ms:
                    await asyncio.sleep(config.chunk_delay_ms / 1000)
                chunk = audio[start : start + config.chunk_bytes]
                self.stats.audio_bytes_sent += len(chunk)
                yield chunk
        finally:
            self.stats.in_flight -= 1

    # --------------------------------------------------------------------------------------- speech to text
    async def _transcriptions(self, request: Request) -> Response | StreamResponse:
        return await self._listen(request, 'transcribe')

    async def _translations(self, request: Request) -> Response | StreamResponse:
        return await self._listen(request, 'translate')

    async def _listen(self, request: Request, task: str) -> Response | StreamResponse:
        self.stats.requests += 1
        fault = self._fault_before_answer()
        if fault is not None:
            return fault
        try:
            fields, audio = parse_form(request.headers.get('content-type', ''), request.body)
        except ValueError as exc:
            return self._error(422, str(exc), 'file')
        model = fields.get('model', '')
        if not self._listens(model):
            return self._error(404, f'The model `{model}` does not exist.', 'model')
        if not audio:
            return self._error(400 if self.config.flavor == 'vllm' else 422, 'file is required', 'file')
        self.stats.last_fields = fields
        if task == 'translate':
            self.stats.translations += 1
        else:
            self.stats.transcriptions += 1
        text = wav_comment(audio) or self.config.transcript
        duration = wav_duration(audio) or len(audio) / 16_000
        result = transcript_json(
            text,
            duration,
            task=task,
            language=fields.get('language') or 'en',
            words='word' in fields.get('timestamp_granularities[]', ''),
        )
        if fields.get('stream', 'false').lower() == 'true':
            return StreamResponse(self._stream(result, model), 'text/event-stream')
        if self.config.first_byte_ms:
            await asyncio.sleep(self.config.first_byte_ms / 1000)
        fmt = fields.get('response_format', 'json')
        if fmt == 'verbose_json':
            return json_response(200, result)
        if fmt == 'text':
            return Response(200, (text + '\n').encode(), 'text/plain; charset=utf-8')
        if fmt in ('srt', 'vtt'):
            return Response(200, _subtitles(result, vtt=fmt == 'vtt').encode(), 'text/plain; charset=utf-8')
        return json_response(200, {'text': text})

    async def _stream(self, result: dict[str, Any], model: str) -> AsyncIterator[bytes]:
        if self.config.first_byte_ms:
            await asyncio.sleep(self.config.first_byte_ms / 1000)
        segments = result['segments']
        for index, segment in enumerate(segments):
            if index and self.config.fault == 'cut':
                raise CloseConnection
            if index and self.config.chunk_delay_ms:
                await asyncio.sleep(self.config.chunk_delay_ms / 1000)
            if self.config.flavor == 'vllm':
                last = index == len(segments) - 1
                chunk: dict[str, Any] = {
                    'id': f'trsc-{uuid.uuid4().hex}',
                    'object': 'transcription.chunk',
                    'created': int(time.time()),
                    'model': model,
                    'choices': [
                        {
                            'delta': {'content': segment['text']},
                            'finish_reason': 'stop' if last else None,
                            'stop_reason': None,
                        }
                    ],
                }
                if last:
                    chunk['usage'] = {
                        'prompt_tokens': 0,
                        'completion_tokens': len(segments),
                        'total_tokens': len(segments),
                        'duration': result['duration'],
                    }
                yield b'data: ' + orjson.dumps(chunk) + b'\n\n'
            else:  # Speaches: the verbose object of each segment
                yield b'data: ' + orjson.dumps({**result, 'text': segment['text'], 'segments': [segment]}) + b'\n\n'
        if self.config.flavor == 'vllm':
            yield b'data: [DONE]\n\n'


def transcript_json(text: str, duration: float, *, task: str, language: str, words: bool) -> dict[str, Any]:
    """verbose_json: the text in segments of up to eight words over the audio's length, evenly (a fake's timing)."""
    tokens = text.split()
    groups = [tokens[i : i + 8] for i in range(0, len(tokens), 8)] or [[]]
    step = duration / len(groups) if groups else duration
    segments = [
        {
            'id': i,
            'seek': 0,
            'start': round(i * step, 3),
            'end': round((i + 1) * step, 3),
            'text': ' ' + ' '.join(group),  # Whisper's segments start with a space
            'tokens': [],
            'temperature': 0.0,
            'avg_logprob': -0.2,
            'compression_ratio': 1.2,
            'no_speech_prob': 0.01,
        }
        for i, group in enumerate(groups)
    ]
    body: dict[str, Any] = {
        'task': task,
        'language': language if task == 'transcribe' else 'en',
        'duration': round(duration, 3),
        'text': text,
        'segments': segments,
    }
    if words:
        per = duration / max(1, len(tokens))
        body['words'] = [
            {'word': w, 'start': round(i * per, 3), 'end': round((i + 1) * per, 3)} for i, w in enumerate(tokens)
        ]
    return body


def _subtitles(result: dict[str, Any], *, vtt: bool) -> str:
    def stamp(seconds: float) -> str:
        millis = round(seconds * 1000)
        return (
            f'{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}'
            f'{"." if vtt else ","}{millis % 1000:03d}'
        )

    lines = ['WEBVTT', ''] if vtt else []
    for index, segment in enumerate(result['segments'], 1):
        lines += ([] if vtt else [str(index)]) + [
            f'{stamp(segment["start"])} --> {stamp(segment["end"])}',
            segment['text'].strip(),
            '',
        ]
    return '\n'.join(lines) + '\n'


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], bytes]:
    """A whole multipart/form-data body: its fields (a repeated one joined with commas) and its file."""
    marker = 'boundary='
    if 'multipart/form-data' not in content_type or marker not in content_type:
        raise ValueError('expected multipart/form-data')
    boundary = content_type.split(marker, 1)[1].split(';')[0].strip().strip('"').encode()
    fields: dict[str, str] = {}
    audio = b''
    for part in body.split(b'--' + boundary)[1:]:
        if part.startswith(b'--'):
            break
        head, _, content = part.lstrip(b'\r\n').partition(b'\r\n\r\n')
        content = content[:-2] if content.endswith(b'\r\n') else content
        disposition = next(
            (line for line in head.split(b'\r\n') if line.lower().startswith(b'content-disposition')), b''
        )
        name = disposition.split(b'name="', 1)[1].split(b'"', 1)[0].decode() if b'name="' in disposition else ''
        if b'filename=' in disposition:
            audio = content
        else:
            value = content.decode('utf-8', 'replace')
            fields[name] = f'{fields[name]},{value}' if name in fields else value
    return fields, audio


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m sim speech', description='Run a fake speech server.')
    parser.add_argument('--flavor', choices=FLAVORS, default='speaches')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8000)
    parser.add_argument('--models', help="comma-separated model names (default: the flavor's usual ones)")
    parser.add_argument('--voices', help="comma-separated voice names (default: Kokoro's)")
    parser.add_argument('--chunk-bytes', type=int, default=4096)
    parser.add_argument('--chunk-delay-ms', type=float, default=0.0)
    parser.add_argument('--first-byte-ms', type=float, default=0.0)
    parser.add_argument('--fault', choices=SPEECH_FAULTS)
    parser.add_argument('--no-espeak', dest='espeak', action='store_false', help='a tone even if espeak-ng is here')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def split(value: str | None) -> list[str] | None:
        return [v.strip() for v in value.split(',') if v.strip()] if value else None

    try:
        config = SpeechConfig(
            flavor=args.flavor,
            models=split(args.models),
            voices=split(args.voices),
            chunk_bytes=args.chunk_bytes,
            chunk_delay_ms=args.chunk_delay_ms,
            first_byte_ms=args.first_byte_ms,
            fault=args.fault,
            espeak=args.espeak,
        )
        server = SpeechSim(config)
    except ValueError as e:
        print(f'python -m sim speech: {e}', file=sys.stderr)
        return 2
    asyncio.run(server.serve_until_signalled('speech', args.host, args.port))
    return 0
