"""The conversation's settings dialog: its system prompt and temperature (empty: the model's default)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from core.chat.conversations import SYSTEM_PROMPT_MAX, TEMPERATURE_RANGE

TEMPERATURE_MIN, TEMPERATURE_MAX = TEMPERATURE_RANGE

Save = Callable[[str, float | None], Awaitable[bool]]


def _temperature_error(value: float | None) -> str | None:
    if value is None:
        return None
    return None if TEMPERATURE_MIN <= value <= TEMPERATURE_MAX else 'From 0 to 2 (empty: the model\'s default)'


class SettingsDialog:
    """Opened with the conversation's values; `save(system_prompt, temperature)` answers whether it took."""

    def __init__(self, save: Save) -> None:
        self._save = save
        with ui.dialog() as self.dialog, ui.card().classes('w-[36rem] max-w-full').mark('chat-settings'):
            ui.label('Conversation settings').classes('text-lg font-semibold')
            self.system_prompt = ui.textarea(
                'System prompt', placeholder='e.g. You are a concise assistant for a chemistry course.',
                validation={f'At most {SYSTEM_PROMPT_MAX:,} characters':
                            lambda v: len(v or '') <= SYSTEM_PROMPT_MAX}) \
                .props('autogrow outlined').classes('w-full').mark('system-prompt')
            self.temperature = ui.number('Temperature', min=TEMPERATURE_MIN, max=TEMPERATURE_MAX, step=0.1,
                                         format='%.2f', validation=_temperature_error) \
                .props('clearable outlined').classes('w-48').mark('temperature')
            ui.label('Lower is more focused, higher more varied; leave empty for the model\'s default.') \
                .classes('text-xs opacity-60')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=self.dialog.close).props('flat')
                ui.button('Save', on_click=self._submit).mark('save-settings')

    def open(self, system_prompt: str, temperature: float | None) -> None:
        self.system_prompt.value = system_prompt
        self.temperature.value = temperature
        self.system_prompt.error = None
        self.temperature.error = None
        self.dialog.open()

    async def _submit(self) -> None:
        if not (self.system_prompt.validate() & self.temperature.validate()):
            return
        temperature = self.temperature.value
        if await self._save((self.system_prompt.value or '').strip(),
                            None if temperature is None else round(float(temperature), 2)):
            self.dialog.close()
