"""One chat answer from the API: `/v1/chat/completions`, streamed, called in-process as the user's web-console
key (core.runtime `api.stream`), so the request takes the API's own path: limits, fair-share queue, failover,
audit.

`stream_answer` reads the Server-Sent Events into a `Reply` and calls `progress` at most once per flush interval,
so a long answer costs the browser a few updates a second, not one per token. A Stop (the `stop` event) leaves the
`api.stream` block at once, whether the request is still queued or already streaming: the API app sees the
client go, cancels the engine request, and the reply keeps what had arrived, marked stopped. Errors end up in
`Reply.error` as one sentence for the user: the OpenAI error envelope of a refused request (429 limits, 404
model, 400 input), an error event in the stream, a stream that ended early.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.runtime import InferenceClient

log = logging.getLogger(__name__)

CHAT_PATH = '/v1/chat/completions'
FLUSH_SECONDS = 0.08


@dataclass(slots=True)
class Reply:
    """What has arrived of one answer."""

    _content: list[str] = field(default_factory=list)
    _reasoning: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_id: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    stopped: bool = False
    done: bool = False  # [DONE] arrived

    @property
    def content(self) -> str:
        if len(self._content) > 1:
            self._content[:] = [''.join(self._content)]
        return self._content[0] if self._content else ''

    @property
    def reasoning(self) -> str:
        if len(self._reasoning) > 1:
            self._reasoning[:] = [''.join(self._reasoning)]
        return self._reasoning[0] if self._reasoning else ''

    def take(self, payload: bytes) -> None:
        """One SSE `data:` payload."""
        if payload == b'[DONE]':
            self.done = True
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if 'error' in event:
            self.error = f'The answer failed: {error_message(event["error"])}'
            return
        usage = event.get('usage')
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get('prompt_tokens') or 0)
            self.completion_tokens = int(usage.get('completion_tokens') or 0)
        for choice in event.get('choices') or ():
            delta = choice.get('delta') or {}
            if delta.get('content'):
                self._content.append(delta['content'])
            thought = delta.get('reasoning_content') or delta.get('reasoning')
            if thought:
                self._reasoning.append(thought)
            if choice.get('finish_reason'):
                self.finish_reason = choice['finish_reason']


class SseData:
    """The `data:` payloads of an event stream, fed in chunks that may split lines anywhere."""

    def __init__(self) -> None:
        self._tail = b''

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._tail + chunk).split(b'\n')
        self._tail = lines.pop()
        return [line[5:].strip() for line in lines if line.startswith(b'data:')]


def error_message(error: Any) -> str:
    """The message of an OpenAI error object (or whatever else came)."""
    if isinstance(error, dict):
        return str(error.get('message') or error.get('type') or 'unknown error')
    return str(error)


def refusal(status: int, body: bytes, headers: dict[str, str]) -> str:
    """A refused request (HTTP status other than 200) as the user should read it."""
    try:
        message = error_message(orjson.loads(body).get('error'))
    except (orjson.JSONDecodeError, AttributeError):
        message = body.decode(errors='replace').strip()[:300] or 'no reason given'
    if status == 429:
        wait = headers.get('retry-after')
        later = f' Try again in {wait} s.' if wait and 'try again' not in message.lower() else ''
        return f'Limit reached: {message.rstrip(".")}.{later}'
    if status == 404:
        return f'Not found: {message}'
    if status in (400, 413, 422):
        return f'The request was refused: {message}'
    if status in (401, 403):
        return f'Not allowed: {message}'
    return f'The gateway could not answer (HTTP {status}): {message}'


async def stream_answer(api: InferenceClient, *, key_digest: str, body: dict[str, Any], reply: Reply,
                        progress: Callable[[], None], stop: asyncio.Event,
                        flush_seconds: float = FLUSH_SECONDS) -> None:
    """Stream one answer into `reply` until it ends, fails or `stop` is set."""
    reader = asyncio.create_task(_read(api, key_digest, body, reply, progress, flush_seconds))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not reader.done():  # stopped (or this task cancelled): leave the stream, which cancels the request
            reader.cancel()
            reply.stopped = True
            await asyncio.wait({reader})
    if reader.cancelled():
        return
    failure = reader.exception()
    if failure is not None:
        log.warning('chat request failed: %r', failure)
        reply.error = f'The gateway could not be reached: {failure}'
    elif reply.error is None and not reply.done and not reply.stopped:
        reply.error = 'The answer ended before it was complete.'


async def _read(api: InferenceClient, key_digest: str, body: dict[str, Any], reply: Reply,
                progress: Callable[[], None], flush_seconds: float) -> None:
    async with api.stream(key_digest=key_digest, path=CHAT_PATH, body=body) as response:
        reply.request_id = response.headers.get('x-request-id')
        if response.status != 200:
            reply.error = refusal(response.status, await response.read(), response.headers)
            return
        events = SseData()
        flushed = time.monotonic()
        async for chunk in response.chunks():
            for payload in events.feed(chunk):
                reply.take(payload)
            now = time.monotonic()
            if now - flushed >= flush_seconds:
                flushed = now
                try:
                    progress()
                except Exception:  # a closed tab must not end the answer: it is still saved
                    log.debug('chat progress not shown', exc_info=True)
