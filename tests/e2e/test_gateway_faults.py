"""What happens when engines fail or clients leave, through a real `mindrouter serve` process:
failover before the first byte, a protocol-correct error when an engine dies mid-answer (never a clean
ending), and a client that disconnects freeing its backend slot at once."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest

from sim.text import expected_text
from tests.e2e.processes import free_port, running

BIN = Path(sys.executable).parent
MODEL = 'llama3.2'


@dataclass
class FaultyCluster:
    url: str
    key: str
    admin_key: str
    sims: dict[str, str]  # name -> url
    data_dir: Path

    def configure(self, sim: str, **knobs: object) -> None:
        httpx.post(f'{self.sims[sim]}/_sim/config', json=knobs).raise_for_status()

    def stats(self, sim: str) -> dict[str, int]:
        stats: dict[str, int] = httpx.get(f'{self.sims[sim]}/_sim/stats').json()
        return stats

    def wait_for_closed_breakers(self) -> None:
        """A failed request opens the backend's circuit breaker until its immediate re-check passes."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            backends = httpx.get(f'{self.url}/api/admin/backends', headers={'X-API-Key': self.admin_key}).json()
            if all(b['circuit_open_s'] == 0 for b in backends):
                return
            time.sleep(0.05)
        raise AssertionError('circuit breakers stayed open')

    def in_flight(self) -> dict[str, int]:
        backends = httpx.get(f'{self.url}/api/admin/backends', headers={'X-API-Key': self.admin_key}).json()
        return {b['name']: b['in_flight'] for b in backends}


@pytest.fixture(scope='module')
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyCluster]:
    root = tmp_path_factory.mktemp('faults')
    env = {**os.environ, 'DATA_DIR': str(root / 'data'), 'LOG_LEVEL': 'warning', 'AUDIT_FLUSH_INTERVAL': '0.2',
           'BACKEND_CHECK_INTERVAL': '3600'}  # health checks would mark a faulty sim unhealthy mid-test
    env.pop('DATABASE_URL', None)
    with ExitStack() as stack:
        sims = {}
        for name in ('first', 'second'):
            port = free_port()
            sims[name] = f'http://127.0.0.1:{port}'
            stack.enter_context(running([sys.executable, '-m', 'sim', 'ollama', '--port', str(port)], env,
                                        log_path=root / f'{name}.log', ready_url=f'{sims[name]}/_sim/config'))
        for args in (('migrate',), ('create-user', 'root', '--role', 'admin'), ('create-user', 'bob', '--role',
                                                                                 'student')):
            subprocess.run([str(BIN / 'mindrouter'), *args], env=env, check=True, capture_output=True)
        admin_key = _key(env, 'root')
        key = _key(env, 'bob')
        port = free_port()
        url = f'http://127.0.0.1:{port}'
        stack.enter_context(running([str(BIN / 'mindrouter'), 'serve', '--no-ui', '--port', str(port)], env,
                                    log_path=root / 'gateway.log', ready_url=f'{url}/healthz'))
        for name, sim_url in sims.items():
            httpx.post(f'{url}/api/admin/backends/register', headers={'X-API-Key': admin_key},
                       json={'name': name, 'url': sim_url, 'engine': 'ollama', 'max_concurrent': 2}
                       ).raise_for_status()
        yield FaultyCluster(url, key, admin_key, sims, root / 'data')


@pytest.fixture(autouse=True)
def healthy_again(cluster: FaultyCluster) -> Iterator[None]:
    yield
    for sim in cluster.sims:
        cluster.configure(sim, fault=None, token_delay_ms=0, ttft_ms=0)


def _key(env: dict[str, str], user: str) -> str:
    return subprocess.run([str(BIN / 'mindrouter'), 'create-key', user], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.parametrize('fault', ['refuse', 'error_500'])
def test_a_backend_failing_before_the_first_byte_is_replaced_by_another(cluster: FaultyCluster, fault: str) -> None:
    cluster.configure('first', fault=fault)
    cluster.configure('second', fault=fault)
    with openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key, max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model=MODEL, messages=[{'role': 'user', 'content': 'hi'}])
        assert failed.value.status_code == 502  # both tried, both failed: a clear error in the dialect

        cluster.configure('second', fault=None)
        cluster.wait_for_closed_breakers()
        for _ in range(4):  # whichever backend is picked first, the answer comes from the healthy one
            raw = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{'role': 'user', 'content': 'hi'}], max_tokens=2)
            assert raw.headers['x-mindrouter-backend'] == 'second'
            assert raw.parse().choices[0].message.content == expected_text('hi', 2)
        stream = client.chat.completions.create(model=MODEL, messages=[{'role': 'user', 'content': 'hi'}],
                                                max_tokens=2, stream=True)
        assert ''.join(c.choices[0].delta.content or '' for c in stream if c.choices) == expected_text('hi', 2)
    assert set(cluster.in_flight().values()) == {0}


