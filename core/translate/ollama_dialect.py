"""Ollama dialect (`/api/*`): request bodies -> canonical, canonical answers -> Ollama response bodies.

Streams are written by `core.translate.ollama_stream`.

Choices made where Ollama and the canonical model differ:
- `stream` defaults to true, as in Ollama; `null` counts as absent.
- `options`: the sampling keys map to canonical fields; every other key (num_ctx, mirostat, ...) is kept in
  `backend_options`, which only an Ollama engine receives. `num_predict` -1/-2 ("no limit", "fill the
  context") mean no canonical max_tokens and travel in backend_options for Ollama engines.
- Tool calls without ids get `call_{n}`, numbered across the conversation so they stay unique, and a tool
  message without `tool_call_id` is linked to the call it answers (same `tool_name`, else the oldest
  unanswered call), so OpenAI-style engines see a consistent conversation.
- `/api/generate` with `images` becomes a chat turn (system + user with the images): the canonical
  completion has no image slot, and Ollama itself templates a generate prompt as a user turn.
  `raw`, `template` and `context` are not carried (no canonical equivalent across engines).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidRequest
from core.translate import validate as v
from core.translate.canonical import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Kind,
    Message,
    ToolCall,
    Usage,
)
from core.translate.content import arguments_object, arguments_text, image_from_base64
from core.translate.schema import check_schema
from core.translate.tools import ToolCallLedger, check_tools

__all__ = [
    'OllamaTimings',
    'done_reason',
    'parse_chat',
    'parse_embed',
    'parse_embeddings',
    'parse_generate',
    'render_chat',
    'render_embed',
    'render_embeddings',
    'render_generate',
    'rfc3339',
    'rfc3339_ns',
    'tool_calls_body',
]

THINK_LEVELS = ('low', 'medium', 'high', 'max')
_ROLES = ('system', 'user', 'assistant', 'tool')
# option keys with a canonical field; everything else is an engine-specific option
_SAMPLING = frozenset({'temperature', 'top_p', 'top_k', 'min_p', 'seed', 'stop', 'num_predict',
                       'presence_penalty', 'frequency_penalty', 'repeat_penalty'})


@dataclass(slots=True, frozen=True)
class OllamaTimings:
    """The duration fields of Ollama's final object, in nanoseconds, as the gateway measured them."""

    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_duration: int = 0
    eval_duration: int = 0


# ---------------------------------------------------------------- requests

def parse_chat(body: object) -> ChatRequest:
    """`POST /api/chat` body -> ChatRequest. No `messages` (or none) is Ollama's "load the model" request."""
    d = v.body_object(body)
    req = ChatRequest(model=v.model_name(d), kind=Kind.chat)
    req.messages = _messages(v.optional_list(d, 'messages') or [])
    _common(d, req)
    req.tools = v.function_tools(d.get('tools'))
    check_tools(req.tools, 'tools')
    return req


def parse_generate(body: object) -> ChatRequest:
    """`POST /api/generate` body -> ChatRequest (kind completion; kind chat when it carries images)."""
    d = v.body_object(body)
    req = ChatRequest(model=v.model_name(d), kind=Kind.completion)
    req.prompt = v.optional_str(d, 'prompt') or ''
    req.system = v.optional_str(d, 'system') or None
    req.suffix = v.optional_str(d, 'suffix') or None
    images = [image_from_base64(img, f'images[{i}]') for i, img in enumerate(v.optional_list(d, 'images') or [])]
    if images:
        system = [Message(role='system', content=req.system)] if req.system else []
        req.kind, req.prompt, req.system = Kind.chat, '', None
        req.messages = [*system, Message(role='user', content=v.optional_str(d, 'prompt') or '', images=images)]
    _common(d, req)
    return req


def parse_embed(body: object) -> EmbeddingRequest:
    """`POST /api/embed` body (input: a string or an array of strings) -> EmbeddingRequest."""
    d = v.body_object(body)
    model = v.model_name(d)
    raw = d.get('input')
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw):
        inputs = list(raw)
    elif raw is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param='input')
    else:
        raise InvalidRequest("'input' must be a string or a non-empty array of strings.", param='input')
    return EmbeddingRequest(
        model=model,
        inputs=inputs,
        dimensions=v.optional_int(d, 'dimensions', minimum=1),
        truncate=v.optional_bool(d, 'truncate'),
        backend_options=dict(v.optional_dict(d, 'options') or {}),
    )


