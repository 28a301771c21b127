"""Benchmark: what the gateway adds to speech requests, as it reports it (X-MindRouter-Overhead-Ms: its own time,
excluding the queue and the engine), and the time to the first audio byte through the gateway vs the engine alone.

    python -m bench.speech [--requests N]

The API app runs in-process (its lifespan, a migrated SQLite database in a temporary folder) in front of the fake
speech server (sim/speech.py, a tone so that espeak-ng's own time does not dominate). Text to speech: a 400-character
input, WAV, 4 kB chunks. Speech to text: a 10-second WAV (441 kB) uploaded as multipart. Prints a markdown table and
writes bench/results/speech.json. A benchmark, not a test: it never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

RESULTS = Path(__file__).resolve().parent / 'results'
TEXT = ('The gateway relays this sentence to a speech server and the audio back to the client as it arrives. '
        * 4)[:400]


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {'p50': round(statistics.median(ordered), 3), 'p95': round(ordered[int(len(ordered) * 0.95) - 1], 3),
            'mean': round(statistics.fmean(ordered), 3)}


async def main(requests: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update({'DATA_DIR': tmp, 'LOG_LEVEL': 'warning', 'GC_FREEZE': 'false'})
        from app.factory import create_api_app
        from core import migrations
        from core.accounts import service as accounts
        from core.config import get_settings, reset_settings
        from core.db import get_database
        from sim.speech import SpeechConfig, SpeechSim
        from sim.speech_audio import tone, wav

        reset_settings()
        await asyncio.to_thread(migrations.upgrade, get_settings().resolved_database_url)
        async with get_database().session() as session:
            await accounts.create_user(session, username='bench', role='admin')
            _, key = await accounts.create_api_key(session, username='bench')
        app = create_api_app()
        clip = wav(tone(seconds=10), text='ten seconds of tone')
        body = {'model': 'speaches-ai/Kokoro-82M-v1.0-ONNX', 'input': TEXT, 'voice': 'af_heart',
                'response_format': 'wav'}
        async with SpeechSim(SpeechConfig(espeak=False)) as sim, LifespanManager(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app), base_url='http://bench', headers={'X-API-Key': key}) as client, \
                httpx.AsyncClient(base_url=sim.url) as direct:
            registered = await client.post('/api/admin/backends/register', json={
                'name': 'speaches', 'url': sim.url, 'engine': 'tts', 'max_concurrent': 8})
            registered.raise_for_status()
            await client.put('/api/admin/users/bench/quota', json={'rpm_limit': 0, 'max_concurrent': 0})
            app.state.authenticator.invalidate()
            speak_overhead, listen_overhead, via_gateway, alone = [], [], [], []
            for _ in range(requests):
                started = time.perf_counter()
                async with direct.stream('POST', '/v1/audio/speech', json=body) as response:
                    async for _chunk in response.aiter_raw():
                        alone.append((time.perf_counter() - started) * 1000)
                        break
                started = time.perf_counter()
                response = await client.post('/v1/audio/speech', json=body)
                via_gateway.append((time.perf_counter() - started) * 1000)  # in-process: the whole answer
                speak_overhead.append(float(response.headers['x-mindrouter-overhead-ms']))
                heard = await client.post('/v1/audio/transcriptions', files={'file': ('clip.wav', clip)},
                                          data={'model': 'Systran/faster-whisper-small'})
                listen_overhead.append(float(heard.headers['x-mindrouter-overhead-ms']))
    return {'requests': requests, 'python': platform.python_version(), 'machine': platform.machine(),
            'tts_overhead_ms': _summary(speak_overhead), 'stt_overhead_ms': _summary(listen_overhead),
            'tts_whole_answer_via_gateway_ms': _summary(via_gateway), 'tts_first_byte_engine_alone_ms': _summary(alone)}


if __name__ == '__main__':
    parser = argparse.ArgumentParser()
    parser.add_argument('--requests', type=int, default=200)
    results = asyncio.run(main(parser.parse_args().requests))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / 'speech.json').write_text(json.dumps(results, indent=2) + '\n')
    print('| figure | p50 ms | p95 ms | mean ms |\n|---|---|---|---|')
    for name in ('tts_overhead_ms', 'stt_overhead_ms', 'tts_whole_answer_via_gateway_ms',
                 'tts_first_byte_engine_alone_ms'):
        figures = results[name]
        assert isinstance(figures, dict)
        print(f'| {name} | {figures["p50"]} | {figures["p95"]} | {figures["mean"]} |')
