"""The OpenAPI description as the application really answers: errors in each path's dialect, and the bodies
of the inference routes.

FastAPI documents a 422 `{"detail": [...]}` for every route with parameters; this application answers invalid
input with 400 and every error in the caller's dialect (app/errors.py). So the description drops the 422, and
gives every operation a `default` response, the error envelope of its dialect: whatever error status a route
answers with, a client (or a fuzzer checking answers against the description) knows the body's shape.

The inference routes read their bodies themselves (the fast path, app/hotpath.py), so FastAPI sees no body to
describe: their main fields are described here, loosely (any other field is allowed, as the dialects allow), and
their answers as JSON or, with `stream: true`, the dialect's stream.
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
_TEXT_OR_LIST = {'anyOf': [{'type': 'string'}, {'type': 'array'}]}
_MESSAGES = {'type': 'array', 'items': {'type': 'object', 'required': ['role'], 'properties': {
    'role': {'type': 'string'}, 'content': {'anyOf': [{'type': 'string'}, {'type': 'array'}, {'type': 'null'}]}}}}
_MODEL = {'type': 'string'}


def _body(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {'type': 'object', 'required': required, 'properties': {'model': _MODEL, **properties}}


_SSE = 'text/event-stream'  # OpenAI and Anthropic streams
_NDJSON = 'application/x-ndjson'  # Ollama streams
_SSE_EVENT = {'type': 'object', 'properties': {'event': {'type': 'string'}, 'data': {'type': 'string'}}}
# path -> (request body schema, the media type of its stream or None when it has none)
INFERENCE_BODIES: dict[str, tuple[dict[str, Any], str | None]] = {
    '/v1/chat/completions': (_body(['model', 'messages'], messages=_MESSAGES, stream={'type': 'boolean'},
                                   max_tokens={'type': 'integer'}, temperature={'type': 'number'}), _SSE),
    '/v1/completions': (_body(['model', 'prompt'], prompt=_TEXT_OR_LIST, stream={'type': 'boolean'},
                              max_tokens={'type': 'integer'}), _SSE),
    '/v1/embeddings': (_body(['model', 'input'], input=_TEXT_OR_LIST), None),
    '/v1/rerank': (_body(['model', 'query', 'documents'], query={'type': 'string'},
                         documents={'type': 'array'}, top_n={'type': 'integer'}), None),
    '/v1/score': (_body(['model', 'text_1', 'text_2'], text_1=_TEXT_OR_LIST, text_2=_TEXT_OR_LIST), None),
    '/v1/responses': (_body(['model', 'input'], input=_TEXT_OR_LIST, instructions={'type': 'string'},
                            stream={'type': 'boolean'}, store={'type': 'boolean'},
                            previous_response_id={'type': 'string'}), _SSE),
    '/api/chat': (_body(['model', 'messages'], messages=_MESSAGES, stream={'type': 'boolean'},
                        options={'type': 'object'}), _NDJSON),
    '/api/generate': (_body(['model'], prompt={'type': 'string'}, stream={'type': 'boolean'},
                            options={'type': 'object'}), _NDJSON),
    '/api/embed': (_body(['model', 'input'], input=_TEXT_OR_LIST), None),
    '/api/embeddings': (_body(['model', 'prompt'], prompt={'type': 'string'}), None),
    '/api/show': (_body(['model']), None),
    '/anthropic/v1/messages': (_body(['model', 'messages', 'max_tokens'], messages=_MESSAGES, system=_TEXT_OR_LIST,
                                     max_tokens={'type': 'integer'}, stream={'type': 'boolean'}), _SSE),
    '/anthropic/v1/messages/count_tokens': (_body(['model', 'messages'], messages=_MESSAGES, system=_TEXT_OR_LIST),
                                            None),
}
INFERENCE_BODIES['/v1/messages'] = INFERENCE_BODIES['/anthropic/v1/messages']  # the root alias
INFERENCE_BODIES['/v1/messages/count_tokens'] = INFERENCE_BODIES['/anthropic/v1/messages/count_tokens']
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
            if method == 'post' and path in INFERENCE_BODIES and 'requestBody' not in operation:
                body, stream = INFERENCE_BODIES[path]
                operation['requestBody'] = {'required': True, 'content': {'application/json': {'schema': body}}}
                answers: dict[str, Any] = {'application/json': {'schema': {'type': 'object'}}}
                if stream is not None:  # a server-sent event's data, or an NDJSON line, is one JSON object
                    answers[stream] = {'schema': _SSE_EVENT if stream == _SSE else {'type': 'object'}}
                responses['200'] = {'description': 'The answer (with `stream: true`, the stream)', 'content': answers}
            envelope = {'schema': {'$ref': f'#/components/schemas/{name}'}}
            responses['default'] = {'description': _DESCRIPTIONS[dialect_for(path)],
                                    'content': {'application/json': envelope}}
    for unused in ('HTTPValidationError', 'ValidationError'):
        schemas.pop(unused, None)
    return schema
