"""The fake speech server speaks each flavor's wire format: Speaches, Kokoro-FastAPI, vLLM serving Whisper."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sim.speech import FIXED_TRANSCRIPT, SpeechConfig, SpeechSim
from sim.speech_audio import tone, wav, wav_comment


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def test_kokoro_speaks_and_does_not_listen(http: httpx.AsyncClient) -> None:
    async with SpeechSim(SpeechConfig(flavor='kokoro', chunk_bytes=1000)) as sim:
        assert (await http.get(f'{sim.url}/health')).json() == {'status': 'healthy'}
        models = (await http.get(f'{sim.url}/v1/models')).json()['data']
        assert [m['id'] for m in models] == ['tts-1', 'tts-1-hd', 'kokoro', 'gpt-4o-mini-tts']
        assert all('task' not in m and m['owned_by'] == 'kokoro' for m in models)
        voices = (await http.get(f'{sim.url}/v1/audio/voices')).json()['voices']
        assert {'id': 'af_heart', 'name': 'af_heart'} in voices
        async with http.stream('POST', f'{sim.url}/v1/audio/speech', json={
                'model': 'kokoro', 'input': 'Hi there', 'voice': 'af_heart', 'response_format': 'wav'}) as spoken:
            assert spoken.headers['transfer-encoding'] == 'chunked'
            audio = b''.join([chunk async for chunk in spoken.aiter_raw()])
        assert wav_comment(audio) == 'Hi there'
        unknown = await http.post(f'{sim.url}/v1/audio/speech', json={'model': 'kokoro', 'input': 'x', 'voice': 'zz'})
        assert unknown.status_code == 400 and unknown.json()['detail']['type'] == 'invalid_request_error'
        listen = await http.post(f'{sim.url}/v1/audio/transcriptions', files={'file': ('a.wav', audio)},
                                 data={'model': 'kokoro'})
        assert listen.status_code == 404


async def test_vllm_whisper_listens_streams_and_reports_errors_its_way(http: httpx.AsyncClient) -> None:
    async with SpeechSim(SpeechConfig(flavor='vllm')) as sim:
        assert (await http.get(f'{sim.url}/health')).content == b''
        assert (await http.get(f'{sim.url}/version')).json() == {'version': '0.32.0'}
        [model] = (await http.get(f'{sim.url}/v1/models')).json()['data']
        assert model['id'] == 'openai/whisper-large-v3-turbo' and model['max_model_len'] == 448
        assert (await http.get(f'{sim.url}/v1/audio/voices')).status_code == 404
        clip = wav(tone(seconds=1.0), text='one two three')
        streamed = await http.post(f'{sim.url}/v1/audio/transcriptions', files={'file': ('a.wav', clip)},
                                   data={'model': model['id'], 'stream': 'true'})
        lines = [line for line in streamed.text.splitlines() if line.startswith('data: ')]
        assert 'transcription.chunk' in lines[0] and lines[-1] == 'data: [DONE]'
        other = await http.post(f'{sim.url}/v1/audio/transcriptions', files={'file': ('a.mp3', b'\xff\xfb' * 100)},
                                data={'model': model['id'], 'response_format': 'text'})
        assert other.text == FIXED_TRANSCRIPT + '\n'  # it recognises nothing: audio it did not make gets this
        wrong = await http.post(f'{sim.url}/v1/audio/transcriptions', files={'file': ('a.wav', clip)},
                                data={'model': 'nope'})
        assert wrong.status_code == 404 and wrong.json()['error']['param'] == 'model'


async def test_faults(http: httpx.AsyncClient) -> None:
    async with SpeechSim(SpeechConfig(fault='error_500')) as sim:
        body = {'model': 'speaches-ai/Kokoro-82M-v1.0-ONNX', 'input': 'x', 'voice': 'af_heart'}
        assert (await http.post(f'{sim.url}/v1/audio/speech', json=body)).status_code == 500
        sim.config.update({'fault': 'drop'})
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f'{sim.url}/v1/audio/speech', json=body)
        sim.config.update({'fault': 'cut', 'chunk_bytes': 100})
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f'{sim.url}/v1/audio/speech', json={**body, 'response_format': 'wav'})
        assert (await http.get(f'{sim.url}/health')).status_code == 200  # probes are never faulted
