"""What can go wrong reading an engine's answer, and the human message from an engine's error body."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import orjson

from core.translate.canonical import Delta


class EngineResponseError(Exception):
    """The engine's answer cannot be used (not the JSON shape its API promises)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineStreamError(EngineResponseError):
    """The engine reported an error in the middle of a stream (its HTTP status was already 200), or sent a
    line/event that cannot be read. The client gets its dialect's mid-stream error, never a clean ending.

    `deltas` holds what the same `feed()` call parsed before the error: send those first, then the error.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.deltas: list[Delta] = []


P = ParamSpec('P')
R = TypeVar('R')
SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError)  # what reading a wrong shape raises


def engine_shape(fn: Callable[P, R]) -> Callable[P, R]:
    """Readers of engine JSON index into it freely; a body of an unexpected shape becomes EngineResponseError
    (a 502 for the client) instead of an AttributeError deep in the gateway."""

    @functools.wraps(fn)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SHAPE_ERRORS as exc:
            raise EngineResponseError(f'The engine answered in an unexpected shape ({exc!r}).') from exc

    return checked


def error_text(status: int, body: bytes) -> str:
    """The message in an engine's error body, whichever shape: OpenAI/vLLM `{"error": {"message"}}`, older
    vLLM `{"object": "error", "message"}`, Ollama `{"error": "..."}`, FastAPI `{"detail": ...}`, or text."""
    try:
        obj = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        obj = None
    found = message_in(obj) if isinstance(obj, dict) else None
    if found:
        return found
    text = body.decode('utf-8', 'replace').strip()
    return text[:500] if text else f'The engine answered HTTP {status} with no message.'


def message_in(obj: dict[str, object]) -> str | None:
    error = obj.get('error')
    candidates = (error.get('message') if isinstance(error, dict) else error, obj.get('message'), obj.get('detail'))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
        if isinstance(candidate, list | dict) and candidate:
            return orjson.dumps(candidate).decode()[:500]
    return None
