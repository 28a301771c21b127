"""The page shell every screen shares: header with the product name, dark-mode switch, content column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui


@contextmanager
def frame(title: str) -> Iterator[None]:
    ui.page_title(f'{title} · MindRouter')
    dark = ui.dark_mode(None)  # follow the browser until the user picks
    with ui.header().classes('items-center justify-between bg-slate-900 text-white px-6'):
        with ui.row().classes('items-center gap-3'):
            ui.icon('hub', size='28px')
            ui.link('MindRouter', '/').classes('text-xl font-semibold text-white no-underline')
        with ui.row().classes('items-center gap-4'):
            ui.link('API docs', '/docs').classes('text-white')
            ui.button(icon='dark_mode', on_click=dark.toggle).props('flat round color=white') \
                .tooltip('Toggle dark mode')
    with ui.column().classes('w-full max-w-5xl mx-auto p-6 gap-6'):
        yield
