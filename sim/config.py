"""The knobs of a fake engine. A running server reads them on every request, so changes apply at once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

Engine = Literal['ollama', 'vllm']
ENGINES: tuple[Engine, ...] = ('ollama', 'vllm')

# refuse: close the connection without answering; error_500: HTTP 500 in the engine's error format; hang: accept
# and never answer; die_mid_stream: emit `fault_after_tokens` tokens, then cut the connection.
FAULTS: tuple[str, ...] = ('refuse', 'error_500', 'hang', 'die_mid_stream')
# inference: only generation/embedding routes fail; all: every engine route too (health, model lists), so a
# health checker sees the fault as well. The /_sim control routes never fail.
FAULT_SCOPES: tuple[str, ...] = ('inference', 'all')

DEFAULT_MODELS: dict[Engine, list[str]] = {
    'ollama': ['llama3.2:latest', 'qwen3:0.6b', 'nomic-embed-text:latest'],
    'vllm': ['meta-llama/Llama-3.2-1B-Instruct'],
}
# Ollama runs a few requests at once (OLLAMA_NUM_PARALLEL); vLLM batches up to 256 sequences (--max-num-seqs).
DEFAULT_MAX_CONCURRENCY: dict[Engine, int] = {'ollama': 4, 'vllm': 256}
DEFAULT_VERSION: dict[Engine, str] = {'ollama': '0.12.0', 'vllm': '0.32.0'}


@dataclasses.dataclass
class SimConfig:
    """Knobs. `None` for models, max_concurrency and version means "the engine's default" (filled in by
    `resolved`). Times are milliseconds."""

    models: list[str] | None = None
    ttft_ms: float = 0.0  # delay before the first token (prompt processing), and an embedding's compute time
    token_delay_ms: float = 0.0  # delay between two tokens
    tokens: int = 20  # natural answer length; a smaller length limit in the request ends it with "length"
    max_concurrency: int | None = None  # requests generating at once; 0 = unlimited
    # Requests allowed to wait for a slot; one more is answered 503. None = unlimited (real Ollama: 512,
    # OLLAMA_MAX_QUEUE; real vLLM: unlimited). 0 = answer 503 as soon as every slot is busy.
    queue_limit: int | None = None
    fault: str | None = None
    fault_after_tokens: int = 3  # for die_mid_stream
    fault_rate: float = 1.0  # the share of requests (0..1, drawn per request) that get `fault`
    fault_scope: str = 'inference'
    embedding_dim: int = 16
    context_length: int = 8192  # vLLM max_model_len; Ollama <arch>.context_length and /api/ps context_length
    thinking_tokens: int = 8  # reasoning tokens before the answer when a thinking model is asked to think
    load_ms: float = 0.0  # Ollama: delay when a model is not loaded yet (reported as load_duration)
    version: str | None = None
    # Structured output (vLLM response_format, Ollama format) comes back as valid JSON that breaks the schema, so
    # that a gateway's output validation can be tested.
    schema_violation: bool = False
    # vLLM: started with --reasoning-parser (reasoning in message.reasoning / delta.reasoning). False: the
    # reasoning stays in the content, between <think> and </think>, as a server without the parser sends it.
    reasoning_parser: bool = True
    # The answer's text, as given, instead of the vocabulary answer (vLLM chat, Ollama chat and generate; structured
    # output and tool calls are unchanged): for tests of what a client does with a given answer. None: the vocabulary.
    reply: str | None = None
    # A scripted tool call, {"name": ..., "arguments": {...}}: a request offering a tool of that name, whose
    # conversation does not end with a tool result, calls it instead of following the weather rule; for tests of
    # what a client (a coding agent) does with a call of one of its own tools. None: the weather rule.
    tool_call: dict[str, Any] | None = None

    def resolved(self, engine: Engine) -> SimConfig:
        """A copy with the engine defaults filled in."""
        c = dataclasses.replace(self, models=list(self.models) if self.models is not None else None)
        if c.models is None:
            c.models = list(DEFAULT_MODELS[engine])
        if c.max_concurrency is None:
            c.max_concurrency = DEFAULT_MAX_CONCURRENCY[engine]
        if c.version is None:
            c.version = DEFAULT_VERSION[engine]
        c.validate()
        return c

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, values: Mapping[str, Any]) -> None:
        """Set knobs from a JSON-like mapping; raises ValueError (and changes nothing) on a bad key or value."""
        trial = dataclasses.replace(self)
        for key, value in values.items():
            if key not in _FIELD_NAMES:
                raise ValueError(f'unknown knob {key!r}')
            setattr(trial, key, _coerce(key, value))
        trial.validate()
        for key in values:
            setattr(self, key, getattr(trial, key))

    def validate(self) -> None:
        if self.models is not None and not all(isinstance(m, str) and m for m in self.models):
            raise ValueError('models must be a list of non-empty strings')
        for name in ('ttft_ms', 'token_delay_ms', 'load_ms'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0')
        for name in ('tokens', 'fault_after_tokens', 'thinking_tokens'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0')
        if self.embedding_dim < 1 or self.context_length < 1:
            raise ValueError('embedding_dim and context_length must be >= 1')
        if self.max_concurrency is not None and self.max_concurrency < 0:
            raise ValueError('max_concurrency must be >= 0 (0 = unlimited)')
        if self.queue_limit is not None and self.queue_limit < 0:
            raise ValueError('queue_limit must be >= 0')
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError('fault_rate must be between 0 and 1')
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f'fault must be one of {", ".join(FAULTS)} or null')
        if self.tool_call is not None and not (
                isinstance(self.tool_call.get('name'), str) and self.tool_call['name']
                and isinstance(self.tool_call.get('arguments', {}), dict)):
            raise ValueError('tool_call must be {"name": "<tool>", "arguments": {...}} or null')
        if self.fault_scope not in FAULT_SCOPES:
            raise ValueError(f'fault_scope must be one of {", ".join(FAULT_SCOPES)}')


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(SimConfig))
_FLOATS = frozenset({'ttft_ms', 'token_delay_ms', 'load_ms', 'fault_rate'})
_INTS = frozenset(
    {'tokens', 'fault_after_tokens', 'embedding_dim', 'context_length', 'thinking_tokens', 'max_concurrency'}
)
_OPTIONAL_INTS = frozenset({'queue_limit'})
_OPTIONAL_STRS = frozenset({'fault', 'version', 'reply'})
_BOOLS = frozenset({'schema_violation', 'reasoning_parser'})


def _coerce(key: str, value: Any) -> Any:
    """Accept what JSON (and a command line) naturally gives; reject anything ambiguous."""
    if key in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f'{key} must be a number')
        return float(value)
    if key in _INTS or key in _OPTIONAL_INTS:
        if value is None and key in _OPTIONAL_INTS:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'{key} must be an integer')
        return value
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise ValueError(f'{key} must be true or false')
        return value
    if key in _OPTIONAL_STRS:
        if value is None or value == '' or (key == 'fault' and value == 'none'):
            return None
        if not isinstance(value, str):
            raise ValueError(f'{key} must be a string or null')
        return value
    if key == 'tool_call':
        if value is None or isinstance(value, dict):
            return value
        raise ValueError('tool_call must be an object or null')
    if key == 'models':
        if isinstance(value, str):
            value = [m.strip() for m in value.split(',') if m.strip()]
        if not isinstance(value, list):
            raise ValueError('models must be a list of strings')
        return list(value)
    if key == 'fault_scope':
        if not isinstance(value, str):
            raise ValueError('fault_scope must be a string')
        return value
    raise ValueError(f'unknown knob {key!r}')  # pragma: no cover - every field is handled above