def parse_embeddings(body: object) -> EmbeddingRequest:
    """`POST /api/embeddings` (legacy: one `prompt`) body -> EmbeddingRequest."""
    d = v.body_object(body)
    model = v.model_name(d)
    return EmbeddingRequest(model=model, inputs=[v.required_str(d, 'prompt')],
                            backend_options=dict(v.optional_dict(d, 'options') or {}))


def _common(d: v.JsonObject, req: ChatRequest) -> None:
    req.stream = v.flag(d, 'stream', default=True)
    req.think = v.think_level(d.get('think'), 'think', THINK_LEVELS)
    req.response_format = _format(d.get('format'))
    keep_alive = d.get('keep_alive')
    if keep_alive is not None and (isinstance(keep_alive, bool) or not isinstance(keep_alive, str | int | float)):
        raise InvalidRequest("'keep_alive' must be a duration string or a number of seconds.", param='keep_alive')
    if isinstance(keep_alive, float):  # canonical keeps whole seconds or a duration string, as Ollama reads both
        keep_alive = int(keep_alive) if keep_alive.is_integer() else f'{keep_alive}s'
    req.keep_alive = keep_alive
    if v.optional_bool(d, 'logprobs'):
        raise InvalidRequest("'logprobs' is not supported.", param='logprobs')
    _options(v.optional_dict(d, 'options') or {}, req)


def _options(opts: v.JsonObject, req: ChatRequest) -> None:
    req.temperature = v.optional_float(opts, 'temperature', 'options.temperature', minimum=0, maximum=2)
    req.top_p = v.optional_float(opts, 'top_p', 'options.top_p', minimum=0, maximum=1)
    req.top_k = v.optional_int(opts, 'top_k', 'options.top_k', minimum=-1)
    req.min_p = v.optional_float(opts, 'min_p', 'options.min_p', minimum=0, maximum=1)
    req.seed = v.optional_int(opts, 'seed', 'options.seed')
    req.stop = v.stop_list(opts, 'stop', 'options.stop')
    req.presence_penalty = v.optional_float(opts, 'presence_penalty', 'options.presence_penalty',
                                            minimum=-2, maximum=2)
    req.frequency_penalty = v.optional_float(opts, 'frequency_penalty', 'options.frequency_penalty',
                                             minimum=-2, maximum=2)
    req.repeat_penalty = v.optional_float(opts, 'repeat_penalty', 'options.repeat_penalty',
                                          minimum=0, exclusive_minimum=True)
    rest = {key: value for key, value in opts.items() if key not in _SAMPLING}
    num_predict = v.optional_int(opts, 'num_predict', 'options.num_predict')
    if num_predict is not None and num_predict > 0:
        req.max_tokens = num_predict
    elif num_predict in (-1, -2):
        rest['num_predict'] = num_predict
    elif num_predict is not None:
        raise InvalidRequest("'options.num_predict' must be >= 1, or -1 (no limit) or -2 (fill the context).",
                             param='options.num_predict')
    req.backend_options = rest


def _format(fmt: object) -> dict[str, Any] | None:
    if fmt is None or fmt == '':
        return None
    if isinstance(fmt, str) and fmt.lower() == 'json':
        return {'type': 'json_object'}
    if isinstance(fmt, dict):
        check_schema(fmt, 'format')
        return {'type': 'json_schema', 'json_schema': {'name': 'response', 'schema': fmt}}
    raise InvalidRequest("'format' must be \"json\" or a JSON schema object.", param='format')


def _messages(raw: list[Any]) -> list[Message]:
    messages: list[Message] = []
    unanswered: list[ToolCall] = []  # calls of the latest assistant turn not yet answered by a tool message
    ledger = ToolCallLedger()  # every call so far: a tool message naming another id answers nothing
    next_id = 0
    for i, item in enumerate(raw):
        param = f'messages[{i}]'
        m = v.item_object(item, param)
        role = v.required_str(m, 'role', f'{param}.role')
        if role not in _ROLES:
            raise InvalidRequest(f"'{param}.role' must be one of {', '.join(_ROLES)}; got {role!r}.",
                                 param=f'{param}.role')
        images = [image_from_base64(img, f'{param}.images[{k}]')
                  for k, img in enumerate(v.optional_list(m, 'images', f'{param}.images') or [])]
        message = Message(role=role, content=v.optional_str(m, 'content', f'{param}.content') or '', images=images)
        if role == 'assistant':
            message.reasoning = v.optional_str(m, 'thinking', f'{param}.thinking') or None
            for k, call in enumerate(v.optional_list(m, 'tool_calls', f'{param}.tool_calls') or []):
                p = f'{param}.tool_calls[{k}]'
                fn = v.item_object(v.item_object(call, p).get('function'), f'{p}.function')
                call_id = v.optional_str(call, 'id', f'{p}.id') or f'call_{next_id}'
                next_id += 1
                message.tool_calls.append(ToolCall(id=call_id, name=v.required_str(fn, 'name', f'{p}.function.name'),
                                                   arguments=arguments_text(fn.get('arguments'),
                                                                            f'{p}.function.arguments')))
            unanswered = list(message.tool_calls)
            ledger.called(message)
        elif role == 'tool':
            message.name = v.optional_str(m, 'tool_name', f'{param}.tool_name') or None
            message.tool_call_id = v.optional_str(m, 'tool_call_id', f'{param}.tool_call_id') or None
            ledger.check_answer(message.tool_call_id, f'{param}.tool_call_id')
            answered = _answered_call(unanswered, message)
            if answered is not None:
                message.tool_call_id = message.tool_call_id or answered.id
                message.name = message.name or answered.name
        messages.append(message)
    return messages


