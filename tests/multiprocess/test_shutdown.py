"""SIGTERM to a replica (`serve --no-ui --workers 2`) while it streams in three dialects: it stops accepting, the
stream that ends within SHUTDOWN_GRACE_SECONDS ends whole, the others end with their dialect's error event when the
grace is over, the process exits, and every one of them has its audit row."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from app.shutdown import SHUTDOWN_MESSAGE
from tests.e2e.processes import wait_until_ready
from tests.multiprocess.conftest import GRACE, MODEL, STARTUP, Fleet, until

pytestmark = pytest.mark.slow  # real processes: a minute or more on a busy host

MESSAGES = [{'role': 'user', 'content': 'a long answer please'}]
CALLS: dict[str, tuple[str, dict[str, Any]]] = {  # 50 ms a token: 20 s answers, and a 2 s one
    'openai': ('/v1/chat/completions', {'model': MODEL, 'messages': MESSAGES, 'stream': True}),
    'anthropic': ('/anthropic/v1/messages', {'model': MODEL, 'messages': MESSAGES, 'stream': True,
                                              'max_tokens': 1000}),
    'ollama': ('/api/chat', {'model': MODEL, 'messages': MESSAGES, 'stream': True}),
    'short': ('/v1/chat/completions', {'model': MODEL, 'messages': MESSAGES, 'stream': True, 'max_tokens': 40}),
}


def serves(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:  # refused, or accepted by the listening socket's backlog and never answered
        return False
    return True


def test_sigterm_lets_streams_finish_within_the_grace_then_ends_them_in_their_dialect(fleet: Fleet) -> None:
    httpx.post(f'{fleet.sims["a"]}/_sim/config', json={'token_delay_ms': 50, 'tokens': 400}).raise_for_status()
    url, process, stack = fleet.serve('replica-3')
    with stack:
        wait_until_ready(f'{url}/healthz', process, fleet.root / 'replica-3.log', STARTUP)
        until(lambda: len(fleet.workers()) == 6, within=STARTUP, what="the third replica's workers admitting")
        time.sleep(1)  # its registry has the backend
        answers: dict[str, tuple[httpx.Response, str, float]] = {}

        def call(name: str) -> None:
            path, body = CALLS[name]
            with httpx.stream('POST', f'{url}{path}', json=body, headers={'X-API-Key': fleet.keys['alice']},
                              timeout=60) as response:
                text = ''.join(response.iter_text())
            answers[name] = (response, text, time.monotonic())

        threads = [threading.Thread(target=call, args=(name,), daemon=True) for name in CALLS]
        for thread in threads:
            thread.start()
        until(lambda: sum(fleet.leases_by_pid().values()) == len(CALLS), within=30, every=0.05,
              what='all four streams running')
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # uvicorn's supervisor looks at its signals every 0.5 s and pings each worker before it passes SIGTERM on:
        # under load the workers may serve a little longer than that, but soon no new connection is served
        until(lambda: not serves(f'{url}/healthz'), within=GRACE, what='the replica refusing new connections')
        for thread in threads:
            thread.join(timeout=GRACE + 30)
        assert process.wait(timeout=GRACE + 30) == 0

    _, text, _ = answers['short']
    assert text.rstrip().endswith('data: [DONE]')  # finished within the grace, whole
    for name in ('openai', 'anthropic', 'ollama'):
        assert GRACE - 0.5 <= answers[name][2] - signalled <= GRACE + 15, name  # ended at the grace, not at 20 s
    openai = [json.loads(line[6:]) for line in answers['openai'][1].splitlines() if line.startswith('data: {')]
    assert openai[-1]['error']['message'] == SHUTDOWN_MESSAGE
    event = answers['anthropic'][1].strip().split('\n\n')[-1].splitlines()
    assert event[0] == 'event: error' and json.loads(event[1][6:])['error']['message'] == SHUTDOWN_MESSAGE
    assert json.loads(answers['ollama'][1].splitlines()[-1]) == {'error': SHUTDOWN_MESSAGE}

    ids = {name: answer.headers['x-request-id'] for name, (answer, _, _) in answers.items()}
    rows = {str(request_id): str(status) for request_id, status in fleet.mariadb.query(
        'SELECT request_id, status FROM request_log WHERE request_id IN (%s, %s, %s, %s)', *ids.values())}
    assert {name: rows.get(request_id) for name, request_id in ids.items()} == {
        'openai': 'failed', 'anthropic': 'failed', 'ollama': 'failed', 'short': 'completed'}  # flushed at exit
    assert fleet.counted() == {'backends': {}, 'users': {}}  # the stopped workers gave their slots back
