"""vLLM engine (OpenAI-compatible server): canonical -> request bodies, responses and SSE streams -> canonical.

- Streams always ask for usage (`stream_options.include_usage`), so accounting has real token counts;
  whether the client sees the usage chunk is the client encoder's business.
- `json_object` is sent as a permissive `json_schema` (newer vLLM rejects bare json_object) and a
  json_schema without a name gets one (vLLM requires it).
- Reasoning is read from `reasoning` (vLLM >= 0.10) then `reasoning_content` (older servers), and split out
  of the content when the server runs without a reasoning parser (`<think>...</think>`, core.translate.think_tags).
- Thinking arrives here already decided per model family (core.gateway.shaping): a bool is Qwen-style
  `chat_template_kwargs.enable_thinking`, a level is `reasoning_effort`; a budget is `thinking_token_budget`.
- Ollama-only options (`backend_options`) are not sent: vLLM has no such knobs.
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
    RerankRequest,
    RerankResponse,
    RerankResult,
    ScoreRequest,
    ScoreResponse,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from core.translate.content import data_url, merge_system
from core.translate.engine_errors import (
    SHAPE_ERRORS,
    EngineResponseError,
    EngineStreamError,
    engine_shape,
    error_text,
    message_in,
)
from core.translate.streaming import LineBuffer
from core.translate.think_tags import ThinkTagSplitter, split_think_tags

__all__ = [
    'VllmStreamParser',
    'chat_request',
    'embed_request',
    'error_message',
    'parse_chat_response',
    'parse_embed_response',
    'parse_rerank_response',
    'parse_score_response',
    'rerank_request',
    'score_request',
    'tokenize_request',
]

_JSON_OBJECT = {'type': 'json_schema', 'json_schema': {'name': 'json_response', 'schema': {'type': 'object'}}}
_FINISH = {'stop': 'stop', 'length': 'length', 'tool_calls': 'tool_calls'}


# ---------------------------------------------------------------- requests

def chat_request(req: ChatRequest) -> tuple[str, dict[str, Any]]:
    """The path and JSON body for a chat (/v1/chat/completions) or completion (/v1/completions)."""
    body: dict[str, Any] = {'model': req.model}
    if req.kind == Kind.completion:
        path = '/v1/completions'
        # a raw completion has no system slot: the system text leads the prompt
        body['prompt'] = f'{req.system}\n\n{req.prompt}' if req.system else req.prompt
        if req.suffix:
            body['suffix'] = req.suffix
    else:
        path = '/v1/chat/completions'
        system, rest = merge_system(req.messages)
        body['messages'] = ([{'role': 'system', 'content': system}] if system else []) + [_message(m) for m in rest]
        if req.tools:  # vLLM refuses a tool_choice without tools
            body['tools'] = req.tools
            if req.tool_choice is not None:
                body['tool_choice'] = req.tool_choice
            if req.parallel_tool_calls is not None:
                body['parallel_tool_calls'] = req.parallel_tool_calls
        if isinstance(req.think, bool):
            body['chat_template_kwargs'] = {'enable_thinking': req.think}
        elif isinstance(req.think, str):
            body['reasoning_effort'] = req.think
        if req.think and req.think_budget is not None:
            body['thinking_token_budget'] = req.think_budget
    _sampling(req, body)
    if req.response_format is not None:
        body['response_format'] = _response_format(req.response_format)
    body['stream'] = req.stream
    if req.stream:
        body['stream_options'] = {'include_usage': True}
    return path, body


def _sampling(req: ChatRequest, body: dict[str, Any]) -> None:
    for name, value in (('max_tokens', req.max_tokens), ('temperature', req.temperature), ('top_p', req.top_p),
                        ('top_k', req.top_k), ('min_p', req.min_p), ('seed', req.seed), ('stop', req.stop),
                        ('presence_penalty', req.presence_penalty), ('frequency_penalty', req.frequency_penalty),
                        ('repetition_penalty', req.repeat_penalty), ('user', req.user)):
        if value is not None:
            body[name] = value


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {'role': m.role}
    if m.images:
        parts: list[dict[str, Any]] = [{'type': 'text', 'text': m.content}] if m.content else []
        parts.extend({'type': 'image_url', 'image_url': {'url': data_url(img)}} for img in m.images)
        out['content'] = parts
    else:
        out['content'] = m.content if m.content or not m.tool_calls else None
    if m.tool_calls:
        out['tool_calls'] = [{'id': c.id, 'type': 'function', 'function': {'name': c.name, 'arguments': c.arguments}}
                             for c in m.tool_calls]
    if m.reasoning:
        out['reasoning'] = m.reasoning  # vLLM's name; it renames the older reasoning_content to this
    if m.role == 'tool' and m.tool_call_id:
        out['tool_call_id'] = m.tool_call_id
    return out


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt.get('type') == 'json_object':
        return _JSON_OBJECT
    if fmt.get('type') == 'json_schema':
        spec = dict(fmt.get('json_schema') or {})
        spec.setdefault('name', 'response')
        return {'type': 'json_schema', 'json_schema': spec}
    return fmt


def embed_request(req: EmbeddingRequest) -> tuple[str, dict[str, Any]]:
    """Vectors always come back as floats; the OpenAI dialect re-encodes base64 itself when asked."""
    body: dict[str, Any] = {'model': req.model, 'input': req.inputs, 'encoding_format': 'float'}
    if req.dimensions is not None:
        body['dimensions'] = req.dimensions
    return '/v1/embeddings', body


def tokenize_request(req: ChatRequest) -> tuple[str, dict[str, Any]]:
    """vLLM's /tokenize for this request's prompt, counted with the model's own tokenizer and chat template."""
    if req.kind == Kind.completion:
        return '/tokenize', {'model': req.model, 'prompt': chat_request(req)[1]['prompt']}
    return '/tokenize', {'model': req.model, 'messages': chat_request(req)[1]['messages']}


