"""The official client SDKs pointed at canned gateway bytes (a mock transport): what the encoders and
renderers produce must be read by the real clients, not just by our own idea of the format."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anthropic
import httpx
import httpx2
import ollama
import openai


def _transport2(body: bytes, media_type: str) -> httpx2.MockTransport:
    # the OpenAI and Anthropic SDKs run on httpx2 (a fork with httpx's API) and refuse httpx objects
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={'content-type': media_type}, content=body)

    return httpx2.MockTransport(handler)


@contextmanager
def openai_client(body: bytes, media_type: str = 'text/event-stream') -> Iterator[openai.OpenAI]:
    with httpx2.Client(transport=_transport2(body, media_type)) as http, \
            openai.OpenAI(api_key='k', base_url='http://gateway/v1', http_client=http, max_retries=0) as client:
        yield client


@contextmanager
def anthropic_client(body: bytes, media_type: str = 'text/event-stream') -> Iterator[anthropic.Anthropic]:
    with httpx2.Client(transport=_transport2(body, media_type)) as http, \
            anthropic.Anthropic(api_key='k', base_url='http://gateway/anthropic', http_client=http,
                                max_retries=0) as client:
        yield client


@contextmanager
def ollama_client(body: bytes, media_type: str = 'application/x-ndjson') -> Iterator[ollama.Client]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={'content-type': media_type}, content=body)

    client = ollama.Client(host='http://gateway', transport=httpx.MockTransport(handler))
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]
