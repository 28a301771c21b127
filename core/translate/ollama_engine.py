"""Ollama engine (native API): canonical -> request bodies, responses and NDJSON streams -> canonical.

- Sampling goes in `options` (max_tokens -> num_predict), with the client's other Ollama options
  (`backend_options`: num_ctx, mirostat, ...) underneath.
- Tool-call arguments are objects; images are bare base64 in the message's `images`.
- Ollama cannot be told which tool to call. `tool_choice` "none" sends no tools; a forced tool (a named
  choice, or "required" with one tool) is emulated: no tools, `format` = that tool's parameter schema, and
  the JSON answer comes back as a call of that tool. "required" with several tools sends them all (the model
  may still answer in text: documented in docs/compatibility.md).
- Ollama gives tool calls no ids: they get `call_<request id>_<n>`, unique and the same in every dialect.
- Reasoning written inline as `<think>...</think>` (older builds) is split off (core.translate.think_tags).
- Embeddings use `/api/embed`, the whole batch in one call (not the legacy one-prompt endpoint).
- Thinking levels Ollama does not know are mapped to the nearest it does (minimal -> low, xhigh -> high).
"""

from __future__ import annotations

from typing import Any

import orjson

from core.translate.canonical import (
    ChatRequest,
    ChatResponse,
    Delta,
    EmbeddingRequest,
    EmbeddingResponse,
    Kind,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from core.translate.content import arguments_object, merge_system
from core.translate.engine_errors import (
    SHAPE_ERRORS,
    EngineResponseError,
    EngineStreamError,
    engine_shape,
    error_text,
)
from core.translate.ollama_dialect import OllamaTimings
from core.translate.streaming import LineBuffer
from core.translate.think_tags import ThinkTagSplitter, split_think_tags

__all__ = [
    'OllamaStreamParser',
    'chat_request',
    'embed_request',
    'error_message',
    'parse_chat_response',
    'parse_embed_response',
    'timings',
]

_THINK_LEVELS = {'minimal': 'low', 'xhigh': 'high'}
_NO_REQUEST = ChatRequest(model='')  # parsing without the request: no ids to derive, no forced tool


# ---------------------------------------------------------------- requests

def chat_request(req: ChatRequest) -> tuple[str, dict[str, Any]]:
    """The path and JSON body: /api/chat for kind chat, /api/generate for kind completion."""
    body: dict[str, Any] = {'model': req.model}
    if req.kind == Kind.completion:
        path = '/api/generate'
        body['prompt'] = req.prompt
        if req.system:
            body['system'] = req.system
        if req.suffix:
            body['suffix'] = req.suffix
    else:
        path = '/api/chat'
        system, rest = merge_system(req.messages)
        body['messages'] = ([{'role': 'system', 'content': system}] if system else []) + [_message(m) for m in rest]
        forced = req.forced_tool()
        if forced is not None:
            body['format'] = forced['function'].get('parameters') or {'type': 'object'}
        elif req.tools and req.tool_choice != 'none':
            body['tools'] = req.tools
    body['stream'] = req.stream
    options = _options(req)
    if options:
        body['options'] = options
    if req.response_format is not None and 'format' not in body:
        fmt = _format(req.response_format)
        if fmt is not None:
            body['format'] = fmt
    if req.think is not None:
        body['think'] = _THINK_LEVELS.get(req.think, req.think) if isinstance(req.think, str) else req.think
    if req.keep_alive is not None:
        body['keep_alive'] = req.keep_alive
    return path, body


def _options(req: ChatRequest) -> dict[str, Any]:
    options = dict(req.backend_options)
    for name, value in (('num_predict', req.max_tokens), ('temperature', req.temperature), ('top_p', req.top_p),
                        ('top_k', req.top_k), ('min_p', req.min_p), ('seed', req.seed), ('stop', req.stop),
                        ('presence_penalty', req.presence_penalty), ('frequency_penalty', req.frequency_penalty),
                        ('repeat_penalty', req.repeat_penalty)):
        if value is not None:
            options[name] = value
    return options


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {'role': m.role, 'content': m.content}
    if m.images:
        out['images'] = [img.data for img in m.images]
    if m.reasoning:
        out['thinking'] = m.reasoning
    if m.tool_calls:
        out['tool_calls'] = [{'id': c.id, 'function': {'name': c.name, 'arguments': arguments_object(c.arguments)}}
                             for c in m.tool_calls]
    if m.role == 'tool':
        if m.name:
            out['tool_name'] = m.name
        if m.tool_call_id:
            out['tool_call_id'] = m.tool_call_id
    return out


def _format(fmt: dict[str, Any]) -> object:
    if fmt.get('type') == 'json_object':
        return 'json'
    if fmt.get('type') == 'json_schema':
        spec = fmt.get('json_schema') or {}
        return spec.get('schema', spec)
    return None


def embed_request(req: EmbeddingRequest) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {'model': req.model, 'input': req.inputs}
    if req.truncate is not None:
        body['truncate'] = req.truncate
    if req.dimensions is not None:
        body['dimensions'] = req.dimensions
    if req.backend_options:
        body['options'] = req.backend_options
    return '/api/embed', body


# ---------------------------------------------------------------- responses

@engine_shape
def parse_chat_response(body: dict[str, Any], req: ChatRequest | None = None) -> ChatResponse:
    """A non-streamed /api/chat or /api/generate body -> ChatResponse."""
    req = req or _NO_REQUEST
    message = body.get('message')
    if isinstance(message, dict):
        content, thinking = message.get('content') or '', message.get('thinking')
        calls = [_tool_call(c, i, req.request_id) for i, c in enumerate(message.get('tool_calls') or [])]
    elif 'response' in body:
        content, thinking, calls = body.get('response') or '', body.get('thinking'), []
    else:
        raise EngineResponseError('The engine answered with neither a message nor a response.')
    if not thinking and content:
        content, thinking = split_think_tags(content)
    forced = req.forced_tool() if req.kind == Kind.chat else None
    if forced is not None and not calls:  # the emulated forced call: the JSON answer is its arguments
        calls, content = [ToolCall(id=call_id(req.request_id, 0), name=forced['function']['name'],
                                   arguments=content.strip() or '{}')], ''
    return ChatResponse(
        model=str(body.get('model') or ''),
        content=content,
        reasoning=thinking or None,
        tool_calls=calls,
        finish_reason=_finish(body.get('done_reason'), bool(calls)),
        usage=_usage(body),
    )


@engine_shape
def parse_embed_response(body: dict[str, Any], model: str) -> EmbeddingResponse:
    """/api/embed (`embeddings`) or legacy /api/embeddings (`embedding`) -> EmbeddingResponse."""
    if isinstance(body.get('embeddings'), list):
        vectors = body['embeddings']
    elif isinstance(body.get('embedding'), list):
        vectors = [body['embedding']]
    else:
        raise EngineResponseError('The engine answered without embeddings.')
    return EmbeddingResponse(model=model, embeddings=vectors, prompt_tokens=int(body.get('prompt_eval_count') or 0))


def timings(body: dict[str, Any]) -> OllamaTimings:
    """The engine's own durations from a final object, for relaying to Ollama-dialect clients."""
    return OllamaTimings(total_duration=int(body.get('total_duration') or 0),
                         load_duration=int(body.get('load_duration') or 0),
                         prompt_eval_duration=int(body.get('prompt_eval_duration') or 0),
                         eval_duration=int(body.get('eval_duration') or 0))


def error_message(status: int, body: bytes) -> str:
    """The human message from an Ollama error body (`{"error": "..."}`)."""
    return error_text(status, body)


def call_id(request_id: str, index: int) -> str:
    """The id of a tool call Ollama gave none: unique across the conversation, the same in every dialect."""
    return f'call_{request_id}_{index}' if request_id else f'call_{index}'


def _tool_call(raw: dict[str, Any], i: int, request_id: str) -> ToolCall:
    fn = raw.get('function') or {}
    arguments = fn.get('arguments')
    return ToolCall(id=raw.get('id') or call_id(request_id, i), name=fn.get('name') or '',
                    arguments=arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode())


def _finish(done_reason: object, tool_calls: bool) -> str:
    if done_reason == 'length':
        return 'length'
    return 'tool_calls' if tool_calls else 'stop'


def _usage(body: dict[str, Any]) -> Usage:
    return Usage(prompt_tokens=int(body.get('prompt_eval_count') or 0),
                 completion_tokens=int(body.get('eval_count') or 0))


# ---------------------------------------------------------------- streams

class OllamaStreamParser:
    """Ollama's NDJSON stream (chat `message` or generate `response` lines) -> Deltas.

    Tool calls arrive whole, one line each; they become ToolCallDeltas with the full arguments JSON and
    indexes numbered across the stream. The final `done: true` line gives the finish reason and usage;
    its durations are kept in `timings`. A forced tool (emulated with `format`) streams no text: the JSON
    is collected and becomes one tool call on the final line.
    """

    __slots__ = ('_done', '_forced', '_json', '_lines', '_request_id', '_tags', '_tools', 'timings')

    def __init__(self, req: ChatRequest | None = None) -> None:
        self._lines = LineBuffer()
        self._done = False
        self._tools = 0
        self._request_id = req.request_id if req is not None else ''
        self._tags = ThinkTagSplitter()
        forced = req.forced_tool() if req is not None and req.kind == Kind.chat else None
        self._forced: str | None = forced['function']['name'] if forced is not None else None
        self._json: list[str] = []
        self.timings: OllamaTimings | None = None

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> list[Delta]:
        out: list[Delta] = []
        try:
            for line in self._lines.lines(data):
                if line.strip():
                    delta = self._delta(_line_object(line))
                    if delta.content or delta.reasoning or delta.tool_calls or delta.finish_reason:
                        out.append(delta)
        except EngineStreamError as exc:
            exc.deltas = out
            raise
        except SHAPE_ERRORS as exc:
            error = EngineStreamError(f'The engine sent a stream chunk of an unexpected shape ({exc!r}).')
            error.deltas = out
            raise error from exc
        return out

    def _delta(self, obj: dict[str, Any]) -> Delta:
        if 'error' in obj:
            raise EngineStreamError(str(obj['error']) or 'The engine reported an error.')
        message = obj.get('message')
        if isinstance(message, dict):
            delta = Delta(content=message.get('content') or '', reasoning=message.get('thinking') or '')
            for raw in message.get('tool_calls') or ():
                call = _tool_call(raw, self._tools, self._request_id)
                delta.tool_calls.append(ToolCallDelta(index=self._tools, id=call.id, name=call.name,
                                                      arguments=call.arguments))
                self._tools += 1
        else:
            delta = Delta(content=obj.get('response') or '', reasoning=obj.get('thinking') or '')
        if delta.content and not delta.reasoning:
            delta.content, delta.reasoning = self._tags.split(delta.content)
        if self._forced is not None and delta.content:
            self._json.append(delta.content)
            delta.content = ''
        if obj.get('done'):
            self._done = True
            content, reasoning = self._tags.flush()
            delta.content += content
            delta.reasoning += reasoning
            if self._forced is not None and not self._tools:
                self._json.append(delta.content)
                delta.content = ''
                delta.tool_calls.append(ToolCallDelta(index=0, id=call_id(self._request_id, 0), name=self._forced,
                                                      arguments=''.join(self._json).strip() or '{}'))
                self._tools = 1
            delta.finish_reason = _finish(obj.get('done_reason'), self._tools > 0)
            delta.usage = _usage(obj)
            self.timings = timings(obj)
        return delta


def _line_object(line: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        raise EngineStreamError('The engine sent an unreadable stream line.')
    return obj
