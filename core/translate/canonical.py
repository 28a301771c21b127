"""The one request/response model in the middle of the gateway.

Every client dialect (OpenAI, Ollama, Anthropic) is parsed into these types, and every engine (Ollama,
vLLM) is spoken from them; streams flow through as `Delta`s, one per backend chunk, never buffered.
Plain slotted dataclasses: built once per request or chunk, no validation cost on the hot path
(inbound translators validate the client's JSON once, up front).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    chat = 'chat'  # messages in, a message out
    completion = 'completion'  # a raw prompt in, text out (/v1/completions, /api/generate)


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI carries it; Ollama and Anthropic want objects (translators convert)


@dataclass(slots=True)
class ImagePart:
    data: str  # base64, no data: prefix; empty until a `url` image is fetched (core.gateway.image_fetch)
    media_type: str = 'image/png'
    url: str | None = None  # an http(s) image the gateway fetches before the request goes anywhere
    source: str = field(default='', compare=False)  # where the client put it ('messages[0].content[1]'), for errors


@dataclass(slots=True)
class Message:
    role: str  # system | user | assistant | tool
    content: str = ''
    images: list[ImagePart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # role == tool: which call this answers
    name: str | None = None  # role == tool: the tool's name when known
    reasoning: str | None = None  # assistant turns replayed with their thinking


@dataclass(slots=True)
class ChatRequest:
    """What the client asked for, dialect-free. `kind` says whether `messages` or `prompt` carries it."""

    model: str
    kind: Kind = Kind.chat
    messages: list[Message] = field(default_factory=list)
    prompt: str = ''  # kind == completion
    system: str | None = None  # kind == completion: Ollama generate's `system`
    suffix: str | None = None
    stream: bool = False
    include_usage: bool = False  # OpenAI stream_options.include_usage: send the usage chunk to the client
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI shape: {type: function, function: {name, ...}}
    tool_choice: Any = None  # OpenAI shape: "auto" | "none" | "required" | {type: function, function: {name}}
    response_format: dict[str, Any] | None = None  # OpenAI: {type: json_object} | {type: json_schema, ...}
    think: bool | str | None = None  # None: the client did not say
    think_budget: int | None = None  # Anthropic thinking.budget_tokens: the most reasoning tokens wanted
    parallel_tool_calls: bool | None = None  # None: the engine's default (parallel allowed)
    backend_options: dict[str, Any] = field(default_factory=dict)  # Ollama options with no canonical field
    keep_alive: str | int | None = None
    user: str | None = None
    request_id: str = ''  # the gateway's id: engines that give tool calls no id get ids made from it

    @property
    def has_images(self) -> bool:
        return any(m.images for m in self.messages)

    def forced_tool(self) -> dict[str, Any] | None:
        """The tool definition the model must call: a named tool_choice, or "required" with one tool."""
        if not self.tools:
            return None
        if self.tool_choice == 'required' and len(self.tools) == 1:
            return self.tools[0]
        if isinstance(self.tool_choice, dict):
            name = (self.tool_choice.get('function') or {}).get('name')
            return next((t for t in self.tools if t['function']['name'] == name), None)
        return None


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]
    dimensions: int | None = None
    truncate: bool | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    encoding_format: str = 'float'  # float | base64: how the client wants the vectors (OpenAI dialect only)


@dataclass(slots=True)
class RerankRequest:
    """vLLM's /v1/rerank: score each document against the query, best first."""

    model: str
    query: str
    documents: list[str]
    top_n: int | None = None  # None: every document
    return_documents: bool = True
    truncate_prompt_tokens: int | None = None


@dataclass(slots=True)
class RerankResult:
    index: int
    relevance_score: float


@dataclass(slots=True)
class RerankResponse:
    model: str
    results: list[RerankResult]  # best first
    total_tokens: int = 0


@dataclass(slots=True)
class ScoreRequest:
    """vLLM's /v1/score: one text_1 against many text_2 (1:N), or pairwise (N:N)."""

    model: str
    text_1: list[str]
    text_2: list[str]
    truncate_prompt_tokens: int | None = None


@dataclass(slots=True)
class ScoreResponse:
    model: str
    scores: list[float]  # one per pair, in order
    prompt_tokens: int = 0


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class ChatResponse:
    """A whole answer (non-streaming), dialect-free."""

    model: str
    content: str = ''
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = 'stop'  # stop | length | tool_calls
    usage: Usage = field(default_factory=Usage)
    stop_sequence: str | None = None  # the client stop string that ended the answer, when the engine says


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ''  # a fragment of the JSON text


@dataclass(slots=True)
class Delta:
    """One step of a streamed answer. Fields that did not change are empty/None."""

    content: str = ''
    reasoning: str = ''
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: str | None = None  # set on the last content-bearing delta
    usage: Usage | None = None  # set when the engine reports token counts (usually last)
    stop_sequence: str | None = None  # with finish_reason: the client stop string that matched, when known


@dataclass(slots=True)
class EmbeddingResponse:
    model: str
    embeddings: list[list[float]]
    prompt_tokens: int = 0
