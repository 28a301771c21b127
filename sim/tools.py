"""When the fake model calls tools, and with what: the deterministic tool-call rule both engines share.

The rule (part of the contract tests rely on, see sim/README.md):

* A request offering `tools` whose last user message mentions `weather` calls the first tool, once per city of
  `CITIES` that message mentions (case-insensitive, whole words, in order of first appearance, each city once),
  with arguments `{"location": <City>}`; no city mentioned -> one call for Paris.
* When the last message is a tool result (role `tool`), the model answers in text instead: a conversation that
  has just run the tools is done with them (otherwise a client looping on tool calls would never end).
* The `tool_call` knob scripts the call instead: a request offering a tool of that name calls it once, with the
  knob's arguments, whatever the user said (the result rule above still ends the loop).
* vLLM's `tool_choice` can force a call (`required`: the first tool; a named function: that tool) even without
  the trigger word and after a tool result, or forbid one (`none`). Ollama has no such field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sim.text import content_text

TOOL_TRIGGER_WORD = 'weather'
CITIES: tuple[str, ...] = ('Paris', 'Tokyo', 'London', 'Berlin')
DEFAULT_CITY = 'Paris'
TOOL_CALL_TOKENS = 10  # what one tool call "costs" in completion tokens

_CITY_RE = re.compile(r'\b(' + '|'.join(CITIES) + r')\b', re.IGNORECASE)
_CANONICAL = {c.lower(): c for c in CITIES}


class ToolCall:
    """One call the fake model makes: a tool name and its arguments (a JSON object)."""

    __slots__ = ('arguments', 'name')

    def __init__(self, name: str, arguments: dict[str, Any]) -> None:
        self.name = name
        self.arguments = arguments


def cities_in(text: str) -> list[str]:
    """The cities of `CITIES` that `text` mentions, each once, in order of first appearance."""
    seen: list[str] = []
    for match in _CITY_RE.finditer(text):
        city = _CANONICAL[match.group(1).lower()]
        if city not in seen:
            seen.append(city)
    return seen


def tool_names(tools: Any) -> list[str]:
    """The function names a `tools` list declares (entries that are not `{function: {name}}` are skipped)."""
    if not isinstance(tools, list):
        return []
    names: list[str] = []
    for tool in tools:
        function = tool.get('function') if isinstance(tool, Mapping) else None
        name = function.get('name') if isinstance(function, Mapping) else None
        if isinstance(name, str) and name:
            names.append(name)
    return names


def last_user_text(messages: Sequence[Any]) -> str:
    """The text of the last message with role `user` ('' when there is none)."""
    for m in reversed(messages):
        if isinstance(m, Mapping) and m.get('role') == 'user':
            return content_text(m.get('content'))
    return ''


def ends_with_tool_result(messages: Sequence[Any]) -> bool:
    last = messages[-1] if messages else None
    return isinstance(last, Mapping) and last.get('role') == 'tool'


def calls_for(name: str, messages: Sequence[Any]) -> list[ToolCall]:
    """Calls of tool `name`: one per city in the last user message, Paris when it names none."""
    cities = cities_in(last_user_text(messages)) or [DEFAULT_CITY]
    return [ToolCall(name, {'location': city}) for city in cities]


def auto_tool_calls(tools: Any, messages: Sequence[Any], scripted: Mapping[str, Any] | None = None) -> list[ToolCall]:
    """The calls the model decides to make on its own (`tool_choice` auto, and every Ollama request). A scripted
    call (the `tool_call` knob) replaces the weather rule when the request offers that tool."""
    names = tool_names(tools)
    if not names or ends_with_tool_result(messages):
        return []
    if scripted is not None and scripted['name'] in names:
        return [ToolCall(scripted['name'], dict(scripted.get('arguments') or {}))]
    if TOOL_TRIGGER_WORD not in last_user_text(messages).lower():
        return []
    return calls_for(names[0], messages)


_ARGUMENT_PIECE = re.compile(r'"(?:[^"\\]|\\.)*"?|[^"]+')


def argument_fragments(arguments: str) -> list[str]:
    """A call's JSON arguments as a streaming tool parser sends them: a few fragments (strings whole, the
    punctuation between them apart), at least two, that join back into the JSON text."""
    pieces = _ARGUMENT_PIECE.findall(arguments)
    if len(pieces) < 2:
        half = max(1, len(arguments) // 2)
        pieces = [arguments[:half], arguments[half:]]
    return pieces
