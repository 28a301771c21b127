"""OpenAI dialect (`/v1/*`): request bodies -> canonical, canonical answers -> OpenAI response bodies.

Streams are written by `core.translate.openai_stream`.

Choices made where OpenAI and the engines differ:
- Images: `data:` URLs, and http(s) URLs that the gateway fetches itself before routing, behind an SSRF
  guard (core.gateway.image_fetch); any other scheme is a 400 naming the part. No image is dropped silently.
- Multi-part text is joined with a newline, as vLLM does when it flattens content parts.
- `n`, `best_of` other than 1, `echo` and `logprobs` are refused (400): the answer could not honour them.
- Thinking: `think` (Ollama-style), then `thinking.type`, then `chat_template_kwargs.enable_thinking`;
  `reasoning_effort` turns thinking off ("none") or sets its level.
"""

from __future__ import annotations

import sys
from array import array
from base64 import b64encode
from typing import Any

from core.errors import InvalidRequest
from core.translate import validate as v
from core.translate.canonical import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ImagePart,
    Kind,
    Message,
    ToolCall,
    Usage,
)
from core.translate.content import image_from_data_url
from core.translate.ids import with_prefix
from core.translate.schema import check_schema
from core.translate.tools import ToolCallLedger, check_tool_choice, check_tools

__all__ = [
    'chat_finish_reason',
    'completion_finish_reason',
    'parse_chat',
    'parse_completion',
    'parse_embeddings',
    'render_chat',
    'render_completion',
    'render_embeddings',
    'usage_body',
]

THINK_LEVELS = ('minimal', 'low', 'medium', 'high', 'xhigh', 'max')
_EFFORTS = ('none', *THINK_LEVELS)
_ROLES = {'system': 'system', 'developer': 'system', 'user': 'user', 'assistant': 'assistant', 'tool': 'tool'}
_CHAT_FINISH = frozenset({'stop', 'length', 'tool_calls', 'content_filter'})


# ---------------------------------------------------------------- requests

def parse_chat(body: object) -> ChatRequest:
    """`POST /v1/chat/completions` body -> ChatRequest (kind chat)."""
    d = v.body_object(body)
    req = ChatRequest(model=v.model_name(d), kind=Kind.chat)
    req.messages = [_message(m, i) for i, m in enumerate(v.required_list(d, 'messages'))]
    ToolCallLedger().check(req.messages, [f'messages[{i}].tool_call_id' for i in range(len(req.messages))])
    _sampling(d, req)
    req.tools = v.function_tools(d.get('tools'))
    check_tools(req.tools, 'tools')
    req.tool_choice = v.tool_choice(d.get('tool_choice'))
    check_tool_choice(req.tools, req.tool_choice, 'tool_choice')
    req.parallel_tool_calls = v.optional_bool(d, 'parallel_tool_calls')
    req.response_format = _response_format(d)
    req.think = _think(d)
    return req


def parse_completion(body: object) -> ChatRequest:
    """`POST /v1/completions` body -> ChatRequest (kind completion). One prompt per request."""
    d = v.body_object(body)
    req = ChatRequest(model=v.model_name(d), kind=Kind.completion, prompt=_prompt(d.get('prompt')))
    req.suffix = v.optional_str(d, 'suffix')
    if v.optional_bool(d, 'echo'):
        raise InvalidRequest("'echo' is not supported.", param='echo')
    if v.optional_int(d, 'best_of', minimum=1) not in (None, 1):
        raise InvalidRequest("Only 'best_of' = 1 is supported.", param='best_of')
    if v.optional_int(d, 'logprobs', minimum=0):
        raise InvalidRequest("'logprobs' is not supported.", param='logprobs')
    _sampling(d, req)
    req.response_format = _response_format(d)
    return req


def parse_embeddings(body: object) -> EmbeddingRequest:
    """`POST /v1/embeddings` body -> EmbeddingRequest."""
    d = v.body_object(body)
    model = v.model_name(d)
    raw = d.get('input')
    if raw is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param='input')
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw):
        inputs = list(raw)
    elif isinstance(raw, list) and not raw:
        raise InvalidRequest("'input' must not be empty.", param='input')
    else:
        raise InvalidRequest("'input' must be a string or an array of strings (token arrays are not supported).",
                             param='input')
    return EmbeddingRequest(
        model=model,
        inputs=inputs,
        dimensions=v.optional_int(d, 'dimensions', minimum=1),
        encoding_format=v.one_of(d, 'encoding_format', ('float', 'base64')) or 'float',
    )


