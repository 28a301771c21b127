"""A tiny Anthropic-shaped HTTP server on 127.0.0.1 that records what a client sends (golden fixtures).

    .venv/bin/python -m tests.agents.recorder   # re-records tests/fixtures/agents/claude-code/*.json

Every request is kept (method, path, headers without secrets, JSON body). `POST /v1/messages` answers with a
streamed (or plain) message: with `tool_use` set, the first answer calls that tool, later ones say "Done.".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.agents.clis import CLAUDE_CODE, OFFLINE_ENV, QUIET_ENV, REPO, install

SECRET_HEADERS = frozenset({'authorization', 'x-api-key', 'cookie'})


@dataclass
class Recording:
    requests: list[dict[str, Any]] = field(default_factory=list)
    tool_use: dict[str, Any] | None = None  # {name, input}: what the first answer calls

    def messages_calls(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r['method'] == 'POST' and r['path'].startswith('/v1/messages')
                and not r['path'].startswith('/v1/messages/count_tokens')]


def _events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    content = message['content']
    yield 'message_start', {'type': 'message_start', 'message': {**message, 'content': [], 'stop_reason': None}}
    for i, block in enumerate(content):
        if block['type'] == 'text':
            yield 'content_block_start', {'type': 'content_block_start', 'index': i,
                                          'content_block': {'type': 'text', 'text': ''}}
            yield 'content_block_delta', {'type': 'content_block_delta', 'index': i,
                                          'delta': {'type': 'text_delta', 'text': block['text']}}
        else:
            yield 'content_block_start', {'type': 'content_block_start', 'index': i,
                                          'content_block': {**block, 'input': {}}}
            yield 'content_block_delta', {'type': 'content_block_delta', 'index': i, 'delta': {
                'type': 'input_json_delta', 'partial_json': json.dumps(block['input'])}}
        yield 'content_block_stop', {'type': 'content_block_stop', 'index': i}
    yield 'message_delta', {'type': 'message_delta', 'delta': {'stop_reason': message['stop_reason'],
                                                               'stop_sequence': None},
                            'usage': {'output_tokens': 5}}
    yield 'message_stop', {'type': 'message_stop'}


def _answer(recording: Recording, body: dict[str, Any]) -> dict[str, Any]:
    calls = len(recording.messages_calls())
    content: list[dict[str, Any]]
    if recording.tool_use and calls == 1:
        content = [{'type': 'tool_use', 'id': 'toolu_01', **recording.tool_use}]
        reason = 'tool_use'
    else:
        content = [{'type': 'text', 'text': 'Hello!' if not recording.tool_use else 'Done.'}]
        reason = 'end_turn'
    return {'id': f'msg_{calls:02d}', 'type': 'message', 'role': 'assistant', 'model': body.get('model', ''),
            'content': content, 'stop_reason': reason, 'stop_sequence': None,
            'usage': {'input_tokens': 10, 'output_tokens': 5}}


def _handler(recording: Recording) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> dict[str, Any] | None:
            length = int(self.headers.get('content-length') or 0)
            raw = self.rfile.read(length) if length else b''
            body = json.loads(raw) if raw else None
            recording.requests.append({
                'method': self.command, 'path': self.path,
                'headers': {k.lower(): v for k, v in self.headers.items() if k.lower() not in SECRET_HEADERS},
                'body': body})
            return body if isinstance(body, dict) else None

        def _json(self, status: int, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header('content-type', 'application/json')
            self.send_header('content-length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_HEAD(self) -> None:
            self._record()
            self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:
            self._record()
            if self.path.startswith('/v1/models'):
                self._json(200, {'data': [{'type': 'model', 'id': 'llama3.2', 'display_name': 'llama3.2',
                                           'created_at': '1970-01-01T00:00:00Z'}], 'has_more': False})
            else:
                self._json(404, {'type': 'error', 'error': {'type': 'not_found_error', 'message': 'no'}})

        def do_POST(self) -> None:
            body = self._record() or {}
            if self.path.startswith('/v1/messages/count_tokens'):
                self._json(200, {'input_tokens': 10})
                return
            if not self.path.startswith('/v1/messages'):
                self._json(404, {'type': 'error', 'error': {'type': 'not_found_error', 'message': 'no'}})
                return
            message = _answer(recording, body)
            if not body.get('stream'):
                self._json(200, message)
                return
            self.send_response(200)
            self.send_header('content-type', 'text/event-stream')
            self.end_headers()
            for event, data in _events(message):
                self.wfile.write(f'event: {event}\ndata: {json.dumps(data)}\n\n'.encode())
            self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def recording_server(tool_use: dict[str, Any] | None = None) -> Iterator[tuple[str, Recording]]:
    recording = Recording(tool_use=tool_use)
    server = ThreadingHTTPServer(('127.0.0.1', 0), _handler(recording))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', recording
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- re-recording the golden fixtures

FIXTURES = Path(__file__).resolve().parents[1] / 'fixtures' / 'agents' / 'claude-code'
_PROJECT = '/work/project'  # the temporary project folder, as the fixtures write it
_VOLATILE_HEADERS = frozenset({'host', 'content-length', 'connection', 'x-claude-code-session-id'})


def record_claude_code(prompt: str, tool_use: dict[str, Any] | None) -> dict[str, Any]:
    """Run `claude -p prompt` (settings from agentic_ai/claude-code) against the recorder; what it sent."""
    executable = install(CLAUDE_CODE)
    with tempfile.TemporaryDirectory() as tmp:
        home, project = Path(tmp) / 'home', Path(tmp) / 'project'
        if tool_use is not None:  # the tool reads the real project folder; the fixture names the placeholder
            tool_use = json.loads(json.dumps(tool_use).replace(_PROJECT, str(project)))
        with recording_server(tool_use) as (url, recording):
            return _run_claude(executable, prompt, home, project, url, recording)


def _run_claude(executable: Path, prompt: str, home: Path, project: Path, url: str,
                recording: Recording) -> dict[str, Any]:
    (home / '.claude').mkdir(parents=True)
    project.mkdir()
    shutil.copy(REPO / 'agentic_ai' / 'claude-code' / 'settings.json', home / '.claude' / 'settings.json')
    (project / 'notes.txt').write_text('The secret word is pineapple.\n')
    env = {'PATH': os.environ['PATH'], 'HOME': str(home), **QUIET_ENV, **OFFLINE_ENV,
           'ANTHROPIC_BASE_URL': url, 'ANTHROPIC_AUTH_TOKEN': 'recorded-key'}
    result = subprocess.run([str(executable), '-p', prompt, '--allowedTools', 'Read'], env=env, cwd=project,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f'claude exited {result.returncode}: {result.stderr}')
    requests = [{**r, 'headers': {k: v for k, v in r['headers'].items() if k not in _VOLATILE_HEADERS}}
                for r in recording.requests]
    # the temporary folders' names differ on every run: write them as placeholders
    text = json.dumps(requests, indent=1, ensure_ascii=False)
    text = text.replace(str(project), _PROJECT).replace(str(home), '/home/user')
    return {'cli': f'{CLAUDE_CODE.name}@{CLAUDE_CODE.version}', 'prompt': prompt, 'answer': result.stdout,
            'requests': json.loads(text)}


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    runs = {'plain-turn': ('Say hello', None),
            'tool-round-trip': ('What is in notes.txt?',
                                {'name': 'Read', 'input': {'file_path': f'{_PROJECT}/notes.txt'}})}
    for name, (prompt, tool_use) in runs.items():
        recorded = record_claude_code(prompt, tool_use)
        (FIXTURES / f'{name}.json').write_text(json.dumps(recorded, indent=1, ensure_ascii=False) + '\n')
        print(f'{name}: {len(recorded["requests"])} requests')


if __name__ == '__main__':
    main()
