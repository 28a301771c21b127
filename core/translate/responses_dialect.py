"""OpenAI Responses dialect (`POST /v1/responses`): request bodies -> canonical, canonical answers -> `response`.

Streams are written by `core.translate.responses_stream`.

A request is parsed in two steps, because `previous_response_id` needs the stored turn first:
`parse_request` checks the body and every input item's shape; `conversation` then lays the earlier turn's items
(if any) and this request's items out as canonical messages and checks that each `function_call_output`
answers a call made before it.

Choices made where the Responses API and the engines differ:
- Only function tools reach an engine. Hosted tools (web_search, file_search, ...) and custom tools cannot be
  honoured by a local model: they are left out rather than failing an agent that always offers them.
- `instructions` become the first system message and, as OpenAI does, are not carried to a chained turn.
- Reasoning items replayed in `input` become the next assistant turn's reasoning; `encrypted_content` is
  ignored (the gateway never encrypts any).
- `usage.output_tokens_details.reasoning_tokens` is an estimate when the engine does not count it apart:
  the completion tokens split in proportion to reasoning and answer characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidRequest
from core.translate import validate as v
from core.translate.canonical import ChatRequest, ChatResponse, ImagePart, Kind, Message, ToolCall, Usage
from core.translate.content import image_from_data_url
from core.translate.openai_dialect import THINK_LEVELS
from core.translate.schema import check_schema
from core.translate.tools import ToolCallLedger, check_tool_choice, check_tools

__all__ = ['ResponsesRequest', 'conversation', 'output_items', 'parse_request', 'render_response', 'usage_body']

_EFFORTS = ('none', *THINK_LEVELS)
_ROLES = {'system': 'system', 'developer': 'system', 'user': 'user', 'assistant': 'assistant'}
_ITEM_TYPES = ('message', 'function_call', 'function_call_output', 'reasoning')


@dataclass(slots=True)
class ResponsesRequest:
    """A checked `/v1/responses` body: the canonical request (messages filled in by `conversation`) and
    what the `response` object echoes back or the store keeps."""

    chat: ChatRequest
    items: list[dict[str, Any]]  # this request's input, as items (a string input is one user message)
    instructions: str | None = None
    store: bool = True
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the `response` object repeats


# ---------------------------------------------------------------- requests

def parse_request(body: object) -> ResponsesRequest:
    d = v.body_object(body)
    chat = ChatRequest(model=v.model_name(d), kind=Kind.chat)
    req = ResponsesRequest(chat=chat, items=_input_items(d.get('input')))
    req.instructions = v.optional_str(d, 'instructions')
    req.store = v.flag(d, 'store', default=True)  # OpenAI's default: stored unless the client says not to
    req.previous_response_id = v.optional_str(d, 'previous_response_id')
    req.metadata = _metadata(d)
    if v.optional_bool(d, 'background'):
        raise InvalidRequest("'background' responses are not supported; send the request and wait, or stream it.",
                             param='background')
    if d.get('conversation') is not None:
        raise InvalidRequest("'conversation' is not supported; chain turns with 'previous_response_id'.",
                             param='conversation')
    chat.stream = v.flag(d, 'stream', default=False)
    chat.max_tokens = v.optional_int(d, 'max_output_tokens', minimum=1)
    chat.temperature = v.optional_float(d, 'temperature', minimum=0, maximum=2)
    chat.top_p = v.optional_float(d, 'top_p', minimum=0, maximum=1)
    chat.user = v.optional_str(d, 'user') or v.optional_str(d, 'safety_identifier')
    tools = _tools(d.get('tools'))
    chat.tools = tools or None
    check_tools(chat.tools, 'tools', schema_key='parameters')
    chat.tool_choice = _tool_choice(d.get('tool_choice'), tools)
    check_tool_choice(chat.tools, chat.tool_choice, 'tool_choice')
    chat.parallel_tool_calls = v.optional_bool(d, 'parallel_tool_calls')
    text = v.optional_dict(d, 'text')
    chat.response_format = _text_format(text)
    reasoning = v.optional_dict(d, 'reasoning')
    effort = v.one_of(reasoning, 'effort', _EFFORTS, 'reasoning.effort') if reasoning else None
    chat.think = None if effort is None else (False if effort == 'none' else effort)
    req.echo = {
        'instructions': req.instructions, 'metadata': req.metadata or {}, 'temperature': chat.temperature,
        'top_p': chat.top_p, 'max_output_tokens': chat.max_tokens, 'user': chat.user,
        'parallel_tool_calls': chat.parallel_tool_calls is not False,
        'tool_choice': d.get('tool_choice') or 'auto',
        'tools': [{'type': 'function', 'name': t['function']['name'],
                   'description': t['function'].get('description'),
                   'parameters': t['function'].get('parameters'), 'strict': t['function'].get('strict', False)}
                  for t in tools],
        'reasoning': {'effort': effort, 'summary': (reasoning or {}).get('summary')},
        'text': {'format': (text or {}).get('format') or {'type': 'text'}},
        'previous_response_id': req.previous_response_id, 'store': req.store, 'truncation': 'disabled',
    }
    return req


def conversation(req: ResponsesRequest, history: list[dict[str, Any]]) -> None:
    """Fill `req.chat.messages`: instructions, then the stored turns' items, then this request's items."""
    messages: list[Message] = [Message(role='system', content=req.instructions)] if req.instructions else []
    params: list[str] = ['instructions'] if req.instructions else []
    pending_reasoning: list[str] = []
    laid_out = [(item, f'previous_response_id:{n}') for n, item in enumerate(history)]
    laid_out += [(item, f'input[{n}]') for n, item in enumerate(req.items)]
    for item, param in laid_out:
        kind = item['type']
        if kind == 'reasoning':
            text = '\n'.join(p.get('text', '') for p in (item.get('summary') or item.get('content') or []))
            if text:
                pending_reasoning.append(text)
            continue
        if kind == 'function_call':
            call = ToolCall(id=item['call_id'], name=item['name'], arguments=item.get('arguments') or '{}')
            last = messages[-1] if messages else None
            if last is not None and last.role == 'assistant':
                last.tool_calls.append(call)  # one assistant turn carries every call it made, as engines expect
            else:
                messages.append(Message(role='assistant', tool_calls=[call]))
                params.append(f'{param}.call_id')
        elif kind == 'function_call_output':
            messages.append(Message(role='tool', content=_output_text(item['output']), tool_call_id=item['call_id']))
            params.append(f'{param}.call_id')
        else:
            role = _ROLES[item['role']]
            content, images = _content(item['content'], f'{param}.content', images_allowed=role == 'user')
            messages.append(Message(role=role, content=content, images=images))
            params.append(param)
        if pending_reasoning and messages[-1].role == 'assistant':
            messages[-1].reasoning = '\n'.join(pending_reasoning)
            pending_reasoning.clear()
    if not messages or all(m.role == 'system' for m in messages):
        raise InvalidRequest("'input' must hold at least one message or tool result.", param='input')
    ToolCallLedger().check(messages, params)
    req.chat.messages = messages


def _input_items(raw: object) -> list[dict[str, Any]]:
    if isinstance(raw, str):
        return [{'type': 'message', 'role': 'user', 'content': raw}]
    if not isinstance(raw, list):
        raise InvalidRequest("Missing required parameter: 'input' (a string or an array of items)."
                             if raw is None else "'input' must be a string or an array of items.", param='input')
    return [_item(item, f'input[{n}]') for n, item in enumerate(raw)]


def _item(raw: object, param: str) -> dict[str, Any]:
    """One input item, its shape checked, in the form the store keeps (`type` always present)."""
    item = dict(v.item_object(raw, param))
    kind = item.setdefault('type', 'message')  # an "easy" input message may leave out its type
    if kind not in _ITEM_TYPES:
        raise InvalidRequest(f"'{param}.type' {kind!r} is not supported; input items may be "
                             f"{', '.join(_ITEM_TYPES)}.", param=f'{param}.type')
    if kind == 'message':
        role = v.required_str(item, 'role', f'{param}.role')
        if role not in _ROLES:
            raise InvalidRequest(f"'{param}.role' must be one of user, assistant, system, developer; got {role!r}.",
                                 param=f'{param}.role')
        content = item.get('content')
        if not isinstance(content, (str, list)):
            raise InvalidRequest(f"'{param}.content' must be a string or an array of content parts.",
                                 param=f'{param}.content')
        _content(content, f'{param}.content', images_allowed=_ROLES[role] == 'user')  # checked now, before routing
    elif kind == 'function_call':
        v.required_str(item, 'call_id', f'{param}.call_id')
        v.required_str(item, 'name', f'{param}.name')
        v.optional_str(item, 'arguments', f'{param}.arguments')
    elif kind == 'function_call_output':
        v.required_str(item, 'call_id', f'{param}.call_id')
        output = item.get('output')
        if not isinstance(output, (str, list)):
            raise InvalidRequest(f"'{param}.output' must be a string or an array of content parts.",
                                 param=f'{param}.output')
    else:  # reasoning
        for key in ('summary', 'content'):
            parts = v.optional_list(item, key, f'{param}.{key}') or []
            for k, part in enumerate(parts):
                v.required_str(v.item_object(part, f'{param}.{key}[{k}]'), 'text', f'{param}.{key}[{k}].text')
    return item


def _content(raw: str | list[Any], param: str, *, images_allowed: bool) -> tuple[str, list[ImagePart]]:
    if isinstance(raw, str):
        return raw, []
    texts: list[str] = []
    images: list[ImagePart] = []
    for j, part in enumerate(raw):
        p = v.item_object(part, f'{param}[{j}]')
        kind = p.get('type')
        if kind in ('input_text', 'output_text', 'text'):
            texts.append(v.required_str(p, 'text', f'{param}[{j}].text'))
        elif kind == 'refusal':
            texts.append(v.required_str(p, 'refusal', f'{param}[{j}].refusal'))
        elif kind == 'input_image' and images_allowed:
            images.append(_image(p, f'{param}[{j}]'))
        elif kind == 'input_image':
            raise InvalidRequest(f"'{param}[{j}]': images are only allowed in user messages.", param=f'{param}[{j}]')
        else:
            raise InvalidRequest(f"'{param}[{j}].type' {kind!r} is not supported (input_text, output_text and "
                                 'input_image are).', param=f'{param}[{j}].type')
    return '\n'.join(texts), images


def _image(part: v.JsonObject, param: str) -> ImagePart:
    url = part.get('image_url')
    if not isinstance(url, str):
        raise InvalidRequest(f"'{param}.image_url' must be a data: URL or an http(s) URL (file_id is not "
                             'supported).', param=f'{param}.image_url')
    if url.startswith('data:'):
        return image_from_data_url(url, f'{param}.image_url')
    if url.startswith(('http://', 'https://')):
        return ImagePart(data='', media_type='', url=url, source=f'{param}.image_url')  # fetched before routing
    raise InvalidRequest(f"'{param}.image_url' must be a data: URL or an http(s) URL.", param=f'{param}.image_url')


def _output_text(output: str | list[Any]) -> str:
    if isinstance(output, str):
        return output
    return '\n'.join(p['text'] for p in output if isinstance(p, dict) and isinstance(p.get('text'), str))


def _tools(raw: object) -> list[dict[str, Any]]:
    """Function tools in the canonical (chat) shape; hosted and custom tools are left out (see above)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest("'tools' must be an array.", param='tools')
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        item = v.item_object(tool, f'tools[{i}]')
        if item.get('type') != 'function':
            continue
        fn: dict[str, Any] = {'name': v.required_str(item, 'name', f'tools[{i}].name')}
        description = v.optional_str(item, 'description', f'tools[{i}].description')
        if description is not None:
            fn['description'] = description
        parameters = v.optional_dict(item, 'parameters', f'tools[{i}].parameters')
        if parameters is not None:
            fn['parameters'] = parameters
        if item.get('strict') is not None:
            fn['strict'] = v.optional_bool(item, 'strict', f'tools[{i}].strict')
        tools.append({'type': 'function', 'function': fn})
    return tools


