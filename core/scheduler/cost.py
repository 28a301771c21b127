"""What a request is charged before it runs: its prompt, estimated at four characters a token (the usual
rule of thumb for English text with BPE vocabularies; a tokenizer per model would cost more CPU than the
precision is worth here), plus the completion it may produce: its `max_tokens`, or a site default. When it
ends, the scheduler corrects the charge with the engine's own usage figures."""

from __future__ import annotations

from core.translate.canonical import ChatRequest, EmbeddingRequest

CHARS_PER_TOKEN = 4


def chat_cost(request: ChatRequest, *, default_completion: int) -> int:
    chars = len(request.prompt) + len(request.system or '') + sum(len(m.content) for m in request.messages)
    return chars // CHARS_PER_TOKEN + (request.max_tokens or default_completion)


def embedding_cost(request: EmbeddingRequest) -> int:
    return max(1, sum(len(text) for text in request.inputs) // CHARS_PER_TOKEN)
