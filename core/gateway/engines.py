"""What the gateway needs from an engine's translator, and which translator speaks each engine."""

from __future__ import annotations

from typing import Any, Protocol

from core.errors import InvalidRequest
from core.models import Engine
from core.translate import ollama_engine, vllm_engine
from core.translate.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from core.translate.streaming import StreamParser


class EngineAdapter(Protocol):
    def chat_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]: ...

    def embed_request(self, request: EmbeddingRequest) -> tuple[str, dict[str, Any]]: ...

    def parse_chat_response(self, body: dict[str, Any], req: ChatRequest) -> ChatResponse: ...

    def parse_embed_response(self, body: dict[str, Any], model: str) -> EmbeddingResponse: ...

    def stream_parser(self, req: ChatRequest) -> StreamParser: ...

    def error_message(self, status: int, body: bytes) -> str: ...


class OllamaAdapter:
    chat_request = staticmethod(ollama_engine.chat_request)
    embed_request = staticmethod(ollama_engine.embed_request)
    parse_chat_response = staticmethod(ollama_engine.parse_chat_response)
    parse_embed_response = staticmethod(ollama_engine.parse_embed_response)
    error_message = staticmethod(ollama_engine.error_message)
    stream_parser = staticmethod(ollama_engine.OllamaStreamParser)


class VllmAdapter:
    chat_request = staticmethod(vllm_engine.chat_request)
    embed_request = staticmethod(vllm_engine.embed_request)
    parse_chat_response = staticmethod(vllm_engine.parse_chat_response)
    parse_embed_response = staticmethod(vllm_engine.parse_embed_response)
    error_message = staticmethod(vllm_engine.error_message)
    stream_parser = staticmethod(vllm_engine.VllmStreamParser)


_ADAPTERS: dict[str, EngineAdapter] = {Engine.ollama: OllamaAdapter(), Engine.vllm: VllmAdapter()}


def adapter_for(engine: str) -> EngineAdapter:
    try:
        return _ADAPTERS[engine]
    except KeyError:
        raise InvalidRequest(f'no translator for engine {engine!r}') from None