def _sampling(d: v.JsonObject, req: ChatRequest) -> None:
    """The fields /v1/chat/completions and /v1/completions share."""
    req.stream = v.flag(d, 'stream', default=False)
    options = v.optional_dict(d, 'stream_options')
    if options is not None:
        req.include_usage = v.flag(options, 'include_usage', 'stream_options.include_usage', default=False)
    # max_completion_tokens replaced max_tokens in OpenAI's API; a client sending both means the newer one
    req.max_tokens = v.optional_int(d, 'max_completion_tokens', minimum=1)
    if req.max_tokens is None:
        req.max_tokens = v.optional_int(d, 'max_tokens', minimum=1)
    req.temperature = v.optional_float(d, 'temperature', minimum=0, maximum=2)
    req.top_p = v.optional_float(d, 'top_p', minimum=0, maximum=1)
    req.top_k = v.optional_int(d, 'top_k', minimum=-1)  # vLLM: -1 and 0 mean "no top-k"
    req.min_p = v.optional_float(d, 'min_p', minimum=0, maximum=1)
    req.seed = v.optional_int(d, 'seed')
    req.stop = v.stop_list(d, 'stop')
    req.presence_penalty = v.optional_float(d, 'presence_penalty', minimum=-2, maximum=2)
    req.frequency_penalty = v.optional_float(d, 'frequency_penalty', minimum=-2, maximum=2)
    key = 'repetition_penalty' if 'repetition_penalty' in d else 'repeat_penalty'
    req.repeat_penalty = v.optional_float(d, key, minimum=0, exclusive_minimum=True)
    req.user = v.optional_str(d, 'user')
    if v.optional_int(d, 'n', minimum=1) not in (None, 1):
        raise InvalidRequest("Only 'n' = 1 is supported.", param='n')
    if v.optional_bool(d, 'logprobs') or v.optional_int(d, 'top_logprobs', minimum=0):
        raise InvalidRequest("'logprobs' is not supported.", param='logprobs')


def _prompt(raw: object) -> str:
    if raw is None:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param='prompt')
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if isinstance(raw, str):
        # Ollama reads an empty prompt as "load the model" and generates nothing (vLLM refuses one): sent on, it
        # looked like a failing backend and took it out of rotation for everyone for a few seconds.
        if not raw:
            raise InvalidRequest("'prompt' must not be empty: there is nothing to complete.", param='prompt')
        return raw
    if isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw):
        raise InvalidRequest("Only one prompt per request is supported; send each prompt separately.",
                             param='prompt')
    raise InvalidRequest("'prompt' must be a string (token arrays are not supported).", param='prompt')


def _message(raw: object, i: int) -> Message:
    param = f'messages[{i}]'
    m = v.item_object(raw, param)
    given = v.required_str(m, 'role', f'{param}.role')
    role = _ROLES.get(given)
    if role is None:
        raise InvalidRequest(f"'{param}.role' must be one of system, developer, user, assistant, tool; "
                             f'got {given!r}.', param=f'{param}.role')
    content, images = _content(m.get('content'), f'{param}.content', images_allowed=role == 'user')
    message = Message(role=role, content=content, images=images)
    if role == 'assistant':
        message.tool_calls = _tool_calls(m.get('tool_calls'), param)
        key = 'reasoning_content' if m.get('reasoning_content') is not None else 'reasoning'
        message.reasoning = v.optional_str(m, key, f'{param}.{key}')
    elif role == 'tool':
        message.tool_call_id = v.required_str(m, 'tool_call_id', f'{param}.tool_call_id')
        message.name = v.optional_str(m, 'name', f'{param}.name')
    return message


def _content(raw: object, param: str, *, images_allowed: bool) -> tuple[str, list[ImagePart]]:
    if raw is None:
        return '', []
    if isinstance(raw, str):
        return raw, []
    if not isinstance(raw, list):
        raise InvalidRequest(f"'{param}' must be a string or an array of content parts.", param=param)
    texts: list[str] = []
    images: list[ImagePart] = []
    for j, part in enumerate(raw):
        p = v.item_object(part, f'{param}[{j}]')
        kind = p.get('type')
        if kind == 'text':
            texts.append(v.required_str(p, 'text', f'{param}[{j}].text'))
        elif kind == 'refusal':
            texts.append(v.required_str(p, 'refusal', f'{param}[{j}].refusal'))
        elif kind == 'image_url' and images_allowed:
            images.append(_image_url(p.get('image_url'), f'{param}[{j}].image_url'))
        elif kind == 'image_url':
            raise InvalidRequest(f"'{param}[{j}]': images are only allowed in user messages.", param=f'{param}[{j}]')
        else:
            raise InvalidRequest(f"'{param}[{j}].type' {kind!r} is not supported (text and image_url are).",
                                 param=f'{param}[{j}].type')
    return '\n'.join(texts), images


def _image_url(raw: object, param: str) -> ImagePart:
    url = raw.get('url') if isinstance(raw, dict) else raw  # the object form, or a bare string some clients send
    if not isinstance(url, str):
        raise InvalidRequest(f"'{param}.url' must be a string.", param=f'{param}.url')
    if url.startswith('data:'):
        return image_from_data_url(url, f'{param}.url')
    if url.startswith(('http://', 'https://')):
        return ImagePart(data='', media_type='', url=url, source=f'{param}.url')  # fetched before routing
    raise InvalidRequest(f"'{param}.url' must be a data: URL (data:<mime>;base64,<data>) or an http(s) URL.",
                         param=f'{param}.url')


