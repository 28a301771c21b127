"""Fake inference engines (Ollama, vLLM) speaking the real wire formats, with timing and fault knobs.

See sim/README.md. The public surface:

* `SimServer(engine, config)`: start()/stop() or `async with`; `.url`, `.config` (live knobs), `.stats`.
* `SimConfig`: the knobs; `SimStats`: the counters.
* `expected_text(seed_text, n)`, `expected_tokens`, `expected_thinking`, `chat_seed_text(messages)`,
  `count_prompt_tokens(texts)`, `embedding_vector(text, dim)`: predict what a fake answers.
"""

from sim.config import DEFAULT_MODELS, FAULTS, SimConfig
from sim.server import SimServer
from sim.stats import SimStats
from sim.text import (
    VOCABULARY,
    chat_seed_text,
    count_prompt_tokens,
    embedding_vector,
    expected_text,
    expected_thinking,
    expected_tokens,
)

__all__ = [
    'DEFAULT_MODELS',
    'FAULTS',
    'VOCABULARY',
    'SimConfig',
    'SimServer',
    'SimStats',
    'chat_seed_text',
    'count_prompt_tokens',
    'embedding_vector',
    'expected_text',
    'expected_thinking',
    'expected_tokens',
]
