"""The speech building blocks on their own: audio recognised by its bytes, WAV durations, the streaming upload
parser (refusing early), the request checks, transcripts in every format and the three stream dialects."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import orjson
import pytest

from components.voice import speakable, speech_offer
from core.errors import InvalidRequest, RequestTooLarge
from core.registry.families import modality, speech_capabilities, vllm_capabilities
from core.registry.view import BackendState, CatalogEntry, ModelInfo
from core.speech.audio import sniff, wav_duration
from core.speech.requests import parse_speech, parse_transcription
from core.speech.transcripts import Segment, Transcript, TranscriptStreamParser, parse_verbose, render
from core.speech.upload import encode_multipart, read_upload
from core.translate.engine_errors import EngineResponseError
from sim.speech_audio import silent_adts, silent_mp3, silent_ogg_opus, tone, wav


@pytest.mark.parametrize(('head', 'container'), [
    (wav(b'\0\0', text='x'), 'wav'), (b'fLaC\0\0\0\x22', 'flac'), (b'OggS\0\x02', 'ogg'), (b'ID3\x04\0', 'mp3'),
    (silent_mp3(0.1), 'mp3'), (silent_adts(0.1), 'aac'), (silent_ogg_opus(0.1), 'ogg'),
    (b'\x1a\x45\xdf\xa3\x9f\x42\x86\x81', 'webm'), (b'\0\0\0\x20ftypM4A \0\0', 'mp4'), (b'FORM\0\0\0\0AIFF', 'aiff'),
    (b'#!AMR\n', 'amr'), (b'caff\0\x01', 'caf'),
    (b'%PDF-1.7', None), (b'{"json": 1}', None), (b'\x89PNG\r\n\x1a\n', None), (b'', None), (b'\xff\xd8\xff\xe0', None),
])
def test_audio_is_recognised_by_its_first_bytes(head: bytes, container: str | None) -> None:
    assert sniff(head[:16]) == container


def test_a_wav_duration_counts_the_samples_present_even_when_the_header_is_a_placeholder() -> None:
    exact = wav(tone(seconds=0.5), text='hi')
    assert wav_duration(exact) == 0.5
    streamed = exact.replace(struct.pack('<I', len(tone(seconds=0.5))), struct.pack('<I', 0x7FFFF000))
    assert wav_duration(streamed) == 0.5  # espeak-ng and streaming servers write a huge size into the header
    assert wav_duration(b'ID3 not a wav') is None


async def _chunks(data: bytes, size: int, served: list[int] | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        if served is not None:
            served.append(start)
        yield data[start:start + size]


async def test_the_upload_parser_reads_fields_and_file_split_anywhere() -> None:
    audio = wav(tone(seconds=0.2), text='hello')
    body, content_type = encode_multipart([('model', 'whisper'), ('timestamp_granularities[]', 'word'),
                                           ('timestamp_granularities[]', 'segment')], filename='a "b".wav',
                                          data=audio, content_type='audio/wav')
    for size in (1, 7, 4096, len(body)):
        upload = await read_upload(_chunks(body, size), content_type.decode(), max_file_bytes=1_000_000)
        assert upload.data == audio and upload.container == 'wav' and upload.filename == 'a %22b%22.wav'
        assert upload.fields == {'model': ['whisper'], 'timestamp_granularities[]': ['word', 'segment']}


async def test_the_upload_parser_refuses_as_soon_as_the_bytes_show_it() -> None:
    served: list[int] = []
    body, content_type = encode_multipart([('model', 'm')], filename='x.wav', data=b'%PDF' + bytes(1_000_000),
                                          content_type='audio/wav')
    with pytest.raises(InvalidRequest) as not_audio:
        await read_upload(_chunks(body, 1024, served), content_type.decode(), max_file_bytes=10_000_000)
    assert not_audio.value.param == 'file' and len(served) <= 2  # refused at the first kilobyte, not the last
    served.clear()
    body, content_type = encode_multipart([], filename='x.wav', data=wav(bytes(500_000), text=''), content_type='a')
    with pytest.raises(RequestTooLarge):
        await read_upload(_chunks(body, 1024, served), content_type.decode(), max_file_bytes=100_000)
    assert len(served) <= 100
    empty, content_type = encode_multipart([('model', 'm')], filename='e.wav', data=b'', content_type='a')
    with pytest.raises(InvalidRequest) as no_file:
        await read_upload(_chunks(empty, 64), content_type.decode(), max_file_bytes=100)
    assert no_file.value.param == 'file'
    with pytest.raises(InvalidRequest) as malformed:
        await read_upload(_chunks(empty, 64), 'multipart/form-data; boundary=another', max_file_bytes=100)
    assert malformed.value.param == 'body'
    with pytest.raises(InvalidRequest):
        await read_upload(_chunks(b'{}', 64), 'application/json', max_file_bytes=100)


def test_speech_requests_are_checked_parameter_by_parameter() -> None:
    ok = parse_speech({'model': 'm', 'input': 'hi', 'voice': {'id': 'af'}, 'speed': 2})
    assert (ok.voice, ok.speed, ok.response_format, ok.engine_body()['stream']) == ('af', 2.0, 'mp3', True)
    for body, param in (({'input': 'hi', 'voice': 'v'}, 'model'), ({'model': 'm', 'voice': 'v'}, 'input'),
                        ({'model': 'm', 'input': ' ', 'voice': 'v'}, 'input'), ({'model': 'm', 'input': 'x'}, 'voice'),
                        ({'model': 'm', 'input': 'x', 'voice': 'v', 'speed': True}, 'speed'), ([], 'body')):
        with pytest.raises(InvalidRequest) as refused:
            parse_speech(body)
        assert refused.value.param == param
    heard = parse_transcription({'model': ['w'], 'temperature': ['0.2'], 'stream': ['TRUE']}, task='transcribe')
    assert heard.stream and heard.temperature == 0.2
    assert ('response_format', 'verbose_json') in heard.engine_fields()
    for fields, param in (({'model': ['w'], 'temperature': ['hot']}, 'temperature'),
                          ({'model': ['w'], 'language': ['en; rm']}, 'language'),
                          ({'model': ['w'], 'stream': ['true'], 'response_format': ['srt']}, 'stream')):
        with pytest.raises(InvalidRequest) as refused:
            parse_transcription(fields, task='transcribe')
        assert refused.value.param == param
    with pytest.raises(InvalidRequest):
        parse_transcription({'model': ['w'], 'language': ['fr']}, task='translate')


def test_transcripts_render_in_every_format() -> None:
    transcript = Transcript(text='Hello there. General Kenobi.', duration=3725.5, language='en',
                            segments=[Segment(0, 1.25, ' Hello there.', {'tokens': [1]}),
                                      Segment(3723.0, 3725.5, ' General Kenobi.')],
                            words=[{'word': 'Hello', 'start': 0.0, 'end': 0.5}])
    assert render(transcript, response_format='text', task='transcribe', granularities=[])[0] == \
        b'Hello there. General Kenobi.\n'
    srt = render(transcript, response_format='srt', task='transcribe', granularities=[])[0].decode()
    assert srt == ('1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n'
                   '2\n01:02:03,000 --> 01:02:05,500\nGeneral Kenobi.\n\n')
    vtt = render(transcript, response_format='vtt', task='transcribe', granularities=[])[0].decode()
    assert vtt.startswith('WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n')
    body, media = render(transcript, response_format='json', task='transcribe', granularities=[])
    assert media == 'application/json'
    assert orjson.loads(body) == {'text': transcript.text, 'usage': {'type': 'duration', 'seconds': 3726}}
    verbose = orjson.loads(render(transcript, response_format='verbose_json', task='translate',
                                  granularities=['word'])[0])
    assert verbose['task'] == 'translate' and verbose['words'] == transcript.words and 'segments' not in verbose
    assert parse_verbose({'text': ' hi ', 'segments': [{'start': 0, 'end': 2.5, 'text': 'hi'}]}).duration == 2.5
    with pytest.raises(EngineResponseError):
        parse_verbose({'segments': []})


@pytest.mark.parametrize(('lines', 'text', 'ends'), [
    ([{'type': 'transcript.text.delta', 'delta': 'Hello'}, {'type': 'transcript.text.delta', 'delta': ' world'},
      {'type': 'transcript.text.done', 'text': 'Hello world'}], 'Hello world', True),
    ([{'object': 'transcription.chunk', 'choices': [{'delta': {'content': ' Hello'}, 'finish_reason': None}]},
      {'object': 'transcription.chunk', 'choices': [{'delta': {'content': ' world'}, 'finish_reason': 'stop'}]},
      '[DONE]'], 'Hello world', True),
    # Speaches says nothing at the end: the stream's end is the transcript's (the relay then sends .done)
    ([{'text': 'Hello', 'segments': [{'start': 0, 'end': 1}]}, {'text': 'world', 'duration': 2.0}], 'Hello world',
     False),
])
def test_the_three_stream_dialects_read_as_deltas(lines: list[object], text: str, ends: bool) -> None:
    parser = TranscriptStreamParser()
    wire = b''.join(b'data: ' + (line.encode() if isinstance(line, str) else orjson.dumps(line)) + b'\n\n'
                    for line in lines)
    deltas = [d for i in range(0, len(wire), 5) for d in parser.feed(wire[i:i + 5])]
    assert ''.join(deltas).strip() == text
    assert parser.done == ends
    with pytest.raises(EngineResponseError):
        TranscriptStreamParser().feed(b'data: {"error": {"message": "out of memory"}}\n\n')


def test_speech_models_are_told_apart_by_task_name_and_engine() -> None:
    assert vllm_capabilities('openai/whisper-large-v3-turbo') == ['transcription']
    assert speech_capabilities('anything', task='text-to-speech', engine='stt') == ['speech']
    assert speech_capabilities('Systran/faster-whisper-small', task=None, engine='tts') == ['transcription']
    assert speech_capabilities('tts-1-hd', task=None, engine='stt') == ['speech']
    assert speech_capabilities('mystery', task=None, engine='tts') == ['speech']
    assert modality(['speech']) == 'tts' and modality(['transcription']) == 'stt'


def test_the_chat_offers_what_the_registry_serves_and_reads_answers_plainly() -> None:
    def entry(name: str, capability: str, voices: list[str] | None = None) -> CatalogEntry:
        info = ModelInfo(name=name, capabilities=frozenset({capability}),
                         details={'voices': voices} if voices else {})
        return CatalogEntry(info=info, backends=(BackendState(1, 'b', 'http://x', 'tts', 1, 'healthy'),))

    offer = speech_offer([entry('chat', 'completion'), entry('kokoro', 'speech', ['af', 'bm']),
                          entry('whisper', 'transcription')])
    assert offer.listener == 'whisper' and offer.picker_options() == {'kokoro|af': 'af', 'kokoro|bm': 'bm'}
    assert not speech_offer([entry('chat', 'completion')]).any
    assert speakable('# Title\n**Bold** text\n```python\nprint(1)\n```\nDone `x`.') == 'Title Bold text (code) Done x.'