def rerank_request(req: RerankRequest) -> tuple[str, dict[str, Any]]:
    """Every score comes back (top_n is applied by the gateway, which also keeps the documents)."""
    body: dict[str, Any] = {'model': req.model, 'query': req.query, 'documents': req.documents}
    if req.truncate_prompt_tokens is not None:
        body['truncate_prompt_tokens'] = req.truncate_prompt_tokens
    return '/v1/rerank', body


def score_request(req: ScoreRequest) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {'model': req.model,
                            'text_1': req.text_1[0] if len(req.text_1) == 1 else req.text_1, 'text_2': req.text_2}
    if req.truncate_prompt_tokens is not None:
        body['truncate_prompt_tokens'] = req.truncate_prompt_tokens
    return '/v1/score', body


# ---------------------------------------------------------------- responses

@engine_shape
def parse_chat_response(body: dict[str, Any], req: ChatRequest | None = None) -> ChatResponse:
    """A non-streamed chat.completion or text_completion body -> ChatResponse."""
    choices = body.get('choices')
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise EngineResponseError('The engine answered without choices.')
    choice = choices[0]
    resp = ChatResponse(model=str(body.get('model') or ''), usage=_usage(body.get('usage')) or Usage())
    message = choice.get('message')
    if isinstance(message, dict):
        resp.content = message.get('content') or ''
        resp.reasoning = message.get('reasoning') or message.get('reasoning_content') or None
        resp.tool_calls = [
            ToolCall(id=c.get('id') or f'call_{i}', name=(c.get('function') or {}).get('name') or '',
                     arguments=(c.get('function') or {}).get('arguments') or '{}')
            for i, c in enumerate(message.get('tool_calls') or [])
        ]
    else:
        resp.content = choice.get('text') or ''
    if not resp.reasoning and resp.content:
        content, reasoning = split_think_tags(resp.content)
        resp.content, resp.reasoning = content, reasoning or None
    resp.finish_reason = _finish(choice.get('finish_reason'), bool(resp.tool_calls))
    resp.stop_sequence = _stop_string(choice)
    return resp


@engine_shape
def parse_embed_response(body: dict[str, Any], model: str) -> EmbeddingResponse:
    ordered, prompt_tokens = _indexed_data(body, 'embeddings')
    return EmbeddingResponse(model=model, embeddings=[item['embedding'] for item in ordered],
                             prompt_tokens=prompt_tokens)


@engine_shape
def parse_rerank_response(body: dict[str, Any], req: RerankRequest) -> RerankResponse:
    results = body.get('results')
    if not isinstance(results, list):
        raise EngineResponseError('The engine answered without rerank results.')
    ranked = [RerankResult(index=int(r['index']), relevance_score=float(r['relevance_score'])) for r in results]
    ranked.sort(key=lambda r: (-r.relevance_score, r.index))
    usage = body.get('usage') or {}
    return RerankResponse(model=req.model, results=ranked, total_tokens=int(usage.get('total_tokens') or 0))


@engine_shape
def parse_score_response(body: dict[str, Any], req: ScoreRequest) -> ScoreResponse:
    ordered, prompt_tokens = _indexed_data(body, 'scores')
    return ScoreResponse(model=req.model, scores=[float(item['score']) for item in ordered],
                         prompt_tokens=prompt_tokens)