def _tool_choice(raw: object, tools: list[dict[str, Any]]) -> object:
    if raw is None or raw in ('none', 'auto', 'required'):
        return raw if tools else None  # a choice over hosted tools only means nothing to the engine
    if isinstance(raw, dict) and raw.get('type') == 'function':
        return {'type': 'function', 'function': {'name': v.required_str(raw, 'name', 'tool_choice.name')}}
    if isinstance(raw, dict):
        return 'auto' if tools else None  # a hosted tool's choice (web_search, ...): no engine can honour it
    raise InvalidRequest("'tool_choice' must be 'none', 'auto', 'required' or {type: function, name}.",
                         param='tool_choice')


def _text_format(text: v.JsonObject | None) -> dict[str, Any] | None:
    fmt = v.optional_dict(text, 'format', 'text.format') if text else None
    if fmt is None or fmt.get('type') == 'text':
        return None
    if fmt.get('type') == 'json_object':
        return {'type': 'json_object'}
    if fmt.get('type') == 'json_schema':
        check_schema(fmt.get('schema'), 'text.format.schema')
        spec = {'name': v.optional_str(fmt, 'name', 'text.format.name') or 'response', 'schema': fmt['schema']}
        if fmt.get('strict') is not None:
            spec['strict'] = v.optional_bool(fmt, 'strict', 'text.format.strict')
        return {'type': 'json_schema', 'json_schema': spec}
    raise InvalidRequest("'text.format.type' must be text, json_object or json_schema.", param='text.format.type')


