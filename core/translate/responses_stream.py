"""Responses API stream encoder: typed Server-Sent Events, `event: <type>\\ndata: {..., sequence_number}\\n\\n`.

The event sequence is the one the official SDKs and Codex consume:

    response.created, response.in_progress
    per output item, in order (reasoning, then the message, then each function call):
      response.output_item.added
        reasoning:      response.reasoning_summary_part.added, response.reasoning_summary_text.delta ...,
                        response.reasoning_summary_text.done, response.reasoning_summary_part.done
        message:        response.content_part.added, response.output_text.delta ..., response.output_text.done,
                        response.content_part.done
        function_call:  response.function_call_arguments.delta ..., response.function_call_arguments.done
      response.output_item.done
    response.completed (response.incomplete when max_output_tokens cut it)
    or, when the engine dies mid-stream: error, then response.failed

An item is closed as soon as the next kind of output starts, so a client sees each item whole before the next.
The text is kept (as a list of pieces) because the `.done` events and the final `response` repeat it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from core.translate.canonical import Delta, ToolCall, ToolCallDelta, Usage
from core.translate.responses_dialect import (
    ResponsesRequest,
    function_call_item,
    message_item,
    reasoning_item,
    response_object,
    usage_body,
)
from core.translate.streaming import SSE

__all__ = ['ResponsesStreamEncoder']


class _Call:
    __slots__ = ('arguments', 'call_id', 'item_id', 'name', 'output_index')

    def __init__(self, item_id: str, call_id: str, name: str, output_index: int) -> None:
        self.item_id, self.call_id, self.name, self.output_index = item_id, call_id, name, output_index
        self.arguments: list[str] = []

    def item(self, status: str) -> dict[str, Any]:
        return function_call_item(self.item_id, ToolCall(self.call_id, self.name, ''.join(self.arguments)),
                                  status=status)


class ResponsesStreamEncoder:
    media_type = SSE

    def __init__(self, req: ResponsesRequest, *, response_id: str, created: int,
                 on_done: Callable[[dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._req = req
        self._clock = clock  # for `completed_at`
        self._id = response_id
        self._created = created
        self._on_done = on_done
        self._seq = 0
        self._closed = False
        self._output: list[dict[str, Any]] = []  # finished items
        self._open: str | None = None  # 'reasoning' | 'message' | 'calls'
        self._reasoning: list[str] = []
        self._text: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._reasoning_chars = 0
        self._text_chars = 0

    # ------------------------------------------------------------ protocol
    def start(self) -> bytes:
        snapshot = self._response('in_progress', None)
        return self._event('response.created', response=snapshot) + self._event('response.in_progress',
                                                                                 response=snapshot)

    def delta(self, d: Delta) -> bytes:
        if self._closed:
            return b''
        out = b''
        if d.reasoning:
            out += self._reasoning_delta(d.reasoning)
        if d.content:
            out += self._text_delta(d.content)
        for call in d.tool_calls:
            out += self._call_delta(call)
        return out

    def end(self, finish_reason: str, usage: Usage) -> bytes:
        if self._closed:
            return b''
        out = self._close_open()
        if not self._output:  # an empty answer is still a message, as the non-streamed form has it
            out += self._open_message() + self._close_open()
        self._closed = True
        status = 'incomplete' if finish_reason == 'length' else 'completed'
        final = self._response(status, usage_body(usage, reasoning_chars=self._reasoning_chars,
                                                  text_chars=self._text_chars),
                               finish_reason=finish_reason, completed_at=int(self._clock()))
        if self._on_done is not None:
            self._on_done(final)
        return out + self._event(f'response.{status}', response=final)

    def error(self, message: str, *, error_type: str = 'server_error', code: str | int | None = None) -> bytes:
        if self._closed:
            return b''
        self._closed = True
        code_text = str(code) if code is not None else 'server_error'
        failed = self._response('failed', None, error={'code': code_text, 'message': message})
        return (self._event('error', code=code_text, message=message, param=None)
                + self._event('response.failed', response=failed))

    # ------------------------------------------------------------ items
    def _reasoning_delta(self, text: str) -> bytes:
        out = b''
        if self._open != 'reasoning':
            out += self._close_open()
            self._open = 'reasoning'
            out += self._event('response.output_item.added', output_index=len(self._output),
                               item=reasoning_item(self._item_id('rs'), '', status='in_progress') | {'summary': []})
            out += self._event('response.reasoning_summary_part.added', item_id=self._item_id('rs'),
                               output_index=len(self._output), summary_index=0,
                               part={'type': 'summary_text', 'text': ''})
        self._reasoning.append(text)
        self._reasoning_chars += len(text)
        return out + self._event('response.reasoning_summary_text.delta', item_id=self._item_id('rs'),
                                 output_index=len(self._output), summary_index=0, delta=text)

    def _open_message(self) -> bytes:
        self._open = 'message'
        index = len(self._output)
        return (self._event('response.output_item.added', output_index=index,
                            item=message_item(self._item_id('msg'), '', status='in_progress'))
                + self._event('response.content_part.added', item_id=self._item_id('msg'), output_index=index,
                              content_index=0, part={'type': 'output_text', 'text': '', 'annotations': []}))

    def _text_delta(self, text: str) -> bytes:
        out = b''
        if self._open != 'message':
            out += self._close_open() + self._open_message()
        self._text.append(text)
        self._text_chars += len(text)
        return out + self._event('response.output_text.delta', item_id=self._item_id('msg'),
                                 output_index=len(self._output), content_index=0, delta=text, logprobs=[])

    def _call_delta(self, tc: ToolCallDelta) -> bytes:
        out = b''
        call = self._calls.get(tc.index)
        if call is None:
            if self._open != 'calls':
                out += self._close_open()
                self._open = 'calls'
            k = len(self._calls)
            in_run = sum(1 for c in self._calls.values() if c.output_index >= len(self._output))
            call = _Call(f'fc_{self._id}_{k}', tc.id or f'call_{self._id}_{k}', tc.name or '',
                         len(self._output) + in_run)
            self._calls[tc.index] = call
            out += self._event('response.output_item.added', output_index=call.output_index,
                               item=call.item('in_progress'))
        elif tc.name and not call.name:
            call.name = tc.name
        if tc.arguments:
            call.arguments.append(tc.arguments)
            out += self._event('response.function_call_arguments.delta', item_id=call.item_id,
                               output_index=call.output_index, delta=tc.arguments)
        return out

    def _close_open(self) -> bytes:
        """Finish the item in progress: its `.done` events and `response.output_item.done`."""
        index = len(self._output)
        out = b''
        if self._open == 'reasoning':
            text = ''.join(self._reasoning)
            item_id = self._item_id('rs')
            out += self._event('response.reasoning_summary_text.done', item_id=item_id, output_index=index,
                               summary_index=0, text=text)
            out += self._event('response.reasoning_summary_part.done', item_id=item_id, output_index=index,
                               summary_index=0, part={'type': 'summary_text', 'text': text})
            self._output.append(reasoning_item(item_id, text))
            out += self._event('response.output_item.done', output_index=index, item=self._output[-1])
        elif self._open == 'message':
            text = ''.join(self._text)
            item_id = self._item_id('msg')
            part = {'type': 'output_text', 'text': text, 'annotations': [], 'logprobs': []}
            out += self._event('response.output_text.done', item_id=item_id, output_index=index, content_index=0,
                               text=text, logprobs=[])
            out += self._event('response.content_part.done', item_id=item_id, output_index=index, content_index=0,
                               part=part)
            self._output.append(message_item(item_id, text))
            out += self._event('response.output_item.done', output_index=index, item=self._output[-1])
        elif self._open == 'calls':
            for call in self._calls.values():
                if call.output_index < index:
                    continue  # closed with an earlier run of calls
                arguments = ''.join(call.arguments) or '{}'
                call.arguments = [arguments]
                out += self._event('response.function_call_arguments.done', item_id=call.item_id,
                                   output_index=call.output_index, arguments=arguments)
                self._output.append(call.item('completed'))
                out += self._event('response.output_item.done', output_index=call.output_index,
                                   item=self._output[-1])
        self._open = None
        return out

    # ------------------------------------------------------------ framing
    def _item_id(self, prefix: str) -> str:
        return f'{prefix}_{self._id}'

    def _response(self, status: str, usage: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
        return response_object(self._req, response_id=self._id, created=self._created, model=self._req.chat.model,
                               status=status, output=list(self._output), usage=usage, **extra)

    def _event(self, kind: str, **fields: Any) -> bytes:
        fields['type'] = kind
        fields['sequence_number'] = self._seq
        self._seq += 1
        return b'event: ' + kind.encode() + b'\ndata: ' + orjson.dumps(fields) + b'\n\n'
