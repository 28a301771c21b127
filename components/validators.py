"""Inline checks for console form fields (`ui.input(validation=...)`): each returns the message to show, or None."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit


def required(limit: int) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        if not (value or '').strip():
            return 'Required'
        return f'At most {limit} characters' if len(value or '') > limit else None
    return check


def http_url(example: str) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        parts = urlsplit((value or '').strip())
        return None if parts.scheme in {'http', 'https'} and parts.netloc else f'An http(s) URL like {example}'
    return check
