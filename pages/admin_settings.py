"""/admin/settings: the settings an admin may change without a restart, and every other one read-only.

Each editable setting shows its value in force, where that value comes from (the default, the environment, or a
change in the console or admin API, when and by whom), an input with save, and a reset to the environment's
value. Saving goes through core.admin.site_settings, as PUT /api/admin/settings/{name} does: validated (the refusal
shown under the input), stored, applied to the running gateway at once, and written to the admin log.
"""

from __future__ import annotations

from nicegui import ui

from components.admin_guard import admin_handler
from components.frame import admin_frame
from components.notify import notify_failure
from components.session import require_admin
from core import runtime
from core.admin import site_settings
from core.admin.site_settings import SettingState
from core.config import Settings, get_settings
from core.db import get_database
from core.errors import InvalidRequest


def register() -> None:
    @ui.page('/admin/settings')
    async def settings_page() -> None:
        async with admin_frame('Settings'):
            ui.label('Changes here apply at once, without a restart, and are kept over restarts. Other worker '
                     'processes (mindrouter serve --workers N) take them at their next start.') \
                .classes('opacity-80')
            rows = ui.column().classes('w-full gap-4').mark('editable-settings')
            ui.label('Other settings').classes('text-xl font-semibold')
            ui.label('From the environment (.env); change them there and restart. Secrets are never shown.') \
                .classes('text-sm opacity-70')
            ui.table(columns=[{'name': 'name', 'label': 'Setting', 'field': 'name', 'align': 'left'},
                              {'name': 'value', 'label': 'Value', 'field': 'value', 'align': 'left'}],
                     rows=[{'name': name, 'value': value} for name, value in site_settings.read_only(_live())],
                     row_key='name').props('flat dense').classes('w-full').mark('read-only-settings')

            @admin_handler
            async def load() -> None:
                try:
                    async with get_database().session() as session:
                        states = await site_settings.describe(session, _live())
                except Exception as exc:
                    notify_failure(exc)
                    return
                with rows:
                    for state in states:
                        _SettingRow(state)

            ui.timer(0.01, load, once=True)  # after the page is sent: a slow database never delays the page


def _live() -> Settings:
    """The running gateway's settings object (the one its requests read), or this process's when none runs."""
    live = runtime.current()
    return live.settings if live is not None else get_settings()


class _SettingRow:
    def __init__(self, state: SettingState) -> None:
        self.name = state.name
        with ui.card().classes('w-full').mark(f'setting-{state.name}'):
            with ui.row().classes('w-full items-baseline justify-between'):
                with ui.row().classes('items-baseline gap-3'):
                    ui.label(state.label).classes('text-lg font-semibold')
                    ui.label(state.name).classes('font-mono text-sm opacity-60')
                self.value = ui.label('').classes('font-mono').mark(f'value-{state.name}')
            ui.label(state.help).classes('text-sm opacity-80')
            self.source = ui.label('').classes('text-sm opacity-70').mark(f'source-{state.name}')
            with ui.row().classes('items-center gap-3'):
                self.input: ui.number | ui.switch | ui.select | ui.input
                if state.kind == 'bool':
                    self.input = ui.switch().mark(f'input-{state.name}')
                elif state.kind == 'choice':
                    self.input = ui.select(state.choices or [], label=state.label).classes('w-56') \
                        .mark(f'input-{state.name}')
                elif state.kind in ('url', 'secret'):  # a secret is never put back in the page: type a new one
                    self.input = ui.input(state.label, password=state.kind == 'secret',
                                          placeholder='a new key (empty: none)' if state.kind == 'secret' else '') \
                        .classes('w-96').mark(f'input-{state.name}')
                elif state.kind == 'float':
                    self.input = ui.number(state.label, min=state.minimum, max=state.maximum, step=0.5) \
                        .classes('w-56').mark(f'input-{state.name}')
                else:
                    self.input = ui.number(state.label, min=state.minimum, max=state.maximum, step=1,
                                           format='%d').classes('w-56').mark(f'input-{state.name}')
                ui.button('Save', on_click=self.save).mark(f'save-{state.name}')
                self.reset_button = ui.button('Reset to environment default', on_click=self.reset) \
                    .props('flat').mark(f'reset-{state.name}')
            self.error = ui.label('').classes('text-sm text-red-600').mark(f'error-{state.name}')
        self.show(state)

    def show(self, state: SettingState) -> None:
        self.value.set_text(f'now: {_text(state.value)}')
        self.source.set_text(_source(state))
        masked = state.kind == 'secret' or (state.kind == 'url' and '***' in str(state.value))
        self.input.value = '' if masked else state.value
        self.reset_button.set_enabled(state.source == 'console')  # otherwise the environment's value is in force

    @admin_handler
    async def save(self) -> None:
        self.error.set_text('')
        try:
            admin = await require_admin()
            value = site_settings.validate(self.name, self.input.value)  # refused here: said under the input
            async with get_database().session() as session:
                state = await site_settings.change(session, _live(), name=self.name, value=value,
                                                   actor_id=admin.id, actor=admin.username, via='console')
        except InvalidRequest as exc:
            self.error.set_text(exc.message)
            return
        except Exception as exc:
            notify_failure(exc)
            return
        self.show(state)
        ui.notify(f'{state.label}: {_text(state.value)}, in force now', type='positive')

    @admin_handler
    async def reset(self) -> None:
        self.error.set_text('')
        try:
            admin = await require_admin()
            async with get_database().session() as session:
                state = await site_settings.reset(session, _live(), name=self.name, actor_id=admin.id,
                                                  actor=admin.username, via='console')
        except Exception as exc:
            notify_failure(exc)
            return
        self.show(state)
        ui.notify(f'{state.label}: back to {_text(state.value)}', type='positive')


def _text(value: object) -> str:
    if value == '':
        return '(not set)'
    if isinstance(value, bool):
        return 'on' if value else 'off'
    return f'{value:,}' if isinstance(value, int) else str(value)


def _source(state: SettingState) -> str:
    if state.source == 'default':
        return 'Default value (not set in the environment).'
    if state.source == 'environment':
        return 'Set in the environment.'
    where = 'through the admin API' if state.changed_via == 'api' else 'in the console'
    when = f' at {state.changed_at:%Y-%m-%d %H:%M} UTC' if state.changed_at else ''
    who = f' by {state.changed_by}' if state.changed_by else ''
    return f'Changed {where}{when}{who}; the environment says {_text(state.environment_value)}.'
