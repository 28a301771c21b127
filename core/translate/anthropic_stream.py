"""Anthropic dialect stream encoder: `event: <type>\\ndata: {...}\\n\\n` Server-Sent Events.

    message_start, ping,
    (content_block_start, content_block_delta*, content_block_stop)*   one block at a time, index 0, 1, 2...
    message_delta (stop_reason, usage), message_stop

Canonical deltas interleave reasoning, text and tool-call fragments; each change of kind (or of tool call)
closes the open block and opens the next, so every block that was opened is closed, thinking -> tool_use
included. An error ends the stream with `event: error` and no message_stop, so SDKs raise instead of
returning a truncated message as if it were complete.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.translate.anthropic_dialect import stop_reason
from core.translate.anthropic_dialect import usage as usage_of
from core.translate.canonical import ChatRequest, Delta, Usage
from core.translate.ids import with_prefix
from core.translate.streaming import SSE

_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b'event: ' + name.encode() + b'\ndata: ' + orjson.dumps(payload) + b'\n\n'


class AnthropicMessagesEncoder:
    """Stream encoder for /anthropic/v1/messages. `input_tokens` (if the caller counted them) goes in
    message_start; the engine's own counts go in message_delta at the end."""

    media_type = SSE
    __slots__ = ('_closed', '_id', '_index', '_input_tokens', '_model', '_open', '_started', '_stop_sequence',
                 '_tool_index')

    def __init__(self, req: ChatRequest, *, request_id: str, model: str, input_tokens: int = 0) -> None:
        self._id = with_prefix('msg_', request_id)
        self._model = model
        self._input_tokens = input_tokens
        self._index = -1  # index of the latest block opened
        self._open: str | None = None  # type of the open block
        self._tool_index: int | None = None  # canonical tool-call index of the open tool_use block
        self._stop_sequence: str | None = None
        self._started = False
        self._closed = False

    def start(self) -> bytes:
        if self._started:
            return b''
        self._started = True
        message: dict[str, Any] = {
            'id': self._id, 'type': 'message', 'role': 'assistant', 'model': self._model, 'content': [],
            'stop_reason': None, 'stop_sequence': None,
            'usage': usage_of(self._input_tokens, 0),
        }
        return _event('message_start', {'type': 'message_start', 'message': message}) + _PING

    def delta(self, d: Delta) -> bytes:
        if self._closed:
            return b''
        out = b'' if self._started else self.start()
        if d.stop_sequence:
            self._stop_sequence = d.stop_sequence
        if d.reasoning:
            if self._open != 'thinking':
                out += self._open_block({'type': 'thinking', 'thinking': '', 'signature': ''})
            out += self._block_delta(b'{"type":"thinking_delta","thinking":' + orjson.dumps(d.reasoning) + b'}')
        if d.content:
            if self._open != 'text':
                out += self._open_block({'type': 'text', 'text': ''})
            out += self._block_delta(b'{"type":"text_delta","text":' + orjson.dumps(d.content) + b'}')
        for tc in d.tool_calls:
            if self._open != 'tool_use' or tc.index != self._tool_index:
                out += self._open_block({'type': 'tool_use', 'id': tc.id or f'toolu_{self._id}_{tc.index}',
                                         'name': tc.name or '', 'input': {}})
                self._tool_index = tc.index
            if tc.arguments:
                out += self._block_delta(b'{"type":"input_json_delta","partial_json":'
                                         + orjson.dumps(tc.arguments) + b'}')
        return out

    def end(self, finish_reason: str, usage: Usage) -> bytes:
        if self._closed:
            return b''
        out = (b'' if self._started else self.start()) + self._close_block()
        self._closed = True
        reason = stop_reason(finish_reason, self._stop_sequence)
        payload = {'type': 'message_delta',
                   'delta': {'stop_reason': reason,
                             'stop_sequence': self._stop_sequence if reason == 'stop_sequence' else None},
                   'usage': usage_of(usage.prompt_tokens, usage.completion_tokens)}
        return out + _event('message_delta', payload) + _STOP

    def error(self, message: str, *, error_type: str = 'api_error') -> bytes:
        if self._closed:
            return b''
        self._closed = True
        return _event('error', {'type': 'error', 'error': {'type': error_type, 'message': message}})

    def _open_block(self, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        self._index += 1
        self._open = block['type']
        return out + _event('content_block_start', {'type': 'content_block_start', 'index': self._index,
                                                    'content_block': block})

    def _close_block(self) -> bytes:
        if self._open is None:
            return b''
        self._open = None
        self._tool_index = None
        return (b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
                + str(self._index).encode() + b'}\n\n')

    def _block_delta(self, delta: bytes) -> bytes:
        return _DELTA + str(self._index).encode() + b',"delta":' + delta + b'}\n\n'
