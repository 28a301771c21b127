"""A figure card: a label (with an optional icon), one big value and a caption, updated in place.

    card = StatCard('Backends', icon='dns', marker='stat-backends')   # inside a grid or row
    card.set('3 / 4', '1 unhealthy', tone='warn')                      # later, e.g. from the page's timer

`marker` marks the card, and its value and caption as `<marker>-value` / `<marker>-caption`, for tests.
"""

from __future__ import annotations

from typing import Literal

from nicegui import ui

Tone = Literal['neutral', 'good', 'warn', 'bad']

_TONES: dict[Tone, str] = {
    'neutral': '',
    'good': 'text-emerald-600 dark:text-emerald-400',
    'warn': 'text-amber-600 dark:text-amber-400',
    'bad': 'text-red-600 dark:text-red-400',
}
_ALL_TONES = ' '.join(_TONES.values()).split()


class StatCard:
    def __init__(self, label: str, *, icon: str | None = None, value: str = '-', caption: str = '',
                 marker: str | None = None) -> None:
        with ui.card().classes('w-full gap-1 shadow-sm') as self.card:
            with ui.row().classes('items-center gap-2 opacity-70 no-wrap'):
                if icon:
                    ui.icon(icon, size='20px')
                ui.label(label).classes('text-xs font-semibold uppercase tracking-wider')
            self.value = ui.label(value).classes('text-3xl font-bold leading-tight')
            self.caption = ui.label(caption).classes('text-sm opacity-70')
        if marker:
            self.card.mark(marker)
            self.value.mark(f'{marker}-value')
            self.caption.mark(f'{marker}-caption')

    def set(self, value: str, caption: str | None = None, *, tone: Tone = 'neutral') -> None:
        """Show a new value (and caption, when given); `tone` colours the value: good, warn, bad or neutral."""
        self.value.text = value
        if caption is not None:
            self.caption.text = caption
        self.value.classes(remove=' '.join(_ALL_TONES), add=_TONES[tone])
