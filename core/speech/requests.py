"""The OpenAI /v1/audio/* requests, checked once at the door: every bad parameter is a 400 that names it, before
anything is queued or sent to an engine.

- speech: `POST /v1/audio/speech` JSON `{model, input, voice, response_format, speed, instructions, stream_format}`;
- transcription and translation: multipart fields `model, language, prompt, temperature, response_format,
  timestamp_granularities[], stream` next to the `file` (core.speech.upload reads them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidRequest
from core.speech.audio import SPEECH_MEDIA_TYPES

MAX_INPUT_CHARS = 4096  # OpenAI's limit for /v1/audio/speech
SPEED_RANGE = (0.25, 4.0)
TRANSCRIPT_FORMATS = ('json', 'text', 'srt', 'vtt', 'verbose_json')
GRANULARITIES = ('word', 'segment')


@dataclass(slots=True)
class SpeechRequest:
    model: str
    input: str
    voice: str
    response_format: str = 'mp3'
    speed: float = 1.0
    instructions: str | None = None
    stream_format: str = 'audio'  # audio: the bytes as they come; sse: speech.audio.delta events

    @property
    def media_type(self) -> str:
        return SPEECH_MEDIA_TYPES[self.response_format]

    def engine_body(self) -> dict[str, Any]:
        """What the engine gets: always raw audio (the gateway frames SSE itself, so every engine can serve it)."""
        body: dict[str, Any] = {'model': self.model, 'input': self.input, 'voice': self.voice,
                                'response_format': self.response_format, 'speed': self.speed, 'stream': True}
        if self.instructions:
            body['instructions'] = self.instructions
        return body


@dataclass(slots=True)
class TranscriptionRequest:
    model: str
    task: str  # transcribe | translate
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    response_format: str = 'json'
    timestamp_granularities: list[str] = field(default_factory=list)
    stream: bool = False
    filename: str = 'audio'
    container: str = ''  # what the file's bytes say it is (core.speech.audio.sniff)

    def engine_fields(self) -> list[tuple[str, str]]:
        """The form fields the engine gets. Always verbose_json: the gateway needs the audio's duration (the quota
        counts seconds) and the segments, and renders the client's format itself (core.speech.transcripts)."""
        fields = [('model', self.model), ('response_format', 'verbose_json')]
        if self.language and self.task == 'transcribe':
            fields.append(('language', self.language))
        if self.prompt:
            fields.append(('prompt', self.prompt))
        if self.temperature is not None:
            fields.append(('temperature', repr(self.temperature)))
        for granularity in self.timestamp_granularities or ['segment']:
            fields.append(('timestamp_granularities[]', granularity))
        if self.stream:
            fields.append(('stream', 'true'))
        return fields


def parse_speech(body: Any) -> SpeechRequest:
    if not isinstance(body, dict):
        raise InvalidRequest('the request body must be a JSON object', param='body')
    model = _string(body, 'model', required=True)
    text = body.get('input')
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest('input must be a non-empty string: the text to read aloud', param='input')
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidRequest(f'input is {len(text):,} characters; the most is {MAX_INPUT_CHARS:,}', param='input')
    voice = body.get('voice')
    if isinstance(voice, dict):  # the newer SDK's custom-voice form {"id": ...}
        voice = voice.get('id')
    if not isinstance(voice, str) or not voice.strip():
        raise InvalidRequest('voice must name one of the voices of the model (see /v1/models)', param='voice')
    fmt = body.get('response_format', 'mp3')
    if fmt not in SPEECH_MEDIA_TYPES:
        raise InvalidRequest(f'response_format must be one of {", ".join(SPEECH_MEDIA_TYPES)}, not {fmt!r}',
                             param='response_format')
    speed = body.get('speed', 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise InvalidRequest(f'speed must be a number from {SPEED_RANGE[0]} to {SPEED_RANGE[1]}', param='speed')
    instructions = _string(body, 'instructions')
    stream_format = body.get('stream_format', 'audio')
    if stream_format not in ('audio', 'sse'):
        raise InvalidRequest(f"stream_format must be 'audio' or 'sse', not {stream_format!r}", param='stream_format')
    return SpeechRequest(model=model or '', input=text, voice=voice.strip(), response_format=fmt, speed=float(speed),
                         instructions=instructions, stream_format=stream_format)


def parse_transcription(fields: dict[str, list[str]], *, task: str) -> TranscriptionRequest:
    """The form fields of a transcription (task 'transcribe') or translation ('translate') request."""
    model = _field(fields, 'model')
    if not model:
        raise InvalidRequest('model is required: a speech-to-text model (see /v1/models, modality stt)',
                             param='model')
    fmt = _field(fields, 'response_format') or 'json'
    if fmt not in TRANSCRIPT_FORMATS:
        raise InvalidRequest(f'response_format must be one of {", ".join(TRANSCRIPT_FORMATS)}, not {fmt!r}',
                             param='response_format')
    temperature = None
    raw = _field(fields, 'temperature')
    if raw:
        try:
            temperature = float(raw)
        except ValueError:
            raise InvalidRequest(f'temperature must be a number, not {raw!r}', param='temperature') from None
        if not 0 <= temperature <= 1:
            raise InvalidRequest('temperature must be from 0 to 1', param='temperature')
    granularities = fields.get('timestamp_granularities[]', []) + fields.get('timestamp_granularities', [])
    unknown = sorted(set(granularities) - set(GRANULARITIES))
    if unknown:
        raise InvalidRequest(f'timestamp_granularities[] takes word and segment, not {", ".join(unknown)}',
                             param='timestamp_granularities[]')
    if granularities and fmt != 'verbose_json':
        raise InvalidRequest('timestamp_granularities[] needs response_format verbose_json',
                             param='timestamp_granularities[]')
    stream = (_field(fields, 'stream') or 'false').lower()
    if stream not in ('true', 'false'):
        raise InvalidRequest(f'stream must be true or false, not {stream!r}', param='stream')
    if stream == 'true' and task == 'translate':
        raise InvalidRequest('translations do not stream', param='stream')
    if stream == 'true' and fmt not in ('json', 'text'):
        raise InvalidRequest('a streamed transcript comes as transcript.text events: response_format json or text',
                             param='stream')
    language = _field(fields, 'language')
    if language and (len(language) > 16 or not language.replace('-', '').isalpha()):
        raise InvalidRequest(f'language must be an ISO-639-1 code such as en, not {language!r}', param='language')
    prompt = _field(fields, 'prompt')
    if task == 'translate' and language:
        raise InvalidRequest('translations always produce English; language is not a parameter', param='language')
    return TranscriptionRequest(model=model, task=task, language=language or None, prompt=prompt or None,
                                temperature=temperature, response_format=fmt,
                                timestamp_granularities=list(dict.fromkeys(granularities)), stream=stream == 'true')


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(f'{name} must be a {"non-empty " if required else ""}string', param=name)
    return value


def _field(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name) or ['']
    return values[-1].strip()
