"""OpenAI dialect stream encoders: Server-Sent Events, `data: {chunk}\\n\\n` ... `data: [DONE]\\n\\n`.

The fixed part of every chunk (id, object, created, model) is serialised once, at construction; each delta
only serialises its own small dict. Usage is always known to the gateway (engines are asked for it), but the
usage chunk is only sent to clients that asked (`stream_options.include_usage`), as OpenAI does.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.translate.canonical import ChatRequest, Delta, ToolCallDelta, Usage
from core.translate.ids import with_prefix
from core.translate.openai_dialect import chat_finish_reason, completion_finish_reason, usage_body
from core.translate.streaming import SSE

_DONE = b'data: [DONE]\n\n'
_OPEN = b'[{"index":0,"delta":'
_TAIL = b',"logprobs":null,"finish_reason":null}]}\n\n'


def _head(request_id: str, obj: str, created: int, model: str) -> bytes:
    return (b'data: {"id":' + orjson.dumps(request_id) + b',"object":"' + obj.encode() + b'","created":'
            + str(int(created)).encode() + b',"model":' + orjson.dumps(model) + b',"choices":')


def _error_event(message: str, error_type: str, code: str | int | None) -> bytes:
    # the OpenAI SDKs raise APIError on a data line carrying "error"; no [DONE] may follow
    return b'data: ' + orjson.dumps(
        {'error': {'message': message, 'type': error_type, 'param': None, 'code': code}}) + b'\n\n'


class OpenAIChatEncoder:
    """`chat.completion.chunk` events for /v1/chat/completions. Role goes in the first delta sent."""

    media_type = SSE
    __slots__ = ('_closed', '_head', '_include_usage', '_role_sent')

    def __init__(self, req: ChatRequest, *, request_id: str, model: str, created: int) -> None:
        self._head = _head(with_prefix('chatcmpl-', request_id), 'chat.completion.chunk', created, model)
        self._include_usage = req.include_usage
        self._role_sent = False
        self._closed = False

    def start(self) -> bytes:
        return b''

    def delta(self, d: Delta) -> bytes:
        if self._closed:
            return b''
        body: dict[str, Any] = {} if self._role_sent else {'role': 'assistant'}
        if d.content:
            body['content'] = d.content
        if d.reasoning:
            body['reasoning_content'] = d.reasoning
        if d.tool_calls:
            body['tool_calls'] = [_tool_call(tc) for tc in d.tool_calls]
        if len(body) == (0 if self._role_sent else 1):
            return b''  # nothing new to say (a usage-only or empty engine chunk)
        self._role_sent = True
        return self._head + _OPEN + orjson.dumps(body) + _TAIL

    def end(self, finish_reason: str, usage: Usage) -> bytes:
        if self._closed:
            return b''
        self._closed = True
        delta = b'{}' if self._role_sent else b'{"role":"assistant","content":""}'
        out = (self._head + _OPEN + delta + b',"logprobs":null,"finish_reason":"'
               + chat_finish_reason(finish_reason).encode() + b'"}]}\n\n')
        if self._include_usage:
            out += self._head + b'[],"usage":' + orjson.dumps(usage_body(usage)) + b'}\n\n'
        return out + _DONE

    def error(self, message: str, *, error_type: str = 'server_error', code: str | int | None = None) -> bytes:
        if self._closed:
            return b''
        self._closed = True
        return _error_event(message, error_type, code)


def _tool_call(tc: ToolCallDelta) -> dict[str, Any]:
    fn: dict[str, str] = {}
    if tc.name is not None:
        fn['name'] = tc.name
    fn['arguments'] = tc.arguments
    if tc.id is None:
        return {'index': tc.index, 'function': fn}
    return {'index': tc.index, 'id': tc.id, 'type': 'function', 'function': fn}


class OpenAICompletionEncoder:
    """`text_completion` events for /v1/completions: text only (reasoning has no place in this shape)."""

    media_type = SSE
    __slots__ = ('_closed', '_head', '_include_usage')

    def __init__(self, req: ChatRequest, *, request_id: str, model: str, created: int) -> None:
        self._head = _head(with_prefix('cmpl-', request_id), 'text_completion', created, model)
        self._include_usage = req.include_usage
        self._closed = False

    def start(self) -> bytes:
        return b''

    def delta(self, d: Delta) -> bytes:
        if self._closed or not d.content:
            return b''
        return self._head + b'[{"text":' + orjson.dumps(d.content) + b',"index":0' + _TAIL

    def end(self, finish_reason: str, usage: Usage) -> bytes:
        if self._closed:
            return b''
        self._closed = True
        out = (self._head + b'[{"text":"","index":0,"logprobs":null,"finish_reason":"'
               + completion_finish_reason(finish_reason).encode() + b'"}]}\n\n')
        if self._include_usage:
            out += self._head + b'[],"usage":' + orjson.dumps(usage_body(usage)) + b'}\n\n'
        return out + _DONE

    def error(self, message: str, *, error_type: str = 'server_error', code: str | int | None = None) -> bytes:
        if self._closed:
            return b''
        self._closed = True
        return _error_event(message, error_type, code)