def _metadata(d: v.JsonObject) -> dict[str, str] | None:
    metadata = v.optional_dict(d, 'metadata')
    if metadata is None:
        return None
    if len(metadata) > 16 or not all(isinstance(k, str) and len(k) <= 64 and isinstance(x, str) and len(x) <= 512
                                     for k, x in metadata.items()):
        raise InvalidRequest("'metadata' holds at most 16 string pairs (keys up to 64 characters, values up to "
                             '512).', param='metadata')
    return metadata


# ---------------------------------------------------------------- responses

def usage_body(usage: Usage, *, reasoning_chars: int = 0, text_chars: int = 0) -> dict[str, Any]:
    reasoning_tokens = 0
    if reasoning_chars:
        share = reasoning_chars / (reasoning_chars + text_chars)
        reasoning_tokens = min(usage.completion_tokens, round(usage.completion_tokens * share))
    return {'input_tokens': usage.prompt_tokens, 'input_tokens_details': {'cached_tokens': 0, 'cache_write_tokens': 0},
            'output_tokens': usage.completion_tokens, 'output_tokens_details': {'reasoning_tokens': reasoning_tokens},
            'total_tokens': usage.total_tokens}


def reasoning_item(item_id: str, text: str, *, status: str = 'completed') -> dict[str, Any]:
    return {'id': item_id, 'type': 'reasoning', 'summary': [{'type': 'summary_text', 'text': text}],
            'status': status}