def _indexed_data(body: dict[str, Any], what: str) -> tuple[list[dict[str, Any]], int]:
    """A pooling answer's `data` items in input order, and the prompt tokens it reports."""
    data = body.get('data')
    if not isinstance(data, list):
        raise EngineResponseError(f'The engine answered without {what}.')
    usage = body.get('usage') or {}
    return (sorted(data, key=lambda item: item.get('index', 0)),
            int(usage.get('prompt_tokens') or usage.get('total_tokens') or 0))


def error_message(status: int, body: bytes) -> str:
    """The human message from a vLLM error body."""
    return error_text(status, body)


def _usage(raw: object) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(prompt_tokens=int(raw.get('prompt_tokens') or 0),
                 completion_tokens=int(raw.get('completion_tokens') or 0))


def _finish(reason: object, tool_calls: bool) -> str:
    # a named tool_choice ends with "stop" although the answer is a tool call
    if tool_calls and reason in ('stop', 'tool_calls', None):
        return 'tool_calls'
    return _FINISH.get(reason, 'stop') if isinstance(reason, str) else 'stop'


def _stop_string(choice: dict[str, Any]) -> str | None:
    # vLLM's stop_reason: the stop string that matched (str), a stop token id (int), or null at EOS
    reason = choice.get('stop_reason')
    return reason if isinstance(reason, str) and choice.get('finish_reason') == 'stop' else None


# ---------------------------------------------------------------- streams

class VllmStreamParser:
    """vLLM's SSE stream -> Deltas. Frames may be split anywhere; `data:` lines of one event are joined.

    The stream is complete (`done`) once a choice has finished and `data: [DONE]` has arrived.
    """

    __slots__ = ('_data', '_done', '_finished', '_lines', '_tags', '_tools')

    def __init__(self, req: ChatRequest | None = None) -> None:
        self._lines = LineBuffer()
        self._tags = ThinkTagSplitter()
        self._data: list[bytes] = []
        self._finished = False
        self._done = False
        self._tools = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> list[Delta]:
        out: list[Delta] = []
        try:
            for line in self._lines.lines(data):
                if not line:  # blank line: the event is complete
                    if self._data:
                        self._dispatch(out)
                elif line.startswith(b'data:'):
                    self._data.append(line[6:] if line.startswith(b'data: ') else line[5:])
                # comments (":"), event:, id: and retry: lines carry nothing for us
        except EngineStreamError as exc:
            exc.deltas = out
            raise
        except SHAPE_ERRORS as exc:
            error = EngineStreamError(f'The engine sent a stream chunk of an unexpected shape ({exc!r}).')
            error.deltas = out
            raise error from exc
        return out

    def _dispatch(self, out: list[Delta]) -> None:
        payload = self._data[0] if len(self._data) == 1 else b'\n'.join(self._data)
        self._data.clear()
        if payload == b'[DONE]':
            self._done = self._finished
            return
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise EngineStreamError('The engine sent an unreadable stream event.') from None
        if not isinstance(chunk, dict):
            raise EngineStreamError('The engine sent an unreadable stream event.')
        if 'error' in chunk or chunk.get('object') == 'error':
            raise EngineStreamError(message_in(chunk) or 'The engine reported an error.')
        raw_usage = chunk.get('usage')
        usage = _usage(raw_usage) if raw_usage else None
        choices = chunk.get('choices')
        if not choices:
            if usage is not None:
                out.append(Delta(usage=usage))
            return
        choice = choices[0]
        d = choice.get('delta')
        calls: list[ToolCallDelta] = []
        if d is not None:
            content = d.get('content') or ''
            reasoning = d.get('reasoning') or d.get('reasoning_content') or ''
            raw_calls = d.get('tool_calls')
            if raw_calls:
                self._tools = True
                calls = [_tool_call_delta(c) for c in raw_calls]
        else:
            content, reasoning = choice.get('text') or '', ''  # /v1/completions
        if content and not reasoning:
            content, reasoning = self._tags.split(content)
        reason = choice.get('finish_reason')
        if reason:
            self._finished = True
            held_content, held_reasoning = self._tags.flush()
            content, reasoning = content + held_content, reasoning + held_reasoning
            out.append(Delta(content=content, reasoning=reasoning, tool_calls=calls,
                             finish_reason=_finish(reason, self._tools), usage=usage,
                             stop_sequence=_stop_string(choice)))
        elif content or reasoning or calls or usage:
            out.append(Delta(content=content, reasoning=reasoning, tool_calls=calls, usage=usage))


def _tool_call_delta(c: dict[str, Any]) -> ToolCallDelta:
    fn = c.get('function') or {}
    return ToolCallDelta(index=c.get('index') or 0, id=c.get('id') or None, name=fn.get('name') or None,
                         arguments=fn.get('arguments') or '')
