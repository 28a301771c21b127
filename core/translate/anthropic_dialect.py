"""Anthropic dialect (`/anthropic/v1/messages`): request bodies -> canonical, canonical answers -> `message`.

Streams are written by `core.translate.anthropic_stream`.

Choices made where Anthropic and the canonical model differ:
- `system` (a string or text blocks) becomes the first system message; blocks are joined by a newline.
- `role: "system"` turns inside `messages` (Claude Code sends its environment and reminders that way) are
  appended to that one leading system message, in order. Keeping them in place would be closer to the letter,
  but many chat templates (Mistral, Gemma, Llama's on vLLM, ...) refuse a system message after the first
  turn, or render it as user text; folded into the system prompt they keep their authority on every engine.
- Accepted and ignored, as open engines have nothing to honour them with: `cache_control` on any block,
  `context_management`, `metadata` other than `user_id`, `thinking.display`, a tool's `defer_loading` /
  `cache_control`, and the `anthropic-beta` header. Usage reports cache tokens as 0.
- A user turn's `tool_result` blocks become tool messages, placed before the rest of that turn (text and
  images, including images inside tool results), because OpenAI-style engines need tool answers right
  after the assistant's calls.
- Images: base64 and URL sources (URLs are fetched by the gateway behind an SSRF guard before routing).
- Server tools (web search, code execution, ...) and document blocks are rejected with a 400.
- `thinking` enabled or adaptive turns thinking on; `output_config.effort` (low ... max) becomes the thinking
  level, which core.gateway.shaping fits to the model (a level for gpt-oss, on/off for Qwen3-style models).
- `thinking.budget_tokens` is carried as the request's thinking budget (vLLM `thinking_token_budget`, a
  reasoning level for gpt-oss); thinking blocks come back with an empty `signature` (open models sign
  nothing), and replayed thinking becomes the turn's reasoning.
- `tool_choice.disable_parallel_tool_use` becomes `parallel_tool_calls: false`.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import InvalidRequest
from core.translate import validate as v
from core.translate.canonical import ChatRequest, ChatResponse, ImagePart, Kind, Message, ToolCall
from core.translate.content import IMAGE_FORMATS, arguments_object, sniff_image_type
from core.translate.ids import with_prefix
from core.translate.schema import check_schema
from core.translate.tools import ToolCallLedger, check_tool_choice, check_tools

__all__ = ['parse_messages', 'render_message', 'stop_reason', 'usage']

_IMAGE_TYPES = ('image/jpeg', 'image/png', 'image/gif', 'image/webp')
_EFFORTS = ('low', 'medium', 'high', 'xhigh', 'max')  # output_config.effort, the same names as THINK_LEVELS


# ---------------------------------------------------------------- requests

def parse_messages(body: object) -> ChatRequest:
    """`POST /anthropic/v1/messages` body -> ChatRequest (kind chat)."""
    d = v.body_object(body)
    req = ChatRequest(model=v.model_name(d), kind=Kind.chat)
    req.max_tokens = v.optional_int(d, 'max_tokens', minimum=1)
    if req.max_tokens is None:
        raise InvalidRequest("Missing required parameter: 'max_tokens'.", param='max_tokens')
    system = [_system(d.get('system'), 'system')]
    ledger = ToolCallLedger()
    for i, item in enumerate(v.required_list(d, 'messages')):
        if isinstance(item, dict) and item.get('role') == 'system':
            system.append(_system(item.get('content'), f'messages[{i}].content'))
        else:
            req.messages.extend(_turn(item, i, ledger))
    prompt = '\n\n'.join(text for text in system if text)
    if prompt:
        req.messages.insert(0, Message(role='system', content=prompt))
    req.stream = v.flag(d, 'stream', default=False)
    req.temperature = v.optional_float(d, 'temperature', minimum=0, maximum=1)
    req.top_p = v.optional_float(d, 'top_p', minimum=0, maximum=1)
    req.top_k = v.optional_int(d, 'top_k', minimum=0)
    req.stop = v.string_list(d, 'stop_sequences') or None
    metadata = v.optional_dict(d, 'metadata')
    if metadata is not None:
        req.user = v.optional_str(metadata, 'user_id', 'metadata.user_id')
    req.tools = _tools(d.get('tools'))
    check_tools(req.tools, 'tools', schema_key='input_schema')
    req.tool_choice = _tool_choice(d.get('tool_choice'))
    check_tool_choice(req.tools, req.tool_choice, 'tool_choice')
    choice = d.get('tool_choice')
    if isinstance(choice, dict) and v.optional_bool(choice, 'disable_parallel_tool_use',
                                                    'tool_choice.disable_parallel_tool_use'):
        req.parallel_tool_calls = False
    thinking = v.optional_dict(d, 'thinking')
    req.think = _thinking(thinking, _effort(d))
    if req.think and thinking is not None:
        req.think_budget = v.optional_int(thinking, 'budget_tokens', 'thinking.budget_tokens', minimum=1)
    req.response_format = _output_format(d)
    return req


def _system(raw: object, param: str) -> str:
    if raw is None or isinstance(raw, str):
        return raw or ''
    if isinstance(raw, list):
        texts = []
        for i, block in enumerate(raw):
            b = v.item_object(block, f'{param}[{i}]')
            if b.get('type') != 'text':
                raise InvalidRequest(f"'{param}[{i}].type' must be text.", param=f'{param}[{i}].type')
            texts.append(v.required_str(b, 'text', f'{param}[{i}].text'))
        return '\n'.join(texts)
    raise InvalidRequest(f"'{param}' must be a string or an array of text blocks.", param=param)


def _turn(raw: object, i: int, ledger: ToolCallLedger) -> list[Message]:
    """One Anthropic message -> one or more canonical messages (tool results split out)."""
    param = f'messages[{i}]'
    m = v.item_object(raw, param)
    role = v.required_str(m, 'role', f'{param}.role')
    if role not in ('user', 'assistant'):
        raise InvalidRequest(f"'{param}.role' must be user or assistant; got {role!r}.", param=f'{param}.role')
    content = m.get('content')
    if isinstance(content, str):
        return [Message(role=role, content=content)]
    if not isinstance(content, list):
        raise InvalidRequest(f"'{param}.content' must be a string or an array of content blocks.",
                             param=f'{param}.content')
    texts: list[str] = []
    images: list[ImagePart] = []
    tool_messages: list[Message] = []
    message = Message(role=role)
    for j, block in enumerate(content):
        p = f'{param}.content[{j}]'
        b = v.item_object(block, p)
        kind = b.get('type')
        if kind == 'text':
            texts.append(v.required_str(b, 'text', f'{p}.text'))
        elif kind == 'image' and role == 'user':
            images.append(_image(b, p))
        elif kind == 'tool_use' and role == 'assistant':
            tool_input = v.optional_dict(b, 'input', f'{p}.input') or {}
            message.tool_calls.append(ToolCall(id=v.required_str(b, 'id', f'{p}.id'),
                                               name=v.required_str(b, 'name', f'{p}.name'),
                                               arguments=orjson.dumps(tool_input).decode()))
        elif kind == 'tool_result' and role == 'user':
            text, result_images = _tool_result_content(b.get('content'), f'{p}.content')
            call_id = v.required_str(b, 'tool_use_id', f'{p}.tool_use_id')
            ledger.check_answer(call_id, f'{p}.tool_use_id')
            tool_messages.append(Message(role='tool', content=text, tool_call_id=call_id))
            images.extend(result_images)
        elif kind == 'thinking' and role == 'assistant':
            message.reasoning = (message.reasoning or '') + v.required_str(b, 'thinking', f'{p}.thinking')
        elif kind == 'redacted_thinking' and role == 'assistant':
            continue  # encrypted by another provider: nothing an open model can read
        else:
            raise InvalidRequest(f"'{p}.type' {kind!r} is not supported in a {role} message.", param=f'{p}.type')
    message.content = '\n'.join(texts)
    message.images = images
    ledger.called(message)
    keep = bool(message.content or message.images or message.tool_calls or message.reasoning or not tool_messages)
    return tool_messages + ([message] if keep else [])


def _tool_result_content(raw: object, param: str) -> tuple[str, list[ImagePart]]:
    if raw is None or isinstance(raw, str):
        return raw or '', []
    if not isinstance(raw, list):
        raise InvalidRequest(f"'{param}' must be a string or an array of blocks.", param=param)
    texts: list[str] = []
    images: list[ImagePart] = []
    for k, block in enumerate(raw):
        b = v.item_object(block, f'{param}[{k}]')
        if b.get('type') == 'text':
            texts.append(v.required_str(b, 'text', f'{param}[{k}].text'))
        elif b.get('type') == 'image':
            images.append(_image(b, f'{param}[{k}]'))
        else:
            raise InvalidRequest(f"'{param}[{k}].type' must be text or image.", param=f'{param}[{k}].type')
    return '\n'.join(texts), images


def _image(block: v.JsonObject, param: str) -> ImagePart:
    source = v.item_object(block.get('source'), f'{param}.source')
    if source.get('type') == 'url':
        url = v.required_str(source, 'url', f'{param}.source.url')
        if not url.startswith(('http://', 'https://')):
            raise InvalidRequest(f"'{param}.source.url' must be an http(s) URL.", param=f'{param}.source.url')
        return ImagePart(data='', media_type='', url=url, source=f'{param}.source.url')  # fetched before routing
    if source.get('type') != 'base64':
        raise InvalidRequest(f"'{param}.source.type' must be base64 or url.", param=f'{param}.source.type')
    data = v.required_str(source, 'data', f'{param}.source.data').strip()
    media_type = v.one_of(source, 'media_type', _IMAGE_TYPES, f'{param}.source.media_type')
    sniffed = sniff_image_type(data)
    if sniffed is None or not data:
        raise InvalidRequest(f"'{param}.source.data' is not a base64 image ({IMAGE_FORMATS}).",
                             param=f'{param}.source.data')
    return ImagePart(data=data, media_type=media_type or sniffed, source=f'{param}.source.data')


def _tools(raw: object) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidRequest("'tools' must be an array.", param='tools')
    tools = []
    for i, item in enumerate(raw):
        t = v.item_object(item, f'tools[{i}]')
        if t.get('type') not in (None, 'custom'):
            raise InvalidRequest(f"'tools[{i}].type' {t.get('type')!r}: server tools are not supported; "
                                 'define the tool with name, description and input_schema.', param=f'tools[{i}].type')
        fn: dict[str, Any] = {'name': v.required_str(t, 'name', f'tools[{i}].name')}
        description = v.optional_str(t, 'description', f'tools[{i}].description')
        if description is not None:
            fn['description'] = description
        schema = v.optional_dict(t, 'input_schema', f'tools[{i}].input_schema')
        if schema is None:
            raise InvalidRequest(f"Missing required parameter: 'tools[{i}].input_schema'.",
                                 param=f'tools[{i}].input_schema')
        fn['parameters'] = schema
        tools.append({'type': 'function', 'function': fn})
    return tools or None


def _tool_choice(raw: object) -> object:
    if raw is None:
        return None
    choice = v.item_object(raw, 'tool_choice')
    kind = choice.get('type')
    if kind in ('auto', 'none'):
        return kind
    if kind == 'any':
        return 'required'
    if kind == 'tool':
        return {'type': 'function', 'function': {'name': v.required_str(choice, 'name', 'tool_choice.name')}}
    raise InvalidRequest("'tool_choice.type' must be auto, any, tool or none.", param='tool_choice.type')


def _thinking(raw: v.JsonObject | None, effort: str | None) -> bool | str | None:
    """On, off or a level. An effort without `thinking` still says how hard the model should think."""
    kind = raw.get('type') if raw is not None else None
    if kind == 'disabled':
        return False
    if raw is not None and kind not in ('enabled', 'adaptive'):
        raise InvalidRequest("'thinking.type' must be enabled, adaptive or disabled.", param='thinking.type')
    if effort is not None:
        return effort
    return True if raw is not None else None


def _effort(d: v.JsonObject) -> str | None:
    config = v.optional_dict(d, 'output_config')
    if config is None:
        return None
    effort = v.one_of(config, 'effort', _EFFORTS, 'output_config.effort')
    return effort or None


def _output_format(d: v.JsonObject) -> dict[str, Any] | None:
    """Structured output: `output_format` (beta) or `output_config.format`, both {type: json_schema, schema}."""
    param = 'output_format'
    fmt = v.optional_dict(d, 'output_format')
    if fmt is None:
        config = v.optional_dict(d, 'output_config')
        fmt = v.optional_dict(config, 'format', 'output_config.format') if config else None
        param = 'output_config.format'
    if fmt is None:
        return None
    if fmt.get('type') != 'json_schema' or not isinstance(fmt.get('schema'), dict):
        raise InvalidRequest(f"'{param}' must be {{type: json_schema, schema: {{...}}}}.", param=param)
    check_schema(fmt['schema'], f'{param}.schema')
    return {'type': 'json_schema', 'json_schema': {'name': fmt.get('name') or 'response', 'schema': fmt['schema']}}


# ---------------------------------------------------------------- responses

def stop_reason(finish_reason: str, stop_sequence: str | None) -> str:
    if finish_reason == 'length':
        return 'max_tokens'
    if finish_reason == 'tool_calls':
        return 'tool_use'
    return 'stop_sequence' if stop_sequence else 'end_turn'


def render_message(resp: ChatResponse, *, request_id: str, model: str) -> dict[str, Any]:
    """A `message` object: thinking?, text, tool_use blocks in that order; at least one block."""
    content: list[dict[str, Any]] = []
    if resp.reasoning:
        content.append({'type': 'thinking', 'thinking': resp.reasoning, 'signature': ''})
    if resp.content or not resp.tool_calls:
        content.append({'type': 'text', 'text': resp.content})
    content.extend({'type': 'tool_use', 'id': c.id, 'name': c.name, 'input': arguments_object(c.arguments)}
                   for c in resp.tool_calls)
    reason = stop_reason(resp.finish_reason, resp.stop_sequence)
    return {
        'id': with_prefix('msg_', request_id),
        'type': 'message',
        'role': 'assistant',
        'model': model,
        'content': content,
        'stop_reason': reason,
        'stop_sequence': resp.stop_sequence if reason == 'stop_sequence' else None,
        'usage': usage(resp.usage.prompt_tokens, resp.usage.completion_tokens),
    }


def usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    """Anthropic usage; open engines keep no prompt cache a client can address, so its counts are 0."""
    return {'input_tokens': input_tokens, 'output_tokens': output_tokens,
            'cache_creation_input_tokens': 0, 'cache_read_input_tokens': 0}