def message_item(item_id: str, text: str, *, status: str = 'completed') -> dict[str, Any]:
    return {'id': item_id, 'type': 'message', 'role': 'assistant', 'status': status,
            'content': [{'type': 'output_text', 'text': text, 'annotations': [], 'logprobs': []}] if text or
            status == 'completed' else []}


def function_call_item(item_id: str, call: ToolCall, *, status: str = 'completed') -> dict[str, Any]:
    return {'id': item_id, 'type': 'function_call', 'call_id': call.id, 'name': call.name,
            'arguments': call.arguments, 'status': status}


def output_items(answer: ChatResponse, response_id: str) -> list[dict[str, Any]]:
    """The answer as output items: its reasoning, its text (always, unless it is only tool calls), its calls."""
    items: list[dict[str, Any]] = []
    if answer.reasoning:
        items.append(reasoning_item(f'rs_{response_id}', answer.reasoning))
    if answer.content or not answer.tool_calls:
        items.append(message_item(f'msg_{response_id}', answer.content))
    items += [function_call_item(f'fc_{response_id}_{k}', call) for k, call in enumerate(answer.tool_calls)]
    return items


def response_object(req: ResponsesRequest, *, response_id: str, created: int, model: str, status: str,
                    output: list[dict[str, Any]], usage: dict[str, Any] | None,
                    finish_reason: str | None = None, error: dict[str, Any] | None = None,
                    completed_at: int | None = None) -> dict[str, Any]:
    incomplete = {'reason': 'max_output_tokens'} if finish_reason == 'length' else None
    return {'id': response_id, 'object': 'response', 'created_at': created, 'status': status,
            'completed_at': completed_at, 'error': error, 'incomplete_details': incomplete, 'model': model,
            'output': output, 'usage': usage, **req.echo}


def render_response(answer: ChatResponse, req: ResponsesRequest, *, response_id: str, created: int,
                    completed_at: int) -> dict[str, Any]:
    """A whole `response` object; `incomplete` when the answer was cut by max_output_tokens."""
    return response_object(
        req, response_id=response_id, created=created, model=req.chat.model,
        status='incomplete' if answer.finish_reason == 'length' else 'completed',
        output=output_items(answer, response_id), finish_reason=answer.finish_reason, completed_at=completed_at,
        usage=usage_body(answer.usage, reasoning_chars=len(answer.reasoning or ''), text_chars=len(answer.content)))
