"""The public landing page: what this gateway is and whether it is serving.

A placeholder until the web UI issue builds the full public status page.
"""

from __future__ import annotations

from nicegui import ui

from components.frame import frame
from core import __version__
from core.db import get_database
from core.errors import DatabaseUnavailable
from core.migrations import head_revision


def register() -> None:
    @ui.page('/')
    async def home_page() -> None:
        with frame('Status'):
            ui.label('MindRouter').classes('text-3xl font-bold').mark('title')
            ui.label('One API for the GPU cluster: OpenAI, Ollama and Anthropic dialects, '
                     'fair-share scheduling, quotas and a full audit trail.').classes('text-lg opacity-80')
            with ui.card().classes('w-full'):
                ui.label('Gateway').classes('text-lg font-semibold')
                ui.label(await _database_state()).mark('database-state')
                ui.label(f'Version {__version__}').classes('text-sm opacity-70')
            with ui.card().classes('w-full'):
                ui.label('Use the API').classes('text-lg font-semibold')
                ui.markdown('Send your key as `Authorization: Bearer KEY` (or `X-API-Key: KEY`) to the '
                            'OpenAI-compatible endpoints under `/v1`. The interactive reference is at '
                            '[/docs](/docs).')


async def _database_state() -> str:
    database = get_database()
    try:
        revision = await database.schema_revision()
    except DatabaseUnavailable:
        return 'Database unreachable: the gateway cannot authenticate requests right now.'
    if revision != head_revision():
        return 'Database schema is out of date: an operator needs to run `mindrouter migrate`.'
    return 'Serving: database reachable and up to date.'
