"""JSON Schemas from clients: checked before anything is sent, and used to validate the model's output.

A schema arrives in `response_format.json_schema.schema` (OpenAI), `format` (Ollama), `output_format`
(Anthropic) or as a tool's parameters. One that is not a valid JSON Schema is the client's mistake: a 400
naming the parameter, rather than an engine error (or, worse, unconstrained output) later. Validators are
compiled once per distinct schema and kept (agents send the same few schemas over and over).
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from jsonschema import SchemaError, validators
from jsonschema.protocols import Validator

from core.errors import InvalidRequest
from core.translate.canonical import ChatRequest, ToolCall

_CACHE_SIZE = 256


def check_schema(schema: object, param: str) -> None:
    """400 naming `param` unless `schema` is a JSON Schema (an object, valid against its metaschema)."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"'{param}' must be a JSON Schema object.", param=param)
    try:
        _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    except SchemaError as exc:
        where = '/'.join(str(p) for p in exc.path)
        raise InvalidRequest(f"'{param}' is not a valid JSON Schema: {exc.message}"
                             + (f' (at {where})' if where else ''), param=param) from None


def conforms(document: str, schema: dict[str, Any] | None) -> bool:
    """Whether `document` is JSON that satisfies `schema` (None: any JSON object, as json_object asks)."""
    try:
        value = orjson.loads(document)
    except orjson.JSONDecodeError:
        return False
    if schema is None:
        return isinstance(value, dict)
    try:
        validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    except SchemaError:
        return False
    return bool(validator.is_valid(value))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _validator(schema_json: bytes) -> Validator:
    schema = orjson.loads(schema_json)
    cls = validators.validator_for(schema)  # honours $schema; Draft 2020-12 when it is absent
    cls.check_schema(schema)
    validator: Validator = cls(schema)
    return validator


def answer_conforms(request: ChatRequest, content: str, calls: list[ToolCall]) -> bool | None:
    """Whether a structured answer is what the client's schema asked for; None when it asked for none.

    Structured output is checked on the content; a forced tool (Anthropic's way to get JSON) on the
    arguments of the call it forced.
    """
    fmt = request.response_format
    if fmt is not None:
        if fmt.get('type') == 'json_object':
            return conforms(content, None)
        return conforms(content, (fmt.get('json_schema') or {}).get('schema') or {})
    forced = request.forced_tool()
    if forced is None:
        return None
    name = forced['function']['name']
    call = next((c for c in calls if c.name == name), None)
    return call is not None and conforms(call.arguments, forced['function'].get('parameters') or {'type': 'object'})
