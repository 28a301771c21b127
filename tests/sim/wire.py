"""Raw-wire helpers for the fake-engine tests: post a request, split an SSE or NDJSON body into objects."""

from __future__ import annotations

import json
from typing import Any

import httpx


def sse_chunks(raw: str) -> list[dict[str, Any]]:
    """The JSON chunks of an SSE body (every event `data: ...`, the last one `data: [DONE]`)."""
    events = [e for e in raw.split('\n\n') if e]
    assert all(e.startswith('data: ') for e in events), events
    assert events[-1] == 'data: [DONE]'
    return [json.loads(e[len('data: ') :]) for e in events[:-1]]


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `delta` of every chunk that has a choice, in order."""
    return [c['choices'][0]['delta'] for c in chunks if c['choices']]


def ndjson_lines(raw: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.splitlines() if line]


async def stream(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    """POST `body` and return the whole streamed body as text (after checking the status)."""
    async with http.stream('POST', path, json=body) as r:
        text = (await r.aread()).decode()
        assert r.status_code == 200, text
        return text
