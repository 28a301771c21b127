"""The speech API in-process (/v1/audio/*) against the fake speech servers (sim/speech.py): text to speech relayed as
it arrives, speech to text in every format, the refusals that never reach an engine, failover, the speech budgets,
and what the audit trail and /metrics keep."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI

from core.gateway.service import StreamBroken
from sim.speech import SpeechConfig, SpeechSim
from sim.speech_audio import tone, wav
from tests.api.audit import audit_row

TTS = 'speaches-ai/Kokoro-82M-v1.0-ONNX'
STT = 'Systran/faster-whisper-small'
WHISPER = 'openai/whisper-large-v3-turbo'


@pytest.fixture
def app_env() -> dict[str, str]:
    return {'AUDIO_MAX_BYTES': str(200_000), 'BACKEND_COOLDOWN': '0'}


async def _register(admin: httpx.AsyncClient, name: str, sim: SpeechSim, engine: str) -> None:
    response = await admin.post('/api/admin/backends/register', json={
        'name': name, 'url': sim.url, 'engine': engine, 'max_concurrent': 2})
    assert response.status_code == 201, response.text
    assert response.json()['status'] == 'healthy'


@pytest.fixture
async def speaches(admin: httpx.AsyncClient) -> AsyncIterator[SpeechSim]:
    async with SpeechSim(SpeechConfig(flavor='speaches', chunk_bytes=2048)) as sim:
        await _register(admin, 'speaches', sim, 'tts')
        yield sim


@pytest.fixture
async def whisper(admin: httpx.AsyncClient) -> AsyncIterator[SpeechSim]:
    async with SpeechSim(SpeechConfig(flavor='vllm')) as sim:
        await _register(admin, 'vllm-whisper', sim, 'vllm')  # a vLLM backend whose model transcribes
        yield sim


def _file(data: bytes, name: str = 'speech.wav') -> dict[str, tuple[str, io.BytesIO, str]]:
    return {'file': (name, io.BytesIO(data), 'application/octet-stream')}


def _spoken(text: str) -> bytes:
    """A WAV the fake made of `text` (its comment carries the text, which is how the fake 'recognises' it)."""
    return wav(tone(seconds=1.5), text=text)


async def test_speech_is_relayed_with_timing_headers_and_audited_in_characters(
        app: FastAPI, admin: httpx.AsyncClient, alice_key: str, speaches: SpeechSim) -> None:
    text = 'The gateway reads this sentence aloud.'
    async with admin.stream('POST', '/v1/audio/speech', headers={'X-API-Key': alice_key}, json={
            'model': TTS, 'input': text, 'voice': 'af_heart', 'response_format': 'wav'}) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers['content-type'] == 'audio/wav'
        chunks = [chunk async for chunk in response.aiter_raw()]
    audio = b''.join(chunks)
    assert audio[:4] == b'RIFF' and audio[8:12] == b'WAVE'
    headers = response.headers
    assert headers['x-mindrouter-backend'] == 'speaches'
    assert float(headers['x-mindrouter-queue-ms']) >= 0 and float(headers['x-mindrouter-overhead-ms']) >= 0
    assert speaches.stats.last_speech is not None and speaches.stats.last_speech['voice'] == 'af_heart'

    row = await audit_row(app, admin, headers['x-request-id'])
    assert (row['endpoint'], row['status'], row['model'], row['backend']) == (
        '/v1/audio/speech', 'completed', TTS, 'speaches')
    assert row['speech_chars'] == len(text) and row['prompt'] == text and row['audio_path'] is None
    metrics = (await admin.get('/metrics')).text
    assert f'mindrouter_speech_characters_total{{model="{TTS}"}} {float(len(text))}' in metrics


async def test_speech_as_server_sent_events(admin: httpx.AsyncClient, alice_key: str, speaches: SpeechSim) -> None:
    response = await admin.post('/v1/audio/speech', headers={'X-API-Key': alice_key}, json={
        'model': TTS, 'input': 'Events, please.', 'voice': 'af_bella', 'response_format': 'pcm',
        'stream_format': 'sse'})
    assert response.status_code == 200 and response.headers['content-type'].startswith('text/event-stream')
    events = [orjson.loads(line[6:]) for line in response.text.splitlines() if line.startswith('data: ')]
    assert {e['type'] for e in events[:-1]} == {'speech.audio.delta'} and len(events) > 1
    assert events[-1]['type'] == 'speech.audio.done' and events[-1]['usage']['input_tokens'] >= 1


async def test_models_show_speech_modalities_and_voices(admin: httpx.AsyncClient, speaches: SpeechSim,
                                                        whisper: SpeechSim) -> None:
    models = {m['id']: m for m in (await admin.get('/v1/models')).json()['data']}
    assert models[TTS]['modality'] == 'tts' and 'af_heart' in models[TTS]['voices']
    assert models[STT]['modality'] == 'stt' and models[WHISPER]['modality'] == 'stt'
    assert 'voices' not in models[STT]
    tags = {m['name'] for m in (await admin.get('/api/tags')).json()['models']}
    assert TTS not in tags and WHISPER not in tags  # Ollama's dialect has no audio API


@pytest.mark.parametrize('response_format', ['json', 'text', 'srt', 'vtt', 'verbose_json'])
async def test_a_transcript_in_every_format(app: FastAPI, admin: httpx.AsyncClient, alice_key: str,
                                            whisper: SpeechSim, response_format: str) -> None:
    text = 'one two three four five six seven eight nine ten'
    response = await admin.post('/v1/audio/transcriptions', headers={'X-API-Key': alice_key},
                                files=_file(_spoken(text)),
                                data={'model': WHISPER, 'response_format': response_format, 'language': 'en'})
    assert response.status_code == 200, response.text
    assert whisper.stats.last_fields is not None and whisper.stats.last_fields['response_format'] == 'verbose_json'
    body = response.text
    if response_format == 'json':
        assert response.json() == {'text': text, 'usage': {'type': 'duration', 'seconds': 2}}
    elif response_format == 'text':
        assert body == text + '\n'
    elif response_format == 'srt':
        assert body.startswith('1\n00:00:00,000 --> 00:00:00,750\none two three four five six seven eight\n')
    elif response_format == 'vtt':
        assert body.startswith('WEBVTT\n\n00:00:00.000 --> 00:00:00.750\n')
    else:
        verbose = response.json()
        assert verbose['task'] == 'transcribe' and verbose['duration'] == 1.5 and len(verbose['segments']) == 2
    row = await audit_row(app, admin, response.headers['x-request-id'])
    assert row['audio_seconds'] == 1.5 and row['response'] == text and row['backend'] == 'vllm-whisper'


async def test_translation_and_word_timestamps(admin: httpx.AsyncClient, alice_key: str, speaches: SpeechSim) -> None:
    translated = await admin.post('/v1/audio/translations', headers={'X-API-Key': alice_key},
                                  files=_file(_spoken('bonjour')), data={'model': STT})
    assert translated.status_code == 200 and translated.json()['text'] == 'bonjour'
    assert speaches.stats.translations == 1
    words = await admin.post('/v1/audio/transcriptions', headers={'X-API-Key': alice_key},
                             files=_file(_spoken('hello there')),
                             data={'model': STT, 'response_format': 'verbose_json',
                                   'timestamp_granularities[]': 'word'})
    assert [w['word'] for w in words.json()['words']] == ['hello', 'there'] and 'segments' not in words.json()


@pytest.mark.parametrize('flavor', ['vllm', 'speaches'])
async def test_a_streamed_transcript(app: FastAPI, admin: httpx.AsyncClient, alice_key: str, flavor: str) -> None:
    model = WHISPER if flavor == 'vllm' else STT
    async with SpeechSim(SpeechConfig(flavor=flavor)) as sim:
        await _register(admin, flavor, sim, 'vllm' if flavor == 'vllm' else 'stt')
        text = ' '.join(f'word{i}' for i in range(20))
        response = await admin.post('/v1/audio/transcriptions', headers={'X-API-Key': alice_key},
                                    files=_file(_spoken(text)), data={'model': model, 'stream': 'true'})
    assert response.status_code == 200 and response.headers['content-type'].startswith('text/event-stream')
    events = [orjson.loads(line[6:]) for line in response.text.splitlines() if line.startswith('data: ')]
    deltas = [e['delta'] for e in events if e['type'] == 'transcript.text.delta']
    assert len(deltas) == 3 and ''.join(deltas).split() == text.split()
    assert events[-1]['type'] == 'transcript.text.done' and events[-1]['text'] == text
    row = await audit_row(app, admin, response.headers['x-request-id'])
    assert row['stream'] and row['status'] == 'completed' and row['audio_seconds'] == 1.5


async def test_bad_input_is_refused_naming_the_parameter_and_nothing_reaches_an_engine(
        admin: httpx.AsyncClient, alice_key: str, speaches: SpeechSim, whisper: SpeechSim) -> None:
    alice = {'X-API-Key': alice_key}
    speech = {'model': TTS, 'input': 'hi', 'voice': 'af_heart'}
    for change, param in (({'input': ''}, 'input'), ({'input': 'x' * 4097}, 'input'), ({'voice': 'hal9000'}, 'voice'),
                          ({'response_format': 'ogg'}, 'response_format'), ({'speed': 9}, 'speed'),
                          ({'stream_format': 'ws'}, 'stream_format'), ({'model': STT}, 'model')):
        refused = await admin.post('/v1/audio/speech', headers=alice, json={**speech, **change})
        assert refused.status_code == 400, (change, refused.text)
        assert refused.json()['error']['param'] == param, refused.text
        assert refused.json()['error']['type'] == 'invalid_request_error'
    assert (await admin.post('/v1/audio/speech', headers=alice, json={**speech, 'model': 'nope'})).status_code == 404

    def listen(data: bytes, **fields: str) -> httpx.Request:
        return admin.build_request('POST', '/v1/audio/transcriptions', headers=alice, files=_file(data, 'a.mp3'),
                                   data={'model': WHISPER, **fields})

    cases = ((listen(b'%PDF-1.7 not audio at all'), 400, 'file'),  # named .mp3, but its bytes say PDF
             (listen(_spoken('x'), model=TTS), 400, 'model'),  # a text-to-speech model asked to listen
             (listen(_spoken('x'), response_format='docx'), 400, 'response_format'),
             (listen(_spoken('x'), timestamp_granularities='word'), 400, 'timestamp_granularities[]'),
             (listen(b'RIFF\x00\x00\x00\x00WAVEfmt ' + bytes(300_000)), 413, 'file'))
    for request, status, param in cases:
        refused = await admin.send(request)
        assert refused.status_code == status and refused.json()['error']['param'] == param, refused.text
    no_file = await admin.post('/v1/audio/transcriptions', headers=alice, data={'model': WHISPER})
    assert no_file.status_code == 400 and no_file.json()['error']['param'] == 'file'
    chat = await admin.post('/v1/chat/completions', headers=alice, json={
        'model': TTS, 'messages': [{'role': 'user', 'content': 'hi'}]})
    assert chat.status_code == 400 and chat.json()['error']['param'] == 'model'
    assert speaches.stats.requests == 0 and whisper.stats.requests == 0


async def test_a_file_past_the_limit_is_refused_before_it_is_read_whole(
        admin: httpx.AsyncClient, alice_key: str, whisper: SpeechSim) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse it by
        nonlocal sent
        head = (b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n' + WHISPER.encode()
                + b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\0\0\0\0WAVE')
        yield head
        sent += len(head)
        for _ in range(1000):  # 16 MB offered; the limit is 200 kB
            yield bytes(16384)
            sent += 16384

    refused = await admin.post('/v1/audio/transcriptions', content=body(), headers={
        'X-API-Key': alice_key, 'Content-Type': 'multipart/form-data; boundary=b'})
    assert refused.status_code == 413 and refused.json()['error']['param'] == 'file'
    assert sent < 1_000_000 and whisper.stats.requests == 0


async def test_failover_between_two_speech_backends(app: FastAPI, admin: httpx.AsyncClient, alice_key: str) -> None:
    async with SpeechSim(SpeechConfig(fault='error_500')) as broken, SpeechSim(SpeechConfig(fault='drop')) as gone, \
            SpeechSim(SpeechConfig()) as working:
        await _register(admin, 'a-broken', broken, 'tts')
        await _register(admin, 'b-gone', gone, 'tts')
        await _register(admin, 'c-working', working, 'tts')
        for sim in (broken, gone):
            sim.config.fault = sim.config.fault  # registered healthy (probes are never faulted); answers fail
        served = set()
        for _ in range(3):
            response = await admin.post('/v1/audio/speech', headers={'X-API-Key': alice_key}, json={
                'model': TTS, 'input': 'Failover works.', 'voice': 'af_sky', 'response_format': 'wav'})
            assert response.status_code == 200 and response.content[:4] == b'RIFF', response.text
            served.add(response.headers['x-mindrouter-backend'])
            listened = await admin.post('/v1/audio/transcriptions', headers={'X-API-Key': alice_key},
                                        files=_file(response.content), data={'model': STT})
            assert listened.json()['text'] == 'Failover works.'
        assert served == {'c-working'} and broken.stats.requests >= 1 and gone.stats.requests >= 1


async def test_speech_budgets_answer_429_with_retry_after(app: FastAPI, admin: httpx.AsyncClient, alice_key: str,
                                                          speaches: SpeechSim) -> None:
    limits = await admin.put('/api/admin/users/alice/quota', json={'tts_char_budget': 20, 'stt_seconds_budget': 2})
    assert limits.status_code == 200 and limits.json()['effective']['tts_char_budget'] == 20
    app.state.authenticator.invalidate()
    alice = {'X-API-Key': alice_key}
    speech = {'model': TTS, 'input': 'twenty-five characters!!', 'voice': 'af_heart', 'response_format': 'wav'}
    assert (await admin.post('/v1/audio/speech', headers=alice, json=speech)).status_code == 200
    over = await admin.post('/v1/audio/speech', headers=alice, json=speech)
    assert over.status_code == 429 and int(over.headers['retry-after']) > 0, over.text
    assert over.json()['error']['code'] == 'speech_budget_exhausted'
    heard = await admin.post('/v1/audio/transcriptions', headers=alice, files=_file(wav(tone(seconds=2.5), text='x')),
                             data={'model': STT})
    assert heard.status_code == 200
    refused = await admin.post('/v1/audio/transcriptions', headers=alice, files=_file(_spoken('y')),
                               data={'model': STT})
    assert refused.status_code == 429 and 'seconds of audio' in refused.json()['error']['message']
    row = await audit_row(app, admin, refused.headers['x-request-id'])
    assert (row['status'], row['http_status']) == ('failed', 429)
    mine = (await admin.get('/api/account/usage', headers=alice)).json()
    assert (mine['used_speech_chars'], mine['used_audio_seconds']) == (24, 2.5)
    assert mine['limits']['tts_char_budget'] == 20


async def test_past_its_speech_budget_a_user_asks_for_more_and_an_approval_lets_it_speak_again(
        admin: httpx.AsyncClient, alice_key: str, speaches: SpeechSim) -> None:
    assert (await admin.put('/api/admin/users/alice/quota', json={'tts_char_budget': 20})).status_code == 200
    alice = {'X-API-Key': alice_key}
    speech = {'model': TTS, 'input': 'twenty-five characters!!', 'voice': 'af_heart', 'response_format': 'wav'}
    assert (await admin.post('/v1/audio/speech', headers=alice, json=speech)).status_code == 200
    assert (await admin.post('/v1/audio/speech', headers=alice, json=speech)).status_code == 429

    reason = 'reading my thesis aloud to proofread it'
    nothing = await admin.post('/api/account/quota-requests', headers=alice,
                               json={'requested_tts_chars': 0, 'justification': reason})
    assert nothing.status_code == 400 and nothing.json()['error']['param'] == 'requested_tts_chars', nothing.text
    filed = await admin.post('/api/account/quota-requests', headers=alice, json={
        'requested_tts_chars': 100_000, 'requested_stt_seconds': 600, 'justification': reason})
    assert filed.status_code == 201, filed.text
    assert (filed.json()['requested_tts_chars'], filed.json()['requested_stt_seconds']) == (100_000, 600)
    [pending] = (await admin.get('/api/admin/quota-requests', params={'status': 'pending'})).json()
    assert (pending['requested_tts_chars'], pending['requested_tokens']) == (100_000, None)

    approved = await admin.post(f'/api/admin/quota-requests/{pending["id"]}/approve',
                                json={'tts_char_budget': 5_000, 'note': 'five thousand for now'})
    assert approved.status_code == 200 and approved.json()['status'] == 'approved', approved.text
    effective = (await admin.get('/api/admin/users/alice/quota')).json()['effective']
    assert (effective['tts_char_budget'], effective['stt_seconds_budget']) == (5_000, 600)  # as granted, as asked
    assert effective['token_budget'] == 2_000_000  # not asked for: the role's
    assert (await admin.post('/v1/audio/speech', headers=alice, json=speech)).status_code == 200  # at once


async def test_audio_is_kept_only_when_an_admin_turns_capture_on(
        app: FastAPI, admin: httpx.AsyncClient, alice_key: str, speaches: SpeechSim, isolated_settings: Path) -> None:
    alice = {'X-API-Key': alice_key}
    speech = {'model': TTS, 'input': 'Keep me.', 'voice': 'af_heart', 'response_format': 'wav'}
    first = await admin.post('/v1/audio/speech', headers=alice, json=speech)
    assert (await audit_row(app, admin, first.headers['x-request-id']))['audio_path'] is None
    assert (await admin.put('/api/admin/settings/audit_log_audio', json={'value': True})).status_code == 200
    kept = await admin.post('/v1/audio/speech', headers=alice, json=speech)
    heard = await admin.post('/v1/audio/transcriptions', headers=alice, files=_file(kept.content),
                             data={'model': STT})
    root = app.state.audio_store.root.parent
    for response, data in ((kept, kept.content), (heard, kept.content)):
        row = await audit_row(app, admin, response.headers['x-request-id'])
        assert row['audio_path'].startswith('audio/') and (root / row['audio_path']).read_bytes() == data
    assert (await app.state.audio_store.prune(0, today=__import__('datetime').date(2100, 1, 1))) == 1
    assert not any((root / 'audio').iterdir())


async def test_erasing_a_users_content_deletes_their_kept_audio(
        app: FastAPI, admin: httpx.AsyncClient, alice_key: str, speaches: SpeechSim) -> None:
    assert (await admin.put('/api/admin/settings/audit_log_audio', json={'value': True})).status_code == 200
    kept = await admin.post('/v1/audio/speech', headers={'X-API-Key': alice_key},
                            json={'model': TTS, 'input': 'Forget me.', 'voice': 'af_heart', 'response_format': 'wav'})
    mine = await admin.post('/v1/audio/speech', json={'model': TTS, 'input': 'Keep mine.', 'voice': 'af_heart',
                                                      'response_format': 'wav'})
    root = app.state.audio_store.root.parent
    stored = {r.headers['x-request-id']: (await audit_row(app, admin, r.headers['x-request-id']))['audio_path']
              for r in (kept, mine)}
    assert all((root / path).is_file() for path in stored.values())

    exported = await admin.get('/api/admin/users/alice/export')
    archive = zipfile.ZipFile(io.BytesIO(exported.content))
    assert archive.read(stored[kept.headers['x-request-id']]) == kept.content  # their voice, in their export
    assert stored[mine.headers['x-request-id']] not in archive.namelist()
    erased = await admin.delete('/api/admin/users/alice/content')
    assert erased.status_code == 200 and erased.json()['audio_deleted'] == 1
    alices = await audit_row(app, admin, kept.headers['x-request-id'])
    assert alices['audio_path'] is None and not (root / stored[kept.headers['x-request-id']]).exists()
    assert (root / stored[mine.headers['x-request-id']]).is_file()  # the admin's own stays


def test_wav_helpers_round_trip() -> None:
    data = wav(tone(seconds=0.5), text='comment')
    assert struct.unpack_from('<I', data, 4)[0] == len(data) - 8


async def test_an_engine_failing_mid_audio_cuts_the_connection_and_is_audited(
        app: FastAPI, admin: httpx.AsyncClient, alice_key: str) -> None:
    async with SpeechSim(SpeechConfig(fault='cut', chunk_bytes=256)) as sim:
        await _register(admin, 'cutter', sim, 'tts')
        # No error frame in audio: a real server cuts the connection; in-process the ASGI transport hands the
        # relay's exception to the caller instead.
        with pytest.raises((httpx.HTTPError, StreamBroken)):
            await admin.post('/v1/audio/speech', headers={'X-API-Key': alice_key}, json={
                'model': TTS, 'input': 'Cut me off.', 'voice': 'af_heart', 'response_format': 'wav'})
        events = await admin.post('/v1/audio/speech', headers={'X-API-Key': alice_key}, json={
            'model': TTS, 'input': 'Cut me off.', 'voice': 'af_heart', 'response_format': 'wav',
            'stream_format': 'sse'})
    last = orjson.loads(events.text.strip().splitlines()[-1][6:])
    assert last['type'] == 'error' and 'mid-audio' in last['error']['message']
    row = await audit_row(app, admin, events.headers['x-request-id'])
    assert (row['status'], row['http_status'], row['speech_chars']) == ('failed', 502, 0)
    assert app.state.ledger.user_in_flight(row['user_id']) == 0
