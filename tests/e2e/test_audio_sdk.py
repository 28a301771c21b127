"""Speech through a real `mindrouter serve` process, driven by the official openai client: text to speech (whole
and streamed as it arrives), speech to text in every response format, translations, streamed transcripts, a round
trip (espeak-ng's speech, made by the fake Speaches, transcribed back) and failover between two speech backends.

The fake engines are real processes (sim/speech.py): Speaches (both directions), Kokoro-FastAPI (text to speech)
and vLLM serving Whisper (speech to text). The fake's "recognition" reads back the text a WAV it made carries in its
comment chunk; it recognises no speech (docs/voice.md).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from sim.speech_audio import tone, wav, wav_comment
from tests.e2e.cluster import Cluster, running_cluster

SPEACHES_TTS = 'speaches-ai/Kokoro-82M-v1.0-ONNX'
SPEACHES_STT = 'Systran/faster-whisper-small'
WHISPER = 'openai/whisper-large-v3-turbo'
SENTENCE = 'The quick brown fox jumps over the lazy dog near the river bank today'


@pytest.fixture(scope='module')
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    engines = {'speaches': ('stt', ['--flavor', 'speaches', '--chunk-bytes', '4096']),
               'kokoro': ('tts', ['--flavor', 'kokoro', '--chunk-bytes', '2048', '--chunk-delay-ms', '40']),
               'kokoro-spare': ('tts', ['--flavor', 'kokoro']),
               'whisper': ('vllm', ['--flavor', 'vllm'])}
    with running_cluster(tmp_path_factory.mktemp('speech'), engines, unlimited=True,
                         sim_kinds={'whisper': 'speech'}) as cluster:
        yield cluster


@pytest.fixture
def client(cluster: Cluster) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key, max_retries=0) as client:
        yield client


def test_the_model_list_shows_speech_models_and_their_voices(client: openai.OpenAI) -> None:
    models = {m.id: m.model_dump() for m in client.models.list()}
    assert models[SPEACHES_TTS]['modality'] == models['tts-1']['modality'] == 'tts'
    assert models[WHISPER]['modality'] == models[SPEACHES_STT]['modality'] == 'stt'
    assert 'af_heart' in models['tts-1']['voices']


@pytest.mark.parametrize('response_format', ['wav', 'mp3', 'flac', 'opus', 'aac', 'pcm'])
def test_speech_in_every_format(client: openai.OpenAI, response_format: str) -> None:
    audio = client.audio.speech.create(model=SPEACHES_TTS, voice='af_heart', input='Hello from the gateway.',
                                       response_format=response_format)  # type: ignore[arg-type]
    data = audio.content
    magic = {'wav': b'RIFF', 'mp3': b'\xff\xfb', 'flac': b'fLaC', 'opus': b'OggS', 'aac': b'\xff\xf1'}
    if response_format in magic:
        assert data.startswith(magic[response_format]), data[:8]
    assert len(data) > 100 and audio.response.headers['x-mindrouter-backend'] == 'speaches'


def test_streamed_speech_arrives_as_the_engine_makes_it(client: openai.OpenAI, cluster: Cluster) -> None:
    started = time.perf_counter()
    arrivals: list[float] = []
    with client.audio.speech.with_streaming_response.create(
            model='tts-1', voice='af_bella', input=SENTENCE, response_format='wav') as response:
        assert response.headers['content-type'] == 'audio/wav'
        assert response.headers['x-mindrouter-backend'] in ('kokoro', 'kokoro-spare')
        body = b''
        for chunk in response.iter_bytes(2048):
            arrivals.append(time.perf_counter() - started)
            body += chunk
    assert body[:4] == b'RIFF' and wav_comment(body) == SENTENCE
    if response.headers['x-mindrouter-backend'] == 'kokoro':  # 40 ms between its chunks: the first came long
        assert len(arrivals) > 5 and arrivals[-1] - arrivals[0] > 0.15  # before the last (never buffered whole)


@pytest.mark.parametrize('response_format', ['json', 'text', 'srt', 'vtt', 'verbose_json'])
def test_a_transcript_in_every_format(client: openai.OpenAI, response_format: str) -> None:
    audio = wav(tone(seconds=2.0), text=SENTENCE)
    result = client.audio.transcriptions.create(model=WHISPER, file=('clip.wav', audio), language='en',
                                                response_format=response_format)  # type: ignore[call-overload]
    if response_format == 'json':
        assert result.text == SENTENCE
    elif response_format == 'verbose_json':
        assert result.text == SENTENCE and result.duration == 2.0 and result.segments
    elif response_format == 'text':
        assert result.strip() == SENTENCE
    else:
        assert '00:00:00' in result and 'quick brown fox' in result
        assert result.startswith('WEBVTT') == (response_format == 'vtt')


def test_word_timestamps_and_a_translation(client: openai.OpenAI) -> None:
    audio = wav(tone(seconds=1.0), text='hola mundo')
    verbose = client.audio.transcriptions.create(model=SPEACHES_STT, file=('clip.wav', audio),
                                                 response_format='verbose_json', timestamp_granularities=['word'])
    assert [w.word for w in verbose.words or []] == ['hola', 'mundo']
    with pytest.deprecated_call():  # the SDK marks translations deprecated; servers (and this gateway) still serve them
        translated = client.audio.translations.create(model=WHISPER, file=('clip.wav', audio))
    assert translated.text == 'hola mundo'  # the fake translates nothing: it reads its own comment back


def test_a_streamed_transcript(client: openai.OpenAI) -> None:
    audio = wav(tone(seconds=3.0), text=SENTENCE)
    stream = client.audio.transcriptions.create(model=WHISPER, file=('clip.wav', audio), stream=True)
    events = list(stream)
    deltas = [e.delta for e in events if e.type == 'transcript.text.delta']
    assert len(deltas) == 2 and ''.join(deltas).strip() == SENTENCE
    assert events[-1].type == 'transcript.text.done' and events[-1].text == SENTENCE


@pytest.mark.skipif(shutil.which('espeak-ng') is None, reason='espeak-ng is not installed (.ci/run installs it)')
def test_a_round_trip_from_espeak_speech_to_its_transcript(client: openai.OpenAI) -> None:
    speech = client.audio.speech.create(model=SPEACHES_TTS, voice='af_heart', input=SENTENCE, response_format='wav')
    audio = speech.content
    samples = audio[audio.index(b'data') + 8:]
    assert samples != tone(seconds=len(samples) / 2 / 22_050)[:len(samples)]  # espeak-ng's speech, not the tone
    assert len(samples) / 2 / 22_050 > 2  # a sentence takes seconds to say
    heard = client.audio.transcriptions.create(model=SPEACHES_STT, file=('speech.wav', audio))
    assert heard.text == SENTENCE


def test_failover_between_two_speech_backends(client: openai.OpenAI, cluster: Cluster) -> None:
    cluster.sim_config('kokoro', fault='error_500')
    try:
        served = set()
        for _ in range(4):
            audio = client.audio.speech.create(model='tts-1', voice='af_sky', input='Still here.',
                                               response_format='wav')
            assert wav_comment(audio.content) == 'Still here.'
            served.add(audio.response.headers['x-mindrouter-backend'])
        assert served == {'kokoro-spare'}
    finally:
        cluster.sim_config('kokoro', fault=None)


def test_refusals_come_in_the_openai_envelope(client: openai.OpenAI, cluster: Cluster) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model='tts-1', voice='nobody', input='hi')
    assert refused.value.body['param'] == 'voice'  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as wrong:
        client.audio.transcriptions.create(model='tts-1', file=('a.wav', wav(tone(seconds=0.2), text='x')))
    assert wrong.value.body['param'] == 'model'  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as not_audio:
        client.audio.transcriptions.create(model=WHISPER, file=('a.wav', b'{"this": "is json"}'))
    assert not_audio.value.body['param'] == 'file'  # type: ignore[index]
    metrics = httpx.get(f'{cluster.url}/metrics').text
    assert 'mindrouter_audio_seconds_total{model="openai/whisper-large-v3-turbo"}' in metrics
