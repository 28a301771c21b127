"""Transcripts: what an engine answers (verbose_json, or a stream of events in one of three dialects) read into one
shape, and rendered in the format the client asked for (json, text, srt, vtt, verbose_json) or as OpenAI's
`transcript.text.delta` / `transcript.text.done` events.

The gateway always asks the engine for verbose_json (core.speech.requests): it carries the audio's duration, which
the speech quota counts, and the segments that srt and vtt are made of; so every engine serves every format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.translate.engine_errors import EngineResponseError


@dataclass(slots=True)
class Segment:
    start: float
    end: float
    text: str
    extra: dict[str, Any] = field(default_factory=dict)  # the engine's other fields (tokens, avg_logprob, ...)


@dataclass(slots=True)
class Transcript:
    text: str
    duration: float  # seconds of audio, as the engine measured it (0 when it did not say)
    language: str | None = None
    segments: list[Segment] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)


def parse_verbose(body: dict[str, Any]) -> Transcript:
    """An engine's verbose_json (Speaches, vLLM, OpenAI all share it); a plain json answer ({text}) too."""
    text = body.get('text')
    if not isinstance(text, str):
        raise EngineResponseError('the transcript has no text')
    segments = []
    for raw in body.get('segments') or []:
        if isinstance(raw, dict):
            extra = {k: v for k, v in raw.items() if k not in ('start', 'end', 'text')}
            segments.append(Segment(float(raw.get('start') or 0), float(raw.get('end') or 0), str(raw.get('text', '')),
                                    extra))
    words = [w for w in body.get('words') or [] if isinstance(w, dict)]
    return Transcript(text=text.strip(), duration=_duration(body, segments), language=body.get('language'),
                      segments=segments, words=words)


def _duration(body: dict[str, Any], segments: list[Segment]) -> float:
    duration = body.get('duration')
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        return float(duration)
    usage = body.get('usage')
    if isinstance(usage, dict) and isinstance(usage.get('seconds'), int | float):
        return float(usage['seconds'])
    return max((s.end for s in segments), default=0.0)


def render(transcript: Transcript, *, response_format: str, task: str, granularities: list[str]
           ) -> tuple[bytes, str]:
    """The answer's body and media type in the client's response_format."""
    if response_format == 'text':
        return (transcript.text + '\n').encode(), 'text/plain; charset=utf-8'
    if response_format in ('srt', 'vtt'):
        return _subtitles(transcript, vtt=response_format == 'vtt').encode(), 'text/plain; charset=utf-8'
    if response_format == 'verbose_json':
        body: dict[str, Any] = {'task': task, 'language': transcript.language or 'english',
                                'duration': round(transcript.duration, 3), 'text': transcript.text}
        if not granularities or 'segment' in granularities:
            body['segments'] = [_segment_json(i, s) for i, s in enumerate(_segments(transcript))]
        if 'word' in granularities:
            body['words'] = transcript.words
        body['usage'] = usage(transcript.duration)
        return orjson.dumps(body), 'application/json'
    return orjson.dumps({'text': transcript.text, 'usage': usage(transcript.duration)}), 'application/json'


def usage(seconds: float) -> dict[str, Any]:
    """OpenAI's usage of a duration-billed transcription: whole seconds, rounded up."""
    return {'type': 'duration', 'seconds': math.ceil(seconds)}


def _segments(transcript: Transcript) -> list[Segment]:
    if transcript.segments:
        return transcript.segments
    return [Segment(0.0, transcript.duration, transcript.text)] if transcript.text else []


def _segment_json(index: int, segment: Segment) -> dict[str, Any]:
    return {'id': index, **segment.extra, 'start': segment.start, 'end': segment.end, 'text': segment.text}


def _subtitles(transcript: Transcript, *, vtt: bool) -> str:
    lines = ['WEBVTT', ''] if vtt else []
    for index, segment in enumerate(_segments(transcript), 1):
        if not vtt:
            lines.append(str(index))
        lines.append(f'{_stamp(segment.start, vtt)} --> {_stamp(segment.end, vtt)}')
        lines.extend([segment.text.strip(), ''])
    return '\n'.join(lines) + '\n'


def _stamp(seconds: float, vtt: bool) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f'{hours:02d}:{minutes:02d}:{secs:02d}{"." if vtt else ","}{millis:03d}'


class TranscriptStreamParser:
    """An engine's streamed transcript, as text deltas. Reads OpenAI's events (`transcript.text.delta` / `.done`),
    vLLM's chat-like chunks (`object: transcription.chunk`, `choices[0].delta.content`, then `[DONE]`) and
    Speaches' per-segment objects (`{text, segments?...}`); `done` once the engine said it finished."""

    def __init__(self) -> None:
        self._buffer = b''
        self.text: list[str] = []
        self.duration = 0.0
        self.done = False

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += chunk
        deltas: list[str] = []
        while b'\n' in self._buffer:
            line, self._buffer = self._buffer.split(b'\n', 1)
            line = line.strip()
            if not line.startswith(b'data:'):
                continue
            data = line[5:].strip()
            if data == b'[DONE]':
                self.done = True
                continue
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                delta = self._event(event)
                if delta:
                    self.text.append(delta)
                    deltas.append(delta)
        return deltas

    def _event(self, event: dict[str, Any]) -> str:
        if 'error' in event:
            error = event['error']
            message = error.get('message') if isinstance(error, dict) else str(error)
            raise EngineResponseError(f'the engine reported an error mid-transcript: {message}')
        kind = event.get('type')
        if kind == 'transcript.text.delta':
            return str(event.get('delta') or '')
        if kind == 'transcript.text.done':
            self.done = True
            self._note_duration(event)
            return ''
        choices = event.get('choices')
        if isinstance(choices, list):  # vLLM
            self._note_duration(event)
            piece = ''
            for choice in choices:
                if isinstance(choice, dict):
                    piece += str((choice.get('delta') or {}).get('content') or '')
                    if choice.get('finish_reason'):
                        self.done = True
            return piece
        if isinstance(event.get('text'), str):  # Speaches: one object per segment
            self._note_duration(event)
            text = str(event['text'])
            return text if not self.text else (text if text.startswith(' ') else ' ' + text)
        return ''

    def _note_duration(self, event: dict[str, Any]) -> None:
        segments = [Segment(float(s.get('start') or 0), float(s.get('end') or 0), '')
                    for s in event.get('segments') or [] if isinstance(s, dict)]
        self.duration = max(self.duration, _duration(event, segments) if ('duration' in event or 'usage' in event
                                                                          or segments) else 0.0)


def delta_event(delta: str) -> bytes:
    return b'data: ' + orjson.dumps({'type': 'transcript.text.delta', 'delta': delta, 'logprobs': None}) + b'\n\n'


def done_event(text: str, seconds: float) -> bytes:
    return b'data: ' + orjson.dumps({'type': 'transcript.text.done', 'text': text, 'logprobs': None,
                                     'usage': usage(seconds)}) + b'\n\n'
