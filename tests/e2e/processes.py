"""Real processes for end-to-end tests: free ports, a server that must become healthy, clean shutdown."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(command: list[str], env: dict[str, str], *, log_path: Path, ready_url: str,
            ready_timeout: float = 30.0) -> Iterator[None]:
    """Run a server process until the block ends (SIGTERM, so it shuts down cleanly); output goes to a file
    because an unread pipe would block it. `ready_timeout`: seconds it may take to answer `ready_url`."""
    with log_path.open('w') as log, subprocess.Popen(command, env=env, cwd=REPO, stdout=log,
                                                     stderr=subprocess.STDOUT) as process:
        try:
            _wait_until_ready(ready_url, process, log_path, ready_timeout)
            yield
        finally:
            process.terminate()
            process.wait(timeout=20)


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f'{url}: process exited with {process.returncode}:\n{log_path.read_text()}')
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f'{url} did not come up:\n{log_path.read_text()}')