def _tool_calls(raw: object, param: str) -> list[ToolCall]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest(f"'{param}.tool_calls' must be an array.", param=f'{param}.tool_calls')
    calls: list[ToolCall] = []
    for k, item in enumerate(raw):
        p = f'{param}.tool_calls[{k}]'
        call = v.item_object(item, p)
        fn = v.item_object(call.get('function'), f'{p}.function')
        arguments = v.optional_str(fn, 'arguments', f'{p}.function.arguments')
        calls.append(ToolCall(
            id=v.optional_str(call, 'id', f'{p}.id') or f'call_{k}',
            name=v.required_str(fn, 'name', f'{p}.function.name'),
            arguments=arguments if arguments is not None else '{}',
        ))
    return calls


def _response_format(d: v.JsonObject) -> dict[str, Any] | None:
    rf = v.optional_dict(d, 'response_format')
    if rf is None:
        return None
    kind = rf.get('type')
    if kind == 'text':
        return None
    if kind == 'json_object':
        return {'type': 'json_object'}
    if kind == 'json_schema':
        spec = v.item_object(rf.get('json_schema'), 'response_format.json_schema')
        check_schema(spec.get('schema'), 'response_format.json_schema.schema')
        return {'type': 'json_schema', 'json_schema': spec}
    raise InvalidRequest("'response_format.type' must be text, json_object or json_schema.",
                         param='response_format.type')


def _think(d: v.JsonObject) -> bool | str | None:
    think = v.think_level(d.get('think'), 'think', THINK_LEVELS)
    if think is None:
        thinking = v.optional_dict(d, 'thinking')
        kind = thinking.get('type') if thinking else None
        if kind in ('enabled', 'adaptive'):
            think = True
        elif kind == 'disabled':
            think = False
    if think is None:
        kwargs = v.optional_dict(d, 'chat_template_kwargs')
        if kwargs is not None:
            think = v.optional_bool(kwargs, 'enable_thinking', 'chat_template_kwargs.enable_thinking')
    effort = v.one_of(d, 'reasoning_effort', _EFFORTS)
    if effort == 'none':
        return False
    if effort is not None and think is not False:
        return effort
    return think


# ---------------------------------------------------------------- responses

def usage_body(usage: Usage) -> dict[str, int]:
    return {'prompt_tokens': usage.prompt_tokens, 'completion_tokens': usage.completion_tokens,
            'total_tokens': usage.total_tokens}


def chat_finish_reason(reason: str) -> str:
    return reason if reason in _CHAT_FINISH else 'stop'


def completion_finish_reason(reason: str) -> str:
    return reason if reason in ('stop', 'length', 'content_filter') else 'stop'


def render_chat(resp: ChatResponse, *, request_id: str, created: int, model: str) -> dict[str, Any]:
    """A `chat.completion` object. `content` is null only when the answer is tool calls and nothing else."""
    message: dict[str, Any] = {
        'role': 'assistant',
        'content': resp.content if resp.content or not resp.tool_calls else None,
    }
    if resp.reasoning:
        message['reasoning_content'] = resp.reasoning
    if resp.tool_calls:
        message['tool_calls'] = [
            {'id': c.id, 'type': 'function', 'function': {'name': c.name, 'arguments': c.arguments}}
            for c in resp.tool_calls
        ]
    return {
        'id': with_prefix('chatcmpl-', request_id),
        'object': 'chat.completion',
        'created': created,
        'model': model,
        'choices': [{'index': 0, 'message': message, 'logprobs': None,
                     'finish_reason': chat_finish_reason(resp.finish_reason)}],
        'usage': usage_body(resp.usage),
    }


def render_completion(resp: ChatResponse, *, request_id: str, created: int, model: str) -> dict[str, Any]:
    """A `text_completion` object, as /v1/completions clients expect (not a chat object)."""
    return {
        'id': with_prefix('cmpl-', request_id),
        'object': 'text_completion',
        'created': created,
        'model': model,
        'choices': [{'text': resp.content, 'index': 0, 'logprobs': None,
                     'finish_reason': completion_finish_reason(resp.finish_reason)}],
        'usage': usage_body(resp.usage),
    }


def render_embeddings(resp: EmbeddingResponse, *, model: str, encoding_format: str = 'float') -> dict[str, Any]:
    """The embeddings `list`; with encoding_format base64 each vector is little-endian float32 bytes."""
    vectors: list[Any] = resp.embeddings
    if encoding_format == 'base64':
        vectors = [_base64_vector(vector) for vector in vectors]
    return {
        'object': 'list',
        'data': [{'object': 'embedding', 'index': i, 'embedding': vector} for i, vector in enumerate(vectors)],
        'model': model,
        'usage': {'prompt_tokens': resp.prompt_tokens, 'total_tokens': resp.prompt_tokens},
    }


def _base64_vector(vector: list[float]) -> str:
    packed = array('f', vector)
    if sys.byteorder == 'big':
        packed.byteswap()
    return b64encode(packed.tobytes()).decode()
