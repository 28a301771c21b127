"""The request as one backend gets it: what the client asked for, fitted to the model that will answer.

- Thinking: the client's wish (any dialect's) becomes what this model's family understands
  (core.registry.families.Reasoning). The site default is thinking off unless asked, except for models that
  always reason (they cannot be switched off, so nothing is sent).
- Context: the prompt must fit the model's context, and a client's max_tokens is capped so that prompt +
  answer fit (an engine would refuse the request otherwise, or Ollama would silently shift the context).
- Ollama's num_ctx: every request names the model's (capped) context, so one model loads once, at a size an
  operator chose.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.errors import InvalidRequest
from core.models import Engine
from core.registry.families import Reasoning, reasoning_of
from core.registry.view import BackendState, ModelInfo
from core.translate.canonical import ChatRequest


@dataclass(slots=True, frozen=True)
class PromptSize:
    """A prompt's length in tokens: `counted` by the model's own tokenizer, or estimated (chars / 4)."""

    tokens: int
    counted: bool = False

    @property
    def margin(self) -> int:
        """Room kept free when capping max_tokens: an estimate can be short by a quarter (code, other scripts)."""
        return 0 if self.counted else self.tokens // 4 + 32


# Anthropic-style budgets mapped to gpt-oss levels (tokens of thinking up to which each level is the fit)
_BUDGET_LEVELS = ((4096, 'low'), (16384, 'medium'))


def shape_for_backend(request: ChatRequest, backend: BackendState, *, context_cap: int, override_num_ctx: bool,
                      prompt: PromptSize | None = None) -> ChatRequest:
    info = backend.models.get(request.model)
    if info is None:
        return request
    changes: dict[str, object] = {}
    think, budget = thinking_for(request.think, request.think_budget, reasoning_of(info.name, info.capabilities))
    if (think, budget) != (request.think, request.think_budget):
        changes.update(think=think, think_budget=budget)
    context = _context(info, backend.engine, context_cap)
    if context is not None and prompt is not None:
        max_tokens = fit_max_tokens(request.model, prompt, request.max_tokens, context)
        if max_tokens != request.max_tokens:
            changes['max_tokens'] = max_tokens
    if backend.engine == Engine.ollama and context is not None and (
            override_num_ctx or 'num_ctx' not in request.backend_options):
        changes['backend_options'] = {**request.backend_options, 'num_ctx': context}
    return replace(request, **changes) if changes else request  # type: ignore[arg-type]


def thinking_for(think: bool | str | None, budget: int | None, style: Reasoning
                 ) -> tuple[bool | str | None, int | None]:
    """(think, budget) as a model of this reasoning style takes them."""
    if style in (Reasoning.none, Reasoning.always):
        return None, None  # nothing to switch: a request to think (or not) cannot change what the model does
    if style is Reasoning.toggle:
        if think is None:
            return False, None  # the site default: no thinking unless asked
        return bool(think), budget if think else None
    # effort (gpt-oss): always reasons; the lowest level is as close to "off" as it gets
    if think is False:
        return 'low', None
    if isinstance(think, str):
        return think, None
    if budget is not None:
        return next((level for limit, level in _BUDGET_LEVELS if budget <= limit), 'high'), None
    return None, None


def fit_max_tokens(model: str, prompt: PromptSize, max_tokens: int | None, context: int) -> int | None:
    """The client's max_tokens, capped to what the context leaves; 400 when the prompt alone does not fit."""
    if prompt.tokens >= context:
        size = f'{prompt.tokens}' if prompt.counted else f'about {prompt.tokens}'
        raise InvalidRequest(f'The prompt is {size} tokens, but {model} takes at most {context} tokens '
                             '(prompt and answer together). Shorten the conversation.', param='messages')
    room = max(1, context - prompt.tokens - prompt.margin)
    if max_tokens is not None and max_tokens > room:
        return room
    return max_tokens


def _context(info: ModelInfo, engine: str, cap: int) -> int | None:
    # Ollama runs a model at the num_ctx it is sent (capped); vLLM at its own max_model_len
    return info.effective_context(cap) if engine == Engine.ollama else info.context_length
