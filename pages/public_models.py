"""/models: every model the cluster serves now, for anyone: what it is for, how much context it takes, what it
can do and where it runs, with a search box and a modality filter.

The list is the union catalog the API serves at /v1/models (core.registry.view.RegistryView.catalog): the
running gateway's own when this process serves the API, else one rebuilt from the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nicegui import ui
from sqlalchemy.exc import SQLAlchemyError

from components.frame import frame
from core.db import get_database
from core.errors import MindRouterError
from core.registry.families import modality
from core.registry.nodes import list_nodes
from core.registry.store import load_states
from core.registry.view import RegistryView
from core.runtime import current

log = logging.getLogger(__name__)

PAGE_SIZE = 24
MODALITIES = {'all': 'All kinds', 'chat': 'Chat', 'multimodal': 'Multimodal', 'embedding': 'Embedding',
              'reranking': 'Reranking'}
_MODALITY_ICONS = {'chat': 'chat', 'multimodal': 'image', 'embedding': 'scatter_plot', 'reranking': 'sort'}
_ENGINE_NAMES = {'ollama': 'Ollama', 'vllm': 'vLLM'}


@dataclass(frozen=True, slots=True)
class Placement:
    backend: str
    engine: str
    node: str | None


@dataclass(frozen=True, slots=True)
class PublicModel:
    name: str
    modality: str
    context_length: int | None
    capabilities: tuple[str, ...]
    size: str  # parameter size and quantisation, as the engine reports them ('' when it does not)
    placements: tuple[Placement, ...]


async def registry_view() -> RegistryView:
    """The registry as the API sees it: the live one in `mindrouter serve`, else the database's state (a process
    without the API's lifespan, e.g. a shell or a test)."""
    runtime = current()
    if runtime is not None:
        return runtime.registry
    async with get_database().session() as session:
        states = await load_states(session)
    view = RegistryView()
    view.replace(states)
    return view


async def public_models() -> list[PublicModel]:
    view = await registry_view()
    async with get_database().session() as session:
        node_names = {node.id: node.name for node in await list_nodes(session)}
    models = []
    for entry in view.catalog(include_aliases=False):
        info = entry.info
        models.append(PublicModel(
            name=info.name, modality=modality(info.capabilities), context_length=info.context_length,
            capabilities=tuple(sorted(info.capabilities)),
            size=' · '.join(part for part in (info.parameter_size, info.quantization) if part),
            placements=tuple(Placement(backend.name, _ENGINE_NAMES.get(backend.engine, backend.engine),
                                       node_names.get(backend.node_id) if backend.node_id is not None else None)
                             for backend in entry.backends)))
    return models


def matching(models: list[PublicModel], *, search: str, kind: str) -> list[PublicModel]:
    words = search.lower().split()
    return [model for model in models
            if (kind == 'all' or model.modality == kind) and all(word in model.name.lower() for word in words)]


def register() -> None:
    @ui.page('/models')
    async def models_page() -> None:
        models: list[PublicModel] = []
        loaded = False
        with frame('Models'):
            ui.markdown('Every model the cluster can serve right now: use its name as `model` in your requests.') \
                .classes('opacity-80 -mt-4')
            with ui.row().classes('w-full items-center gap-4'):
                search = ui.input(placeholder='Search by name', on_change=lambda: show(page=1)) \
                    .props('clearable outlined dense').classes('w-72').mark('model-search')
                with search.add_slot('prepend'):
                    ui.icon('search')
                kind = ui.select(MODALITIES, value='all', on_change=lambda: show(page=1)) \
                    .props('outlined dense').classes('w-44').mark('modality-filter')
                ui.space()
                count = ui.label('Loading…').classes('opacity-70').mark('model-count')
            listing = ui.column().classes('w-full gap-4')

        def show(page: int) -> None:
            """Draw one page of the filtered list (the catalog is in memory: filtering costs no query)."""
            if not loaded:  # typing before the list arrived: it is drawn filtered when it does
                return
            found = matching(models, search=search.value or '', kind=str(kind.value))
            pages = max(1, -(-len(found) // PAGE_SIZE))
            page = min(page, pages)
            count.text = f'{len(found)} of {len(models)} models' if len(found) != len(models) else \
                f'{len(models)} model{"" if len(models) == 1 else "s"}'
            listing.clear()
            with listing:
                if not models:
                    _empty('cloud_off', 'No models are available right now',
                           'No backend is serving a model at the moment. The status page shows what is going on.',
                           'models-empty')
                    return
                if not found:
                    _empty('search_off', 'No model matches', 'Try another name or kind.', 'models-no-match')
                    return
                with ui.element('div').classes('grid grid-cols-1 md:grid-cols-2 xl:grid-cols-3 gap-4 w-full'):
                    for model in found[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]:
                        _model_card(model)
                if pages > 1:
                    ui.pagination(1, pages, direction_links=True, value=page,
                                  on_change=lambda e: show(page=int(e.value or 1))) \
                        .classes('self-center').mark('model-pager')

        async def load() -> None:
            nonlocal loaded
            try:
                models[:] = await public_models()
            except (MindRouterError, SQLAlchemyError) as exc:  # the database is down or not migrated yet
                # a public page: the reason (it may name the database host) goes to the log, not to the visitor
                log.warning('the public model list could not be read: %s', exc)
                count.text = 'The model list is unavailable right now.'
                return
            loaded = True
            show(page=1)

        ui.timer(0.01, load, once=True)  # after the page is sent: a slow database never delays it


def _empty(icon: str, title: str, text: str, marker: str) -> None:
    with ui.column().classes('w-full items-center gap-2 py-16 opacity-80').mark(marker):
        ui.icon(icon, size='48px').classes('opacity-60')
        ui.label(title).classes('text-lg font-semibold')
        with ui.row().classes('items-center gap-1'):
            ui.label(text)
            ui.link('Cluster status', '/')


def _model_card(model: PublicModel) -> None:
    with ui.card().classes('w-full gap-2 shadow-sm').mark('model-card'):
        with ui.row().classes('w-full items-start justify-between no-wrap gap-2'):
            ui.label(model.name).classes('font-mono font-semibold break-all').mark('model-name')
            with ui.row().classes('items-center gap-1 no-wrap shrink-0 text-primary'):
                ui.icon(_MODALITY_ICONS.get(model.modality, 'chat'), size='18px')
                ui.label(model.modality).classes('text-sm font-medium').mark('model-modality')
        with ui.row().classes('items-center gap-4 text-sm opacity-80'):
            context = f'{model.context_length:,} tokens' if model.context_length else 'not reported'
            with ui.row().classes('items-center gap-1'):
                ui.icon('straighten', size='16px')
                ui.label(f'Context: {context}')
            if model.size:
                with ui.row().classes('items-center gap-1'):
                    ui.icon('scale', size='16px')
                    ui.label(model.size)
        with ui.row().classes('gap-1'):
            for capability in model.capabilities:
                ui.chip(capability).props('dense square outline color=primary').classes('text-xs') \
                    .mark('model-capability')
        ui.separator()
        with ui.column().classes('gap-1 text-sm'):
            for placement in model.placements:
                with ui.row().classes('items-center gap-x-3 gap-y-0').mark('model-placement'):
                    with ui.row().classes('items-center gap-1'):
                        ui.icon('dns', size='16px').classes('opacity-60')
                        ui.label(placement.backend).classes('font-medium')
                        ui.label(placement.engine).classes('opacity-70')
                    if placement.node:  # icon and name wrap together
                        with ui.row().classes('items-center gap-1 opacity-70'):
                            ui.icon('developer_board', size='16px')
                            ui.label(f'on {placement.node}')
