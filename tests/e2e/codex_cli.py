"""The real Codex CLI (`@openai/codex`, pinned) for tests: installed from npm into the user's cache once, run
non-interactively (`codex exec`) with `agentic_ai/codex/config.toml` as a user copies it, and kept off the
internet: every proxy variable points at a local trap that counts connections (only 127.0.0.1 is exempt), and the
config turns off update checks, analytics and hosted web search.

`python tools/record_codex_requests.py` uses `RecordingServer` to refresh tests/fixtures/agents/codex/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.agents.clis import CODEX, installed_or_skip

CODEX_VERSION = CODEX.version

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'agentic_ai' / 'codex' / 'config.toml'
RUN_TIMEOUT = 120.0  # seconds a whole `codex exec` may take


def install_codex() -> Path:
    """The `codex` executable of the pinned release (tests/agents/clis.py installs every agent CLI the same way)."""
    return installed_or_skip(CODEX)


class ProxyTrap:
    """A TCP listener standing in for every proxy: a connection to it is an attempt to leave the machine."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen()
        self.port = self._sock.getsockname()[1]
        self.attempts: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(1.0)
                try:
                    self.attempts.append(conn.recv(200))  # e.g. b'CONNECT chatgpt.com:443 HTTP/1.1...'
                except OSError:
                    self.attempts.append(b'')

    def close(self) -> None:
        self._sock.close()


@dataclass
class CodexRun:
    returncode: int
    stdout: str
    stderr: str
    last_message: str


@dataclass
class Codex:
    binary: Path
    home: Path  # CODEX_HOME: holds config.toml exactly as agentic_ai/codex/ ships it
    trap: ProxyTrap = field(default_factory=ProxyTrap)

    def run(self, workdir: Path, prompt: str, *, base_url: str, model: str, api_key: str,
            options: Sequence[str] = ()) -> CodexRun:
        """`codex exec` once, non-interactively: the server's address and the model given on the command line
        (as a user with another host would), the sandbox letting the agent's own shell tool run in `workdir`."""
        last = workdir.parent / f'{workdir.name}-last-message.txt'
        env = {key: value for key, value in os.environ.items() if not key.startswith(('OPENAI_', 'CODEX_'))}
        trap = f'http://127.0.0.1:{self.trap.port}'
        env.update({'CODEX_HOME': str(self.home), 'MINDROUTER_API_KEY': api_key, 'NO_COLOR': '1',
                    'HTTPS_PROXY': trap, 'HTTP_PROXY': trap, 'ALL_PROXY': trap, 'https_proxy': trap,
                    'http_proxy': trap, 'all_proxy': trap, 'NO_PROXY': '127.0.0.1,localhost',
                    'no_proxy': '127.0.0.1,localhost'})
        result = subprocess.run(
            [str(self.binary), 'exec', '--skip-git-repo-check', '--ephemeral', '--sandbox', 'workspace-write',
             '--color', 'never', '-C', str(workdir), '-o', str(last),
             '-c', f'model_providers.mindrouter.base_url="{base_url}"', '-m', model, *options, prompt],
            env=env, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        return CodexRun(result.returncode, result.stdout, result.stderr,
                        last.read_text() if last.exists() else '')


def codex_home(root: Path) -> Path:
    home = root / 'codex-home'
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG, home / 'config.toml')  # as it is: the test must prove the file a user copies
    return home


# ---------------------------------------------------------------- recording (tools/record_codex_requests.py)

@dataclass
class RecordingServer:
    """A Responses API stand-in on 127.0.0.1 that keeps every request Codex sends and answers with a script:
    a call of `tool` first, then (once the last input item is the tool's result) a text answer."""

    tool: str
    arguments: dict[str, Any]
    requests: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def serving(self) -> Iterator[str]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get('content-length') or 0)))
                recorder.requests.append({'path': self.path, 'headers': {k.lower(): v for k, v in self.headers.items()
                                                                         if k.lower() != 'authorization'},
                                          'body': body})
                payload = recorder.answer(body)
                self.send_response(200)
                self.send_header('content-type', 'text/event-stream')
                self.send_header('content-length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f'http://127.0.0.1:{server.server_address[1]}/v1'
        finally:
            server.shutdown()
            server.server_close()

    def answer(self, body: dict[str, Any]) -> bytes:
        if body['input'][-1].get('type') == 'function_call_output':
            item: dict[str, Any] = {'id': 'msg_rec', 'type': 'message', 'role': 'assistant', 'status': 'completed',
                                    'content': [{'type': 'output_text', 'text': 'done', 'annotations': []}]}
        else:
            item = {'id': 'fc_rec', 'type': 'function_call', 'call_id': 'call_rec', 'name': self.tool,
                    'arguments': json.dumps(self.arguments), 'status': 'completed'}
        usage = {'input_tokens': 1, 'input_tokens_details': {'cached_tokens': 0}, 'output_tokens': 1,
                 'output_tokens_details': {'reasoning_tokens': 0}, 'total_tokens': 2}
        events = [('response.created', {'response': {'id': 'resp_rec', 'object': 'response', 'status': 'in_progress',
                                                     'output': []}}),
                  ('response.output_item.done', {'output_index': 0, 'item': item}),
                  ('response.completed', {'response': {'id': 'resp_rec', 'object': 'response', 'status': 'completed',
                                                       'output': [item], 'usage': usage}})]
        return b''.join(f'event: {kind}\ndata: {json.dumps({"type": kind, "sequence_number": n, **data})}\n\n'.encode()
                        for n, (kind, data) in enumerate(events))
