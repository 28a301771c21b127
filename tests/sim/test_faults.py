"""Fault knobs, admission (503 when the queue is full), client disconnects and the /_sim control routes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from sim import SimConfig, SimServer, expected_text

CHAT = {'model': 'llama3.2', 'messages': [{'role': 'user', 'content': 'hello'}], 'stream': False}
VLLM_CHAT = {'messages': [{'role': 'user', 'content': 'hello'}]}


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait until `condition()` holds (the server notices a disconnect on its next loop turn)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError('condition not reached')
        await asyncio.sleep(0.01)


async def test_refuse(ollama: SimServer) -> None:
    ollama.config.fault = 'refuse'
    async with httpx.AsyncClient(base_url=ollama.url) as http:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await http.post('/api/chat', json=CHAT)
        # Only inference routes fail by default: a health check still passes.
        assert (await http.get('/api/tags')).status_code == 200
    assert ollama.stats.faults == 1


async def test_fault_rate_strikes_a_share_of_the_requests(ollama: SimServer) -> None:
    ollama.config.update({'fault': 'error_500', 'fault_rate': 0.25})
    async with httpx.AsyncClient(base_url=ollama.url) as http:
        statuses = [(await http.post('/api/chat', json=CHAT)).status_code for _ in range(200)]
    assert 25 <= statuses.count(500) <= 75 and statuses.count(200) == 200 - statuses.count(500)
    assert ollama.stats.faults == statuses.count(500)
    with pytest.raises(ValueError, match='fault_rate'):
        ollama.config.update({'fault_rate': 1.5})


async def test_a_share_of_the_streams_die_mid_answer(ollama: SimServer) -> None:
    ollama.config.update({'fault': 'die_mid_stream', 'fault_rate': 0.5, 'fault_after_tokens': 2})
    cut = 0
    async with httpx.AsyncClient(base_url=ollama.url) as http:
        for _ in range(40):
            lines: list[str] = []
            try:
                async with http.stream('POST', '/api/chat', json={**CHAT, 'stream': True}) as response:
                    lines = [line async for line in response.aiter_lines() if line]
            except (httpx.RemoteProtocolError, httpx.ReadError):
                cut += 1
                continue
            assert json.loads(lines[-1])['done'] is True
    assert 8 <= cut <= 32


async def test_error_500(ollama: SimServer, vllm: SimServer) -> None:
    ollama.config.fault = 'error_500'
    vllm.config.fault = 'error_500'
    vllm.config.fault_scope = 'all'
    async with httpx.AsyncClient() as http:
        r = await http.post(f'{ollama.url}/api/chat', json=CHAT)
        assert r.status_code == 500 and set(r.json()) == {'error'}
        r = await http.post(f'{vllm.url}/v1/chat/completions', json=VLLM_CHAT)
        assert r.status_code == 500
        assert r.json()['error']['type'] == 'InternalServerError' and r.json()['error']['code'] == 500
        assert (await http.get(f'{vllm.url}/health')).status_code == 500  # fault_scope 'all'
        assert (await http.get(f'{vllm.url}/_sim/stats')).status_code == 200  # never the control routes


async def test_hang(vllm: SimServer) -> None:
    vllm.config.fault = 'hang'
    async with httpx.AsyncClient(base_url=vllm.url, timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post('/v1/chat/completions', json=VLLM_CHAT)
    await eventually(lambda: vllm.stats.cancelled == 1)
    assert vllm.stats.in_flight == 0 and vllm.stats.faults == 1


@pytest.mark.parametrize('engine', ['ollama', 'vllm'])
async def test_die_mid_stream(engine: str) -> None:
    config = SimConfig(tokens=10, fault='die_mid_stream', fault_after_tokens=3)
    async with SimServer(engine, config) as sim, httpx.AsyncClient(base_url=sim.url) as http:  # type: ignore[arg-type]
        path, body = (
            ('/api/chat', {**CHAT, 'stream': True})
            if engine == 'ollama'
            else ('/v1/chat/completions', {**VLLM_CHAT, 'stream': True})
        )
        lines: list[str] = []
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream('POST', path, json=body) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line:
                        lines.append(line)
        if engine == 'ollama':
            assert len(lines) == 3 and not any(json.loads(line)['done'] for line in lines)
        else:
            assert len(lines) == 4 and 'data: [DONE]' not in lines  # the role chunk and 3 tokens
        assert sim.stats.faults == 1 and sim.stats.requests_served == 0 and sim.stats.in_flight == 0


async def test_queue_limit_503() -> None:
    config = SimConfig(max_concurrency=1, queue_limit=0, ttft_ms=300)
    async with SimServer('ollama', config) as sim, httpx.AsyncClient(base_url=sim.url) as http:
        first = asyncio.create_task(http.post('/api/chat', json=CHAT))
        await eventually(lambda: sim.stats.running == 1)
        r = await http.post('/api/chat', json=CHAT)
        assert r.status_code == 503
        assert r.json() == {'error': 'server busy, please try again.  maximum pending requests exceeded'}
        assert (await first).status_code == 200
        assert sim.stats.rejected == 1 and sim.stats.requests_served == 1


async def test_vllm_busy_envelope() -> None:
    config = SimConfig(max_concurrency=1, queue_limit=0, ttft_ms=300)
    async with SimServer('vllm', config) as sim, httpx.AsyncClient(base_url=sim.url) as http:
        first = asyncio.create_task(http.post('/v1/chat/completions', json={**VLLM_CHAT, 'stream': True}))
        await eventually(lambda: sim.stats.running == 1)
        r = await http.post('/v1/chat/completions', json={**VLLM_CHAT, 'stream': True})
        assert r.status_code == 503 and r.json()['error']['code'] == 503  # a plain response, not a stream
        assert (await first).status_code == 200


async def test_queueing_respects_max_concurrency() -> None:
    config = SimConfig(max_concurrency=2, ttft_ms=60, tokens=3)
    async with SimServer('vllm', config) as sim, httpx.AsyncClient(base_url=sim.url) as http:
        tasks = [asyncio.create_task(http.post('/v1/chat/completions', json=VLLM_CHAT)) for _ in range(5)]
        await eventually(lambda: sim.stats.waiting == 3)
        text = (await http.get('/metrics')).text
        assert 'vllm:num_requests_running{model_name="meta-llama/Llama-3.2-1B-Instruct",engine="0"} 2.0' in text
        assert 'vllm:num_requests_waiting{model_name="meta-llama/Llama-3.2-1B-Instruct",engine="0"} 3.0' in text
        responses = await asyncio.gather(*tasks)
        assert all(r.status_code == 200 for r in responses)
        assert sim.stats.peak_running == 2 and sim.stats.requests_served == 5 and sim.stats.waiting == 0


async def test_raising_max_concurrency_lets_waiters_in() -> None:
    config = SimConfig(max_concurrency=1, ttft_ms=200)
    async with SimServer('ollama', config) as sim, httpx.AsyncClient(base_url=sim.url) as http:
        tasks = [asyncio.create_task(http.post('/api/chat', json=CHAT)) for _ in range(3)]
        await eventually(lambda: sim.stats.waiting == 2)
        r = await http.post('/_sim/config', json={'max_concurrency': 3})
        assert r.json()['max_concurrency'] == 3
        assert sim.stats.running == 3 and sim.stats.waiting == 0
        await asyncio.gather(*tasks)


@pytest.mark.parametrize('stream', [True, False])
async def test_client_disconnect_cancels_generation(stream: bool) -> None:
    config = SimConfig(tokens=100, token_delay_ms=20, max_concurrency=1)
    async with SimServer('ollama', config) as sim:
        async with httpx.AsyncClient(base_url=sim.url, timeout=0.15) as http:
            if stream:
                async with http.stream('POST', '/api/chat', json={**CHAT, 'stream': True}) as r:
                    lines = r.aiter_lines()
                    assert json.loads(await anext(lines))['done'] is False
                    assert sim.stats.running == 1
            else:
                with pytest.raises(httpx.ReadTimeout):
                    await http.post('/api/chat', json=CHAT)
        await eventually(lambda: sim.stats.cancelled == 1)
        assert sim.stats.in_flight == 0 and sim.stats.running == 0 and sim.stats.requests_served == 0
        # The freed slot serves the next request at once.
        sim.config.token_delay_ms = 0
        async with httpx.AsyncClient(base_url=sim.url) as http:
            assert (await http.post('/api/chat', json=CHAT)).status_code == 200


async def test_control_routes(vllm: SimServer) -> None:
    async with httpx.AsyncClient(base_url=vllm.url) as http:
        config = (await http.get('/_sim/config')).json()
        assert config['models'][0] == 'meta-llama/Llama-3.2-1B-Instruct' and config['tokens'] == 6
        r = await http.post('/_sim/config', json={'tokens': 2, 'fault': None, 'ttft_ms': 1})
        assert r.status_code == 200 and r.json()['tokens'] == 2
        answer = (await http.post('/v1/chat/completions', json=VLLM_CHAT)).json()
        assert answer['choices'][0]['message']['content'] == expected_text('hello', 2)
        for bad in ({'nope': 1}, {'fault': 'explode'}, {'tokens': 'many'}, {'ttft_ms': -1}):
            r = await http.post('/_sim/config', json=bad)
            assert r.status_code == 400 and 'error' in r.json()
        assert vllm.config.tokens == 2  # a rejected update changes nothing
        stats = (await http.get('/_sim/stats')).json()
        assert stats['requests_served'] == 1 and stats['in_flight'] == 0 and stats['peak_running'] == 1
        assert stats['per_model']['meta-llama/Llama-3.2-1B-Instruct']['generation_tokens'] == 2
        stats = (await http.post('/_sim/stats/reset')).json()
        assert stats['requests_served'] == 0 and stats['http_requests'] == 0


def test_config_validation() -> None:
    config = SimConfig()
    with pytest.raises(ValueError, match='unknown knob'):
        config.update({'speed': 3})
    config.update({'models': 'a,b', 'queue_limit': None, 'fault': 'hang'})
    assert config.models == ['a', 'b'] and config.fault == 'hang'
    resolved = SimConfig().resolved('ollama')
    assert resolved.models == ['llama3.2:latest', 'qwen3:0.6b', 'nomic-embed-text:latest']
    assert resolved.max_concurrency == 4 and SimConfig().resolved('vllm').max_concurrency == 256
