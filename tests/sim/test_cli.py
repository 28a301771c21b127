"""`python -m sim` as a real process, the way benchmarks and end-to-end tests run the fakes."""

from __future__ import annotations

import re
import select
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def test_ollama_process_answers_and_stops_on_sigterm() -> None:
    cmd = [sys.executable, '-m', 'sim', 'ollama', '--port', '0', '--tokens', '3', '--models', 'llama3.2,phi4:14b']
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, 'the fake did not start within 20 s'
        line = proc.stdout.readline()
        match = re.search(r'listening on (http://127\.0\.0\.1:(\d+))', line)
        assert match, line
        url = match.group(1)
        assert httpx.get(f'{url}/api/version').json() == {'version': '0.12.0'}
        tags = httpx.get(f'{url}/api/tags').json()['models']
        assert [m['name'] for m in tags] == ['llama3.2:latest', 'phi4:14b']
        assert httpx.get(f'{url}/_sim/config').json()['tokens'] == 3
        proc.terminate()
        assert proc.wait(10) == 0
        assert 'Traceback' not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_bad_knob_exits_2() -> None:
    cmd = [sys.executable, '-m', 'sim', 'vllm', '--port', '0', '--tokens', '-1']
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and 'tokens must be >= 0' in done.stderr
