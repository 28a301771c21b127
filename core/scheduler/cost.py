"""What a request is charged before it runs: its prompt, estimated at four characters a token (the usual
rule of thumb for English text with BPE vocabularies; a tokenizer per model would cost more CPU than the
precision is worth here), plus the completion it may produce: its `max_tokens`, or a site default. When it
ends, the scheduler corrects the charge with the engine's own usage figures."""

from __future__ import annotations

from core.translate.canonical import ChatRequest, EmbeddingRequest

CHARS_PER_TOKEN = 4


def prompt_estimate(request: ChatRequest) -> int:
    """The prompt's tokens at four characters each (tool definitions and calls count too)."""
    chars = len(request.prompt) + len(request.system or '')
    for m in request.messages:
        chars += len(m.content) + 4  # the role and the template's separators
        for call in m.tool_calls:
            chars += len(call.name) + len(call.arguments)
    if request.tools:
        chars += sum(len(str(tool)) for tool in request.tools)
    return chars // CHARS_PER_TOKEN


def chat_cost(request: ChatRequest, *, default_completion: int) -> int:
    return prompt_estimate(request) + (request.max_tokens or default_completion)


def embedding_cost(request: EmbeddingRequest) -> int:
    return max(1, sum(len(text) for text in request.inputs) // CHARS_PER_TOKEN)


# Speech shares the fair-share clock with text, in token-equivalents: text read aloud at four characters a token
# (what the engine tokenizes it into), and audio at the 25 tokens a second Whisper's encoder-decoder spends on it
# (its 30-second window is 1,500 encoder positions, of which the decoder attends a fraction; an estimate of the
# work, not a count of output words).
AUDIO_TOKENS_PER_SECOND = 25


def speech_cost(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


def transcription_cost(seconds: float) -> int:
    return max(1, round(seconds * AUDIO_TOKENS_PER_SECOND))
