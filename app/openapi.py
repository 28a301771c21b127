"""The OpenAPI description as the application really answers: errors in each path's dialect.

FastAPI documents a 422 `{"detail": [...]}` for every route with parameters; this application answers invalid
input with 400 and every error in the caller's dialect (app/errors.py). So the description drops the 422, and
gives every operation a `default` response, the error envelope of its dialect: whatever error status a route
answers with, a client (or a fuzzer checking answers against the description) knows the body's shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import Dialect, dialect_for

_NULLABLE_STRING = {'anyOf': [{'type': 'string'}, {'type': 'null'}]}
ERROR_SCHEMAS: dict[Dialect, tuple[str, dict[str, Any]]] = {
    Dialect.openai: ('OpenAIError', {
        'type': 'object', 'required': ['error'], 'properties': {'error': {
            'type': 'object', 'required': ['message', 'type', 'param', 'code'],
            'properties': {'message': {'type': 'string'}, 'type': {'type': 'string'}, 'param': _NULLABLE_STRING,
                           'code': _NULLABLE_STRING}}}}),
    Dialect.anthropic: ('AnthropicError', {
        'type': 'object', 'required': ['type', 'error'], 'properties': {
            'type': {'const': 'error'},
            'error': {'type': 'object', 'required': ['type', 'message'],
                      'properties': {'type': {'type': 'string'}, 'message': {'type': 'string'}}}}}),
    Dialect.ollama: ('OllamaError', {
        'type': 'object', 'required': ['error'], 'properties': {'error': {'type': 'string', 'minLength': 1}}}),
}
_DESCRIPTIONS = {Dialect.openai: 'An error, in the OpenAI envelope', Dialect.anthropic:
                 'An error, in the Anthropic envelope', Dialect.ollama: 'An error, in the Ollama envelope'}
_HTTP_METHODS = frozenset({'get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'})


def install(app: FastAPI) -> None:
    """Serve the corrected description at /openapi.json (built once, on first use, as FastAPI does)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                                 description=app.description, routes=app.routes)
            app.openapi_schema = with_dialect_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema


def with_dialect_errors(schema: dict[str, Any]) -> dict[str, Any]:
    schemas = schema.setdefault('components', {}).setdefault('schemas', {})
    for path, operations in schema.get('paths', {}).items():
        name, body = ERROR_SCHEMAS[dialect_for(path)]
        schemas[name] = body
        for method, operation in operations.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault('responses', {})
            responses.pop('422', None)
            envelope = {'schema': {'$ref': f'#/components/schemas/{name}'}}
            responses['default'] = {'description': _DESCRIPTIONS[dialect_for(path)],
                                    'content': {'application/json': envelope}}
    for unused in ('HTTPValidationError', 'ValidationError'):
        schemas.pop(unused, None)
    return schema
