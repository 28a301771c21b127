"""Structured output: a deterministic JSON document that validates against a JSON Schema (or, on purpose, does not).

A real engine constrains decoding with a grammar compiled from the schema; the fake writes the "first" valid
document instead, so tests can validate what a gateway passes on without predicting every byte:

* object: every property in `properties` is filled (recursively), and every `required` name, even one without
  a `properties` entry; array: `minItems` items (at least one, at most `maxItems`) of `items` (or the
  `prefixItems`); string: `const` / first `enum` value, else a few vocabulary words (seeded by the property path,
  so fields differ) padded to `minLength` and cut to `maxLength`, or a fixed value for the common `format`s;
  integer / number: `minimum` (or just above `exclusiveMinimum`), else 0, kept within `maximum` and rounded up
  to `multipleOf`; boolean true; null null; `anyOf` / `oneOf`: the first branch; `allOf`: the branches merged;
  `$ref` to `#/$defs/...` or `#/definitions/...` resolved; a schema the fake does not understand: null.
* `pattern` is not honoured (a regex generator would be overkill for a fake).

`violating_document` is what the `schema_violation` knob sends: valid JSON that breaks the schema (so a gateway's
output validation can be tested).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from sim.text import expected_text

JSON_PIECE_CHARS = 8  # a structured answer streams as pieces of this many characters, one per token
_MAX_DEPTH = 24  # a recursive schema ($ref to itself) stops here with null
_TYPE_ORDER = ('object', 'array', 'string', 'integer', 'number', 'boolean', 'null')
_FORMATS: dict[str, str] = {
    'date-time': '2025-01-01T00:00:00Z',
    'date': '2025-01-01',
    'time': '00:00:00Z',
    'email': 'user@example.com',
    'uri': 'https://example.com/',
    'url': 'https://example.com/',
    'uuid': '00000000-0000-4000-8000-000000000000',
    'ipv4': '192.0.2.1',
    'ipv6': '2001:db8::1',
    'hostname': 'example.com',
}


# What a request constrains its answer to: any JSON object, a JSON Schema (the payload), or one of fixed strings.
Constraint = tuple[Literal['object', 'schema', 'choice'], Any]


def constrained_text(constraint: Constraint, seed: str, answer: str, violation: bool) -> str:
    """The answer text under `constraint`: a JSON document (`answer` is the plain answer a json_object wraps),
    or the first choice. `violation` (the schema_violation knob) breaks the constraint with valid JSON."""
    kind, payload = constraint
    if kind == 'choice':
        return str(payload)
    if kind == 'object':
        return dumps(violating_object() if violation else json_object_document(answer))
    return dumps(violating_document(payload, seed) if violation else schema_document(payload, seed))


def json_pieces(text: str) -> tuple[str, ...]:
    """A JSON text as the tokens a stream sends: pieces of `JSON_PIECE_CHARS` characters."""
    return tuple(text[i : i + JSON_PIECE_CHARS] for i in range(0, len(text), JSON_PIECE_CHARS)) or ('',)


def dumps(document: Any) -> str:
    """JSON text the way a model writes it under a grammar: `, ` and `: ` separators, UTF-8 as is."""
    return json.dumps(document, ensure_ascii=False)


def json_object_document(answer: str) -> dict[str, Any]:
    """The answer of a "any JSON object" request (vLLM `json_object`, Ollama `format: "json"`)."""
    return {'answer': answer}


def schema_document(schema: Any, seed: str) -> Any:
    """The deterministic document for `schema` (see the module docstring); `seed` varies the strings."""
    return _Generator(schema, seed).value(schema, '$', 0)


def violating_document(schema: Any, seed: str) -> Any:
    """Valid JSON that `schema` rejects, where one exists: `{}` for an object with required properties, else a
    value of a type the schema does not allow (a schema that accepts anything, such as `{}`, gets its valid
    document: nothing violates it)."""
    generator = _Generator(schema, seed)
    resolved = generator.resolve(schema, 0)
    if isinstance(resolved, Mapping):
        if _types(resolved)[:1] == ['object'] and resolved.get('required'):
            return {}
        allowed = generator.allowed_types(resolved, 0)
        if allowed is not None:
            for value, kinds in _WRONG_VALUES:
                if not kinds & allowed:
                    return value
        if 'enum' in resolved or 'const' in resolved:
            return {'not': 'one of the allowed values'}
    return generator.value(schema, '$', 0)


# Candidates for a wrong-typed value, with the JSON types each one satisfies.
_WRONG_VALUES: tuple[tuple[Any, frozenset[str]], ...] = (
    ('not what the schema asks for', frozenset({'string'})),
    (12345, frozenset({'integer', 'number'})),
    ({'unexpected': True}, frozenset({'object'})),
    ([12345], frozenset({'array'})),
    (True, frozenset({'boolean'})),
    (None, frozenset({'null'})),
)


def violating_object() -> list[Any]:
    """What `schema_violation` sends instead of a JSON object (json_object / `format: "json"`): valid JSON that
    is not an object."""
    return ['not', 'an', 'object']


def _types(schema: Mapping[str, Any]) -> list[str]:
    """The JSON types `schema` allows, in a fixed order, null last (or guessed from its keywords)."""
    declared = schema.get('type')
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        names = [t for t in declared if isinstance(t, str)]
        return sorted(names, key=lambda t: _TYPE_ORDER.index(t) if t in _TYPE_ORDER else len(_TYPE_ORDER))
    if 'properties' in schema or 'required' in schema or 'additionalProperties' in schema:
        return ['object']
    if 'items' in schema or 'prefixItems' in schema:
        return ['array']
    return []


class _Generator:
    """Walks a schema. `refs` are the `$ref`s being expanded on the current path (a branch that would enter one
    again is avoided when the `anyOf` / `oneOf` has another, so recursive schemas end); `offset` is the index of
    the array item being generated, so that sibling items differ (numbers step up, enums and booleans rotate)."""

    def __init__(self, root: Any, seed: str) -> None:
        self.root = root
        self.seed = seed

    def resolve(self, schema: Any, depth: int, refs: frozenset[str] = frozenset()) -> Any:
        """Follow `$ref`s and merge `allOf` (enough of both for what clients generate, e.g. pydantic)."""
        schema, _ = self._resolve(schema, depth, refs)
        return schema

    def _resolve(self, schema: Any, depth: int, refs: frozenset[str]) -> tuple[Any, frozenset[str]]:
        while isinstance(schema, Mapping) and isinstance(schema.get('$ref'), str) and depth < _MAX_DEPTH:
            ref = schema['$ref']
            refs = refs | {ref}
            target = self._pointer(ref)
            rest = {k: v for k, v in schema.items() if k != '$ref'}
            schema = {**target, **rest} if isinstance(target, Mapping) else target
            depth += 1
        if isinstance(schema, Mapping) and isinstance(schema.get('allOf'), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != 'allOf'}
            for part in schema['allOf']:
                part, refs = self._resolve(part, depth + 1, refs)
                if not isinstance(part, Mapping):
                    continue
                for key, value in part.items():
                    if key == 'properties' and isinstance(value, Mapping):
                        merged['properties'] = {**merged.get('properties', {}), **value}
                    elif key == 'required' and isinstance(value, list):
                        merged['required'] = [*merged.get('required', []), *value]
                    else:
                        merged.setdefault(key, value)
            schema = merged
        return schema, refs

    def allowed_types(self, schema: Any, depth: int) -> set[str] | None:
        """The JSON types `schema` admits at its top level, None when any type may do."""
        schema = self.resolve(schema, depth)
        if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
            return None
        for key in ('anyOf', 'oneOf'):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                union: set[str] = set()
                for branch in branches:
                    kinds = self.allowed_types(branch, depth + 1)
                    if kinds is None:
                        return None
                    union |= kinds
                return union
        types = _types(schema)
        return set(types) if types else None

    def _pointer(self, ref: str) -> Any:
        """A local JSON pointer (`#/$defs/Item`); anything else resolves to the empty (accept-all) schema."""
        if not ref.startswith('#'):
            return {}
        node: Any = self.root
        for part in ref[1:].split('/'):
            if not part:
                continue
            part = part.replace('~1', '/').replace('~0', '~')
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node

    def value(self, schema: Any, path: str, depth: int, offset: int = 0, refs: frozenset[str] = frozenset()) -> Any:
        if depth > _MAX_DEPTH:
            return None
        schema, refs = self._resolve(schema, depth, refs)
        if schema is True or not isinstance(schema, Mapping):
            return None
        if 'const' in schema:
            return schema['const']
        enum = schema.get('enum')
        if isinstance(enum, list) and enum:
            return enum[offset % len(enum)]
        for key in ('anyOf', 'oneOf'):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self.value(self._branch(branches, refs), path, depth + 1, offset, refs)
        types = _types(schema)
        kind = types[0] if types else None
        if kind == 'object':
            return self._object(schema, path, depth, offset, refs)
        if kind == 'array':
            return self._array(schema, path, depth, refs)
        if kind == 'string':
            return self._string(schema, path)
        if kind in ('integer', 'number'):
            return self._number(schema, kind == 'integer', offset)
        if kind == 'boolean':
            return offset % 2 == 0
        return None

    @staticmethod
    def _branch(branches: list[Any], refs: frozenset[str]) -> Any:
        """The first branch, unless it re-enters a `$ref` being expanded and another branch does not."""
        for branch in branches:
            ref = branch.get('$ref') if isinstance(branch, Mapping) else None
            if ref not in refs:
                return branch
        return branches[0]

    def _object(
        self, schema: Mapping[str, Any], path: str, depth: int, offset: int, refs: frozenset[str]
    ) -> dict[str, Any]:
        properties = schema.get('properties')
        properties = properties if isinstance(properties, Mapping) else {}
        out = {name: self.value(sub, f'{path}.{name}', depth + 1, offset, refs) for name, sub in properties.items()}
        required = schema.get('required')
        extra = schema.get('additionalProperties')
        sub = extra if isinstance(extra, Mapping) else {'type': 'string'}
        for name in required if isinstance(required, list) else ():
            if isinstance(name, str) and name not in out:
                out[name] = self.value(sub, f'{path}.{name}', depth + 1, offset, refs)
        minimum = schema.get('minProperties')
        if isinstance(minimum, int) and len(out) < minimum and extra is not False:
            for i in range(len(out), minimum):
                out[f'field_{i}'] = self.value(sub, f'{path}.field_{i}', depth + 1, offset, refs)
        return out

    def _array(self, schema: Mapping[str, Any], path: str, depth: int, refs: frozenset[str]) -> list[Any]:
        prefix = schema.get('prefixItems')
        prefix = prefix if isinstance(prefix, list) else []
        items = schema.get('items')
        if isinstance(items, list):  # draft-04..2019-09 tuple form
            prefix, items = items, schema.get('additionalItems')
        low = schema.get('minItems')
        count = max(low if isinstance(low, int) else 1, len(prefix), 1)
        high = schema.get('maxItems')
        if isinstance(high, int):
            count = min(count, high)
        rest = items if items is not None and items is not False else {}
        return [
            self.value(prefix[i] if i < len(prefix) else rest, f'{path}[{i}]', depth + 1, i, refs) for i in range(count)
        ]

    def _string(self, schema: Mapping[str, Any], path: str) -> str:
        fmt = schema.get('format')
        text = _FORMATS[fmt] if isinstance(fmt, str) and fmt in _FORMATS else expected_text(f'{self.seed}|{path}', 2)
        low = schema.get('minLength')
        if isinstance(low, int) and len(text) < low:
            words = expected_text(f'{self.seed}|{path}', low)  # enough words for any minLength (each >= 1 char)
            text = words[: max(low, len(text))]
            text = text if len(text) >= low else text + 'x' * (low - len(text))
        high = schema.get('maxLength')
        if isinstance(high, int) and len(text) > high:
            text = text[:high]
        return text

    @staticmethod
    def _number(schema: Mapping[str, Any], integer: bool, offset: int) -> int | float:
        """The smallest allowed value (0 when unbounded below), `offset` steps above it, kept within bounds."""
        value: float = 0
        low, exclusive_low = schema.get('minimum'), schema.get('exclusiveMinimum')
        if isinstance(exclusive_low, bool):  # draft-04: a flag that makes `minimum` exclusive
            exclusive_low = low if exclusive_low else None
            low = None if exclusive_low is not None else low
        if isinstance(low, int | float):
            value = low
        if isinstance(exclusive_low, int | float):
            value = exclusive_low + (1 if integer else 0.5)
        step = schema.get('multipleOf')
        step = step if isinstance(step, int | float) and not isinstance(step, bool) and step > 0 else None
        value += offset * (step or 1)
        if step is not None:
            value = -(-value // step) * step  # round up to a multiple
        high = schema.get('maximum')
        if isinstance(high, int | float) and value > high:
            value = high
        exclusive_high = schema.get('exclusiveMaximum')
        if isinstance(exclusive_high, int | float) and not isinstance(exclusive_high, bool) and value >= exclusive_high:
            value = exclusive_high - (1 if integer else 0.5)
        if integer:
            return int(-(-value // 1))
        return int(value) if float(value).is_integer() else value
