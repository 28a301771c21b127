"""Real processes for end-to-end tests: free ports, a server that must become healthy, clean shutdown."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port free now, for a server started later, chosen below the kernel's ephemeral range: a port the kernel
    hands out for `bind(0)` could be given again, meanwhile, to a socket bound to port 0 (a test's simulated
    engine, the demo's own), and the server would then fail to bind while the test talked to the wrong one."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(10_000, low)
        with socket.socket() as sock:
            try:
                sock.bind(('127.0.0.1', port))
            except OSError:
                continue
            return port
    raise RuntimeError(f'no free port found below {low}')


def _ephemeral_low() -> int:
    try:
        low = int(Path('/proc/sys/net/ipv4/ip_local_port_range').read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return max(low, 12_000)


@contextmanager
def running(command: list[str], env: dict[str, str], *, log_path: Path, ready_url: str | None,
            ready_within: float = 120) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process until the block ends (SIGTERM, so it shuts down cleanly, unless the block ended it
    already); output goes to a file because an unread pipe would block it. Without `ready_url` the block starts at
    once (start several, then `wait_until_ready` for each: they come up side by side). The 120 s allowed by default
    only matter on a busy shared host, where importing the app in several processes at once took over a minute."""
    with log_path.open('w') as log, subprocess.Popen(command, env=env, cwd=REPO, stdout=log,
                                                     stderr=subprocess.STDOUT) as process:
        try:
            if ready_url is not None:
                wait_until_ready(ready_url, process, log_path, ready_within)
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=40)


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f'{url}: process exited with {process.returncode}:\n{log_path.read_text()}')
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f'{url} did not come up:\n{log_path.read_text()}')