def test_an_engine_dying_mid_answer_ends_every_dialect_with_an_error_never_a_clean_ending(
        cluster: FaultyCluster) -> None:
    for sim in cluster.sims:
        cluster.configure(sim, fault='die_mid_stream', fault_after_tokens=3)
    messages = [{'role': 'user', 'content': 'tell me more'}]

    with openai.OpenAI(base_url=f'{cluster.url}/v1', api_key=cluster.key, max_retries=0) as client:
        received = []
        with pytest.raises(openai.APIError, match=r'mid-answer|ended the stream|failed'):
            chunks = client.chat.completions.create(model=MODEL, messages=messages, stream=True)  # type: ignore[arg-type]
            received.extend(chunks)
        assert ''.join(c.choices[0].delta.content or '' for c in received if c.choices) == expected_text(
            'tell me more', 3)

    with anthropic.Anthropic(base_url=f'{cluster.url}/anthropic', api_key=cluster.key, max_retries=0) as client, \
            pytest.raises(anthropic.APIError), \
            client.messages.stream(model=MODEL, max_tokens=100, messages=messages) as events:  # type: ignore[arg-type]
        for _ in events:
            pass

    with ollama.Client(host=cluster.url, headers={'X-API-Key': cluster.key}) as client, \
            pytest.raises(ollama.ResponseError):
        for _ in client.chat(model=MODEL, messages=messages, stream=True):
            pass

    raw = httpx.post(f'{cluster.url}/v1/chat/completions', headers={'X-API-Key': cluster.key},
                     json={'model': MODEL, 'messages': messages, 'stream': True}).text
    assert '"error"' in raw and '[DONE]' not in raw
    assert set(cluster.in_flight().values()) == {0}


def test_a_client_that_disconnects_frees_its_slot_and_stops_the_engine(cluster: FaultyCluster) -> None:
    for sim in cluster.sims:
        cluster.configure(sim, token_delay_ms=200, tokens=100)  # a 20 s answer
    cancelled_before = sum(cluster.stats(sim)['cancelled'] for sim in cluster.sims)
    host, port = cluster.url.removeprefix('http://').split(':')
    body = (b'{"model": "llama3.2", "stream": true, "messages": [{"role": "user", "content": "long story"}]}')
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                     b'X-API-Key: ' + cluster.key.encode() + b'\r\nContent-Length: ' + str(len(body)).encode()
                     + b'\r\n\r\n' + body)
        assert b'200 OK' in conn.recv(4096)
        assert sum(cluster.in_flight().values()) == 1
    left_at = time.monotonic()

    while sum(cluster.in_flight().values()) and time.monotonic() - left_at < 2:
        time.sleep(0.02)
    assert sum(cluster.in_flight().values()) == 0
    freed_after = time.monotonic() - left_at
    while sum(cluster.stats(s)['cancelled'] for s in cluster.sims) == cancelled_before:
        assert time.monotonic() - left_at < 2, 'the engine kept generating for a client that left'
        time.sleep(0.02)
    assert freed_after < 1.0


def test_audit_rows_record_failures_and_are_all_flushed(cluster: FaultyCluster) -> None:
    with sqlite3.connect(cluster.data_dir / 'mindrouter.db') as db:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            statuses = dict(db.execute('SELECT status, COUNT(*) FROM request_log GROUP BY status').fetchall())
            if statuses.get('cancelled') and statuses.get('failed') and statuses.get('completed'):
                break
            time.sleep(0.1)
        errors = [row[0] for row in db.execute("SELECT error FROM request_log WHERE status = 'failed'")]
    assert statuses.get('completed', 0) >= 4 and statuses.get('failed', 0) >= 2 and statuses.get('cancelled') == 1
    assert all(errors)
