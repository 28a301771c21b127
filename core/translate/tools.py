"""Tool definitions and tool-call bookkeeping every dialect shares, checked before a backend sees anything.

Engines answer a malformed tool schema with a template error, a 500, or silently ignore the tool; a tool
result that answers no call makes OpenAI-style chat templates fail. Both are caught here as a 400 naming the
parameter, in the caller's dialect.
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import InvalidRequest
from core.translate.canonical import Message
from core.translate.schema import check_schema

_TOOL_NAME = re.compile(r'^[A-Za-z0-9_.:-]{1,128}$')


def check_tools(tools: list[dict[str, Any]] | None, param: str, *, schema_key: str = 'function.parameters') -> None:
    """Tool names are unique and usable as identifiers; each parameter schema is a JSON Schema object.

    `tools` is in the canonical (OpenAI) shape; `schema_key` names the schema the way the client wrote it
    (Anthropic: `input_schema`) so the error points at the client's own field.
    """
    seen: set[str] = set()
    for i, tool in enumerate(tools or ()):
        fn = tool['function']
        name = fn['name']
        if not _TOOL_NAME.match(name):
            raise InvalidRequest(f"'{param}[{i}]' name {name!r} must be 1-128 letters, digits, '_', '-', '.' or ':'.",
                                 param=f'{param}[{i}]')
        if name in seen:
            raise InvalidRequest(f"'{param}[{i}]': two tools are named {name!r}.", param=f'{param}[{i}]')
        seen.add(name)
        schema = fn.get('parameters')
        if schema is not None:
            where = f'{param}[{i}].{schema_key}'
            check_schema(schema, where)
            kind = schema.get('type')
            if kind is not None and kind != 'object':
                raise InvalidRequest(f"'{where}' must describe an object (type: object), not {kind!r}.", param=where)


def check_tool_choice(tools: list[dict[str, Any]] | None, choice: object, param: str) -> None:
    """A choice that forces a tool needs tools, and a named one must be among them."""
    if choice in (None, 'auto', 'none'):
        return
    if not tools:
        raise InvalidRequest(f"'{param}' forces a tool call, but no tools were given.", param=param)
    if isinstance(choice, dict):
        name = (choice.get('function') or {}).get('name')
        if all(t['function']['name'] != name for t in tools):
            raise InvalidRequest(f"'{param}' names the tool {name!r}, which is not among the tools given.",
                                 param=param)


class ToolCallLedger:
    """The calls made so far in a conversation, so that each tool result can be checked against them."""

    __slots__ = ('_ids',)

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def called(self, message: Message) -> None:
        self._ids.update(call.id for call in message.tool_calls)

    def check_answer(self, call_id: str | None, param: str) -> None:
        if call_id is not None and call_id not in self._ids:
            raise InvalidRequest(f"'{param}' answers the tool call {call_id!r}, but no earlier assistant message "
                                 'made a call with that id.', param=param)

    def check(self, messages: list[Message], params: list[str]) -> None:
        """Walk a whole canonical conversation (`params[i]` names messages[i]'s id field for errors)."""
        for message, param in zip(messages, params, strict=True):
            if message.role == 'assistant':
                self.called(message)
            elif message.role == 'tool':
                self.check_answer(message.tool_call_id, param)
