"""Pick a chat model: the models the cluster serves now that can chat (modality chat or multimodal), each with
what it can do (vision, tools, thinking) and its context length, as `/v1/models` describes them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nicegui import ui

from core.registry.families import modality

if TYPE_CHECKING:
    from core.registry.view import CatalogEntry

BADGES = (('vision', 'Vision', 'teal'), ('tools', 'Tools', 'indigo'), ('thinking', 'Thinking', 'purple'))
CHAT_MODALITIES = ('chat', 'multimodal')


@dataclass(frozen=True, slots=True)
class ChatModel:
    name: str
    capabilities: frozenset[str]
    context_length: int | None

    @property
    def vision(self) -> bool:
        return 'vision' in self.capabilities

    @property
    def thinking(self) -> bool:
        return 'thinking' in self.capabilities


def chat_models(entries: Iterable[CatalogEntry]) -> list[ChatModel]:
    """The chat-capable models of a registry catalog, by name."""
    out = []
    for entry in entries:
        info = entry.info
        capabilities = frozenset(info.capabilities)
        if modality(capabilities) in CHAT_MODALITIES:
            out.append(ChatModel(name=info.name, capabilities=capabilities, context_length=info.context_length))
    return sorted(out, key=lambda m: m.name.lower())


def context_words(tokens: int | None) -> str:
    if not tokens:
        return 'context unknown'
    return f'{tokens // 1024}k context' if tokens >= 1024 and tokens % 1024 == 0 else f'{tokens:,} tokens context'


class ModelPicker:
    """A select of the chat models with the chosen model's badges beside it. `on_change` gets the new model
    (None when the list is empty)."""

    def __init__(self, on_change: Callable[[ChatModel | None], Awaitable[None] | None]) -> None:
        self._models: dict[str, ChatModel] = {}
        self._on_change = on_change
        self._quiet = False
        with ui.row().classes('items-center gap-2 no-wrap min-w-0').mark('model-picker-row'):
            self.select = ui.select({}, label='Model', on_change=self._changed) \
                .props('dense outlined options-dense').classes('min-w-56 max-w-full').mark('model-picker')
            self.badges = ui.row().classes('items-center gap-1 wrap').mark('model-badges')

    @property
    def model(self) -> ChatModel | None:
        return self._models.get(self.select.value) if self.select.value else None

    def set_models(self, models: list[ChatModel], value: str | None) -> None:
        """Offer `models` and choose `value` (kept and shown as unavailable when the cluster no longer serves
        it, so a conversation's model is not silently swapped); no event is fired."""
        self._models = {m.name: m for m in models}
        options = {m.name: m.name for m in models}
        if value and value not in options:
            options[value] = f'{value} (not available now)'
        elif not value and models:
            value = models[0].name
        self._quiet = True
        try:
            self.select.set_options(options, value=value)
        finally:
            self._quiet = False
        self._show_badges()

    async def _changed(self) -> None:
        self._show_badges()
        if self._quiet:
            return
        result = self._on_change(self.model)
        if result is not None:
            await result

    def _show_badges(self) -> None:
        self.badges.clear()
        model = self.model
        with self.badges:
            if model is None:
                if self.select.value:
                    ui.badge('unavailable', color='negative').mark('badge-unavailable')
                return
            for capability, label, color in BADGES:
                if capability in model.capabilities:
                    ui.badge(label, color=color).props('outline').mark(f'badge-{capability}')
            ui.label(context_words(model.context_length)).classes('text-xs opacity-70').mark('model-context')
