"""What the gateway needs from an engine's translator, and which translator speaks each engine."""

from __future__ import annotations

from typing import Any, Protocol

from core.translate.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from core.translate.streaming import StreamParser


class EngineAdapter(Protocol):
    def chat_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]: ...

    def embed_request(self, request: EmbeddingRequest) -> tuple[str, dict[str, Any]]: ...

    def parse_chat_response(self, body: dict[str, Any]) -> ChatResponse: ...

    def parse_embed_response(self, body: dict[str, Any], model: str) -> EmbeddingResponse: ...

    def stream_parser(self, request: ChatRequest) -> StreamParser: ...

    def error_message(self, status: int, body: bytes) -> str: ...
