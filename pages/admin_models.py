"""/admin/models: every model any backend lists, with the backends serving it (and their health), its maximum
context and the context requests get, and an admin's two per-model settings: a context-length override and a
capability override (the capabilities requests are routed by, replacing what discovery found).

The catalog is the running gateway's registry (core.runtime) or, when no gateway runs in this process, the
database's. A change goes through core.admin.model_catalog.change_settings, the service PATCH /api/admin/models/{model}
calls, then the registry reloads so routing sees it at once. One timer keeps each model's backends and health
current in place, and offers to redraw when models appear or disappear (never under an admin's edits).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from components.admin_guard import admin_handler
from components.frame import admin_frame
from components.notify import notify_failure
from components.session import require_admin
from core import runtime
from core.admin import model_catalog as model_admin
from core.admin.cluster_actions import Actor
from core.admin.model_catalog import CatalogRow, ModelChanges
from core.config import get_settings
from core.db import get_database
from core.registry.store import CAPABILITIES
from pages.admin_model_aliases import AliasSection, load_aliases

REFRESH_SECONDS = 5.0
MIN_CONTEXT = 512  # core.registry.store refuses less


def register() -> None:
    @ui.page('/admin/models')
    async def models_page() -> None:
        async with admin_frame('Models'):
            page = _ModelsPage()
            ui.timer(0.01, page.show, once=True)  # after the page is sent
            ui.timer(REFRESH_SECONDS, page.tick)


@dataclass(slots=True)
class _Live:
    """What the timer updates in place for one model."""

    served: ui.label
    context: ui.label


class _ModelsPage:
    def __init__(self) -> None:
        self._live: dict[str, _Live] = {}
        with ui.row().classes('w-full items-center gap-4'):
            self._summary = ui.label('Loading…').mark('models-summary')
            ui.space()
            self._refresh = ui.button('Refresh', icon='refresh', on_click=self.show).props('flat') \
                .mark('models-refresh')
        ui.label('Capabilities decide which requests a model gets (tools, images, embeddings, reranking, '
                 'thinking). Override them when discovery is wrong, e.g. a vLLM server started with tool calling '
                 'off. The context override sets the context every request gets (Ollama num_ctx).') \
            .classes('text-sm opacity-70')
        self._aliases = ui.column().classes('w-full')
        self._list = ui.column().classes('w-full gap-3').mark('models')

    @admin_handler
    async def show(self) -> None:
        rows = await self._catalog()
        if rows is None:
            return
        self._refresh.text = 'Refresh'
        self._refresh.props(remove='color')
        backends = {b.id for row in rows for b in row.backends}
        where = '' if runtime.current() else ' (from the database: the gateway does not run in this process)'
        self._summary.text = f'{len(rows)} models on {len(backends)} backends{where}'
        self._aliases.clear()
        with self._aliases:
            try:
                AliasSection(await load_aliases(), [row.name for row in rows], on_changed=self.show)
            except Exception as exc:
                notify_failure(exc)
        self._list.clear()
        self._live = {}
        with self._list:
            for row in rows:
                self._live[row.name] = _ModelCard(row, on_saved=self.show).live
            if not rows:
                ui.label('No models yet: register a backend and its models are discovered.') \
                    .classes('opacity-70').mark('models-empty')

    @admin_handler
    async def tick(self) -> None:
        rows = await self._catalog(quiet=True)
        if rows is None:
            return
        if {row.name for row in rows} != set(self._live):
            self._refresh.text = 'Models changed: show them'
            self._refresh.props('color=primary')
        for row in rows:
            live = self._live.get(row.name)
            if live is not None:
                live.served.text = _served(row)
                live.context.text = _context(row)

    async def _catalog(self, *, quiet: bool = False) -> list[CatalogRow] | None:
        live = runtime.current()
        try:
            async with get_database().session() as session:
                return await model_admin.catalog(
                    session, backends=live.registry.backends if live else None,
                    context_cap=(live.settings if live else get_settings()).context_length_cap)
        except Exception as exc:
            if not quiet:  # the timer stays silent: the frame's banner reports trouble
                notify_failure(exc)
            return None


class _ModelCard:
    def __init__(self, row: CatalogRow, *, on_saved: Callable[[], Awaitable[None]]) -> None:
        self._row = row
        self._on_saved = on_saved
        name = row.name
        with ui.card().classes('w-full gap-2').mark(f'model-{name}'):
            with ui.row().classes('w-full items-center gap-3'):
                ui.label(name).classes('text-lg font-semibold font-mono')
                if row.capabilities_override is not None:
                    ui.label('capabilities overridden').classes('px-2 rounded bg-amber-500 text-white text-xs') \
                        .mark(f'overridden-{name}')
                ui.space()
                served = ui.label(_served(row)).classes('text-sm').mark(f'served-{name}')
            with ui.row().classes('w-full items-start gap-6'):
                with ui.column().classes('gap-0'):
                    ui.label('Context').classes('text-xs uppercase opacity-60')
                    context = ui.label(_context(row)).classes('text-sm').mark(f'context-{name}')
                largest = row.context_length_max
                self._ctx = ui.number('Context override', value=row.context_length_override, min=MIN_CONTEXT,
                                      max=largest, step=1024, format='%d', placeholder='none',
                                      validation=self._context_rule(largest)).classes('w-48').mark(f'ctx-{name}')
                self._caps = ui.select(list(CAPABILITIES), multiple=True, value=list(row.capabilities),
                                       label='Capabilities').props('use-chips').classes('min-w-80') \
                    .mark(f'caps-{name}')
                with ui.column().classes('gap-1'):
                    ui.label(f'discovered: {", ".join(row.discovered) or "none"}').classes('text-sm opacity-70') \
                        .mark(f'discovered-{name}')
                    self._error = ui.label('').classes('text-red-600 text-sm').mark(f'model-error-{name}')
            with ui.row().classes('gap-2'):
                ui.button('Save', icon='save', on_click=self._save).mark(f'model-save-{name}')
                if row.capabilities_override is not None:
                    ui.button('Use discovered capabilities', on_click=self._reset).props('flat') \
                        .mark(f'caps-reset-{name}')
        self.live = _Live(served=served, context=context)

    @staticmethod
    def _context_rule(largest: int | None) -> dict[str, Any]:
        def ok(value: Any) -> bool:
            return value is None or (MIN_CONTEXT <= value <= (largest or value) and float(value).is_integer())
        return {f'Between {MIN_CONTEXT} and {largest:,}' if largest else f'At least {MIN_CONTEXT}': ok}

    @admin_handler
    async def _save(self) -> None:
        self._error.text = ''
        if not self._ctx.validate():
            return
        chosen = [name for name in CAPABILITIES if name in (self._caps.value or [])]
        if not chosen:
            self._error.text = 'Choose at least one capability (or use the discovered ones).'
            return
        sent: dict[str, Any] = {}
        context = None if self._ctx.value is None else int(self._ctx.value)
        if context != self._row.context_length_override:
            sent['context_length_override'] = context
        current = self._row.capabilities_override if self._row.capabilities_override is not None \
            else self._row.discovered
        if set(chosen) != set(current):
            sent['capabilities_override'] = chosen
        if not sent:
            ui.notify('Nothing changed')
            return
        await self._apply(ModelChanges(**sent), f'{self._row.name} saved')

    @admin_handler
    async def _reset(self) -> None:
        await self._apply(ModelChanges(capabilities_override=None), f'{self._row.name}: discovered capabilities')

    async def _apply(self, changes: ModelChanges, done: str) -> None:
        try:
            me = await require_admin()
            async with get_database().session() as session:
                await model_admin.change_settings(session, actor=Actor(id=me.id, name=me.username),
                                                  model=self._row.name, changes=changes)
            live = runtime.current()
            if live is not None:
                await live.monitor.reload()  # routing sees it now, not at the next periodic reload
        except Exception as exc:
            notify_failure(exc)
            return
        ui.notify(done, type='positive')
        await self._on_saved()


def _served(row: CatalogRow) -> str:
    parts = [f'{b.name} ({b.engine}, {"healthy" if b.healthy else b.status})' for b in row.backends]
    return 'served by ' + ', '.join(parts)


def _context(row: CatalogRow) -> str:
    largest = f'{row.context_length_max:,}' if row.context_length_max else 'unknown'
    used = f'{row.context_length:,}' if row.context_length else 'the engine default'
    return f'max {largest} · requests get {used}'
