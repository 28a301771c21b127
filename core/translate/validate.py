"""Field checks shared by the inbound parsers: each reads one value and names the parameter when it is wrong.

The client's JSON is validated once, here, so everything downstream can trust the canonical types. JSON
has no int/float split and Python's `bool` is an `int`, so numbers are checked explicitly: `true` is never
a temperature and `1.5` is never a token count.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidRequest

JsonObject = dict[str, Any]


def body_object(body: object) -> JsonObject:
    if not isinstance(body, dict):
        raise InvalidRequest('The request body must be a JSON object.')
    return body


def required_str(d: JsonObject, key: str, param: str | None = None) -> str:
    value = d.get(key)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{param or key}'.", param=param or key)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{param or key}' must be a string.", param=param or key)
    return value


def model_name(d: JsonObject) -> str:
    name = required_str(d, 'model')
    if not name.strip():
        raise InvalidRequest("'model' must not be empty.", param='model')
    return name


def optional_str(d: JsonObject, key: str, param: str | None = None) -> str | None:
    value = d.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(f"'{param or key}' must be a string.", param=param or key)


def optional_bool(d: JsonObject, key: str, param: str | None = None, *, default: bool | None = None) -> bool | None:
    value = d.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise InvalidRequest(f"'{param or key}' must be a boolean.", param=param or key)


def flag(d: JsonObject, key: str, param: str | None = None, *, default: bool) -> bool:
    """A boolean with a default: absent and `null` both mean the default (Ollama's stream defaults to true)."""
    value = optional_bool(d, key, param, default=default)
    return default if value is None else value


def optional_int(d: JsonObject, key: str, param: str | None = None, *,
                 minimum: int | None = None, maximum: int | None = None) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    name = param or key
    # 2.0 is accepted as 2: some clients serialise every number as a float
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{name}' must be an integer.", param=name)
    _check_range(name, value, minimum, maximum)
    return value


def optional_float(d: JsonObject, key: str, param: str | None = None, *,
                   minimum: float | None = None, maximum: float | None = None,
                   exclusive_minimum: bool = False) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    name = param or key
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"'{name}' must be a number.", param=name)
    if exclusive_minimum and minimum is not None and value <= minimum:
        raise InvalidRequest(f"'{name}' must be greater than {minimum}, got {value}.", param=name)
    _check_range(name, value, minimum, maximum)
    return float(value)


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"'{name}' must be >= {minimum}, got {value}.", param=name)
    if maximum is not None and value > maximum:
        raise InvalidRequest(f"'{name}' must be <= {maximum}, got {value}.", param=name)


def optional_dict(d: JsonObject, key: str, param: str | None = None) -> JsonObject | None:
    value = d.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise InvalidRequest(f"'{param or key}' must be an object.", param=param or key)


def optional_list(d: JsonObject, key: str, param: str | None = None) -> list[Any] | None:
    value = d.get(key)
    if value is None or isinstance(value, list):
        return value
    raise InvalidRequest(f"'{param or key}' must be an array.", param=param or key)


def required_list(d: JsonObject, key: str, param: str | None = None, *, non_empty: bool = True) -> list[Any]:
    name = param or key
    value = d.get(key)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)
    if not isinstance(value, list):
        raise InvalidRequest(f"'{name}' must be an array.", param=name)
    if non_empty and not value:
        raise InvalidRequest(f"'{name}' must not be empty.", param=name)
    return value


def item_object(value: object, param: str) -> JsonObject:
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{param}' must be an object.", param=param)
    return value


def stop_list(d: JsonObject, key: str, param: str | None = None) -> list[str] | None:
    """`stop` as a list: a string or an array of strings; an empty array means no stop strings."""
    value = d.get(key)
    name = param or key
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value) or None
    raise InvalidRequest(f"'{name}' must be a string or an array of strings.", param=name)


def string_list(d: JsonObject, key: str, param: str | None = None) -> list[str] | None:
    value = d.get(key)
    name = param or key
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise InvalidRequest(f"'{name}' must be an array of strings.", param=name)


def one_of(d: JsonObject, key: str, allowed: tuple[str, ...], param: str | None = None) -> str | None:
    value = optional_str(d, key, param)
    if value is None or value in allowed:
        return value
    name = param or key
    raise InvalidRequest(f"'{name}' must be one of {', '.join(allowed)}; got {value!r}.", param=name)


def function_tools(value: object, param: str = 'tools') -> list[JsonObject] | None:
    """OpenAI-shaped tool definitions ({type: function, function: {name, ...}}), checked and passed on as given."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidRequest(f"'{param}' must be an array.", param=param)
    for i, tool in enumerate(value):
        item = item_object(tool, f'{param}[{i}]')
        kind = item.get('type', 'function')
        if kind != 'function':
            raise InvalidRequest(f"'{param}[{i}].type' {kind!r} is not supported; only function tools are.",
                                 param=f'{param}[{i}].type')
        fn = item_object(item.get('function'), f'{param}[{i}].function')
        required_str(fn, 'name', f'{param}[{i}].function.name')
        optional_dict(fn, 'parameters', f'{param}[{i}].function.parameters')
    return value or None


def tool_choice(value: object, param: str = 'tool_choice') -> object:
    """OpenAI tool_choice: none | auto | required | {type: function, function: {name}}."""
    if value is None or value in ('none', 'auto', 'required'):
        return value
    if isinstance(value, dict) and value.get('type') == 'function':
        fn = item_object(value.get('function'), f'{param}.function')
        required_str(fn, 'name', f'{param}.function.name')
        return value
    raise InvalidRequest(f"'{param}' must be 'none', 'auto', 'required' or {{type: function, function: {{name}}}}.",
                         param=param)


def think_level(value: object, param: str, allowed: tuple[str, ...]) -> bool | str | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in allowed:
        return value
    raise InvalidRequest(f"'{param}' must be a boolean or one of {', '.join(allowed)}.", param=param)