def _answered_call(unanswered: list[ToolCall], message: Message) -> ToolCall | None:
    for call in unanswered:
        if call.id == message.tool_call_id or (message.tool_call_id is None and call.name == message.name):
            unanswered.remove(call)
            return call
    if message.tool_call_id is None and unanswered:
        return unanswered.pop(0)
    return None


# ---------------------------------------------------------------- responses

_cached_second: tuple[int, str] = (-1, '')  # one tuple, so a reader never sees a half-updated pair


def rfc3339(t: float) -> str:
    """Ollama's `created_at` for Unix time `t`: RFC 3339 UTC with nanoseconds."""
    whole = int(t)
    return rfc3339_ns(whole * 1_000_000_000 + round((t - whole) * 1e9))


def rfc3339_ns(ns: int) -> str:
    """`created_at` from `time.time_ns()`; the seconds part is formatted once a second (streams call this per line)."""
    global _cached_second
    whole, fraction = divmod(ns, 1_000_000_000)
    second, text = _cached_second
    if whole != second:
        text = time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))
        _cached_second = (whole, text)
    return f'{text}.{fraction:09d}Z'


def done_reason(finish_reason: str) -> str:
    return 'length' if finish_reason == 'length' else 'stop'  # Ollama reports tool calls as "stop"


def metrics(usage: Usage, timings: OllamaTimings | None) -> dict[str, int]:
    t = timings or OllamaTimings()
    return {
        'total_duration': t.total_duration,
        'load_duration': t.load_duration,
        'prompt_eval_count': usage.prompt_tokens,
        'prompt_eval_duration': t.prompt_eval_duration,
        'eval_count': usage.completion_tokens,
        'eval_duration': t.eval_duration,
    }


def tool_calls_body(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{'id': c.id, 'function': {'index': i, 'name': c.name, 'arguments': arguments_object(c.arguments)}}
            for i, c in enumerate(calls)]


def render_chat(resp: ChatResponse, *, model: str, created: float,
                timings: OllamaTimings | None = None) -> dict[str, Any]:
    """The single `/api/chat` object for stream=false. `created` is Unix time; timings as measured."""
    message: dict[str, Any] = {'role': 'assistant', 'content': resp.content}
    if resp.reasoning:
        message['thinking'] = resp.reasoning
    if resp.tool_calls:
        message['tool_calls'] = tool_calls_body(resp.tool_calls)
    return {'model': model, 'created_at': rfc3339(created), 'message': message, 'done': True,
            'done_reason': done_reason(resp.finish_reason), **metrics(resp.usage, timings)}


def render_generate(resp: ChatResponse, *, model: str, created: float,
                    timings: OllamaTimings | None = None) -> dict[str, Any]:
    """The single `/api/generate` object for stream=false."""
    out: dict[str, Any] = {'model': model, 'created_at': rfc3339(created), 'response': resp.content}
    if resp.reasoning:
        out['thinking'] = resp.reasoning
    out.update(done=True, done_reason=done_reason(resp.finish_reason), **metrics(resp.usage, timings))
    return out


def render_embed(resp: EmbeddingResponse, *, model: str, timings: OllamaTimings | None = None) -> dict[str, Any]:
    """`/api/embed`: every vector, with Ollama's duration fields."""
    t = timings or OllamaTimings()
    return {'model': model, 'embeddings': resp.embeddings, 'total_duration': t.total_duration,
            'load_duration': t.load_duration, 'prompt_eval_count': resp.prompt_tokens}


def render_embeddings(resp: EmbeddingResponse) -> dict[str, Any]:
    """Legacy `/api/embeddings`: `{"embedding": [...]}` for the one prompt."""
    return {'embedding': resp.embeddings[0] if resp.embeddings else []}
