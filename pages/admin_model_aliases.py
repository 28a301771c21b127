"""The model-alias section of /admin/models: names agents ask for (claude-sonnet-4-5, gpt-5-codex), each
answered by a served model. Changes go through core.admin.model_aliases, the service PUT/DELETE
/api/admin/model-aliases calls (same rules, same admin-log records), then the registry reloads so requests
resolve the alias at once. An alias whose name a backend has started serving is shown with a warning: the
served model wins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui
from sqlmodel.ext.asyncio.session import AsyncSession

from components.admin_guard import admin_handler
from components.confirm import confirm
from components.notify import notify_failure
from components.session import require_admin
from core import runtime
from core.admin import model_aliases
from core.admin.cluster_actions import Actor
from core.db import get_database
from core.models import ModelAlias


class AliasSection:
    """Draws the aliases of `aliases` against the served model names `served`; `on_changed` redraws the page."""

    def __init__(self, aliases: list[ModelAlias], served: list[str], *,
                 on_changed: Callable[[], Awaitable[None]]) -> None:
        self._on_changed = on_changed
        names = set(served)
        with ui.card().classes('w-full gap-2').mark('aliases'):
            ui.label('Model aliases').classes('text-lg font-semibold')
            ui.label('A name agents ask for (claude-sonnet-4-5, gpt-5-codex…) answered by a served model. '
                     'Requests are audited with both names; answers carry the alias.').classes('text-sm opacity-70')
            for alias in aliases:
                self._row(alias, names)
            if not aliases:
                ui.label('No aliases.').classes('text-sm opacity-70').mark('aliases-empty')
            with ui.row().classes('items-end gap-3'):
                self._alias = ui.input('Alias', placeholder='claude-sonnet-4-5').classes('w-64').mark('alias-name')
                self._target = ui.select(sorted(names), label='Served model').classes('min-w-64') \
                    .mark('alias-target')
                ui.button('Add alias', icon='add', on_click=self._add).mark('alias-add')

    def _row(self, alias: ModelAlias, served: set[str]) -> None:
        shadowed = _serves(served, alias.alias)
        with ui.row().classes('w-full items-center gap-3').mark(f'alias-{alias.alias}'):
            ui.label(alias.alias).classes('font-mono')
            ui.label('→').classes('opacity-60')
            ui.label(alias.target).classes('font-mono')
            if shadowed:
                ui.label(f'a backend now serves a model named {alias.alias}: it answers, not this alias') \
                    .classes('px-2 rounded bg-amber-500 text-white text-xs').mark(f'alias-shadowed-{alias.alias}')
            elif not _serves(served, alias.target):
                ui.label(f'{alias.target} is not served now: requests under this alias get a 404') \
                    .classes('px-2 rounded bg-amber-500 text-white text-xs').mark(f'alias-idle-{alias.alias}')
            ui.space()
            ui.button(icon='delete', on_click=lambda name=alias.alias: self._delete(name)).props('flat round') \
                .mark(f'alias-delete-{alias.alias}')

    @admin_handler
    async def _add(self) -> None:
        alias, target = (self._alias.value or '').strip(), self._target.value or ''
        if not alias or not target:
            ui.notify('Give the alias a name and choose the model that answers it', type='warning')
            return
        if await self._change(lambda actor, session: model_aliases.set_alias(session, actor=actor, alias=alias,
                                                                                 target=target)):
            ui.notify(f'{alias} → {target}', type='positive')
            await self._on_changed()

    @admin_handler
    async def _delete(self, alias: str) -> None:
        if not await confirm(f'Delete the alias {alias}?', detail='Requests under this name get a 404 from now on.',
                             ok='Delete'):
            return
        if await self._change(lambda actor, session: model_aliases.delete_alias(session, actor=actor, alias=alias)):
            ui.notify(f'{alias} deleted', type='positive')
            await self._on_changed()

    @staticmethod
    async def _change(action: Callable[[Actor, AsyncSession], Awaitable[ModelAlias]]) -> bool:
        try:
            me = await require_admin()
            async with get_database().session() as session:
                await action(Actor(id=me.id, name=me.username), session)
            live = runtime.current()
            if live is not None:
                await live.monitor.reload()  # requests resolve the alias now, not at the next periodic reload
        except Exception as exc:
            notify_failure(exc)
            return False
        return True


async def load_aliases() -> list[ModelAlias]:
    async with get_database().session() as session:
        return await model_aliases.list_aliases(session)


def _serves(served: set[str], name: str) -> bool:
    return name in served or (':' not in name and f'{name}:latest' in served)
