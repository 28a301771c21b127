"""The warnings every admin page shows, kept live: backends unhealthy, nodes offline (red), and backends whose
engine queues requests of its own below `max_concurrent` (amber, with the one-click fix)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nicegui import ui
from sqlmodel import col, select

from components.admin_guard import admin_handler
from components.notify import notify_failure
from components.session import require_admin
from core.admin import cluster_actions as actions
from core.db import get_database
from core.errors import MindRouterError
from core.models import Backend, BackendStatus, Node, NodeStatus
from core.registry.capacity import CapacityAdvice

REFRESH_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class _Advised:
    backend_id: int
    name: str
    max_concurrent: int
    advice: CapacityAdvice


def health_banner() -> None:
    place = ui.column().classes('w-full gap-2')

    @admin_handler
    async def update() -> None:
        backends, nodes, advised = await _trouble()
        place.clear()
        with place:
            if backends or nodes:
                _trouble_row(backends, nodes)
            for item in advised:
                _advice_row(item, update)

    ui.timer(0.01, update, once=True)  # after the page is sent: a slow database never delays the page
    ui.timer(REFRESH_SECONDS, update)


def _trouble_row(backends: list[str], nodes: list[str]) -> None:
    parts = []
    if backends:
        parts.append(f'{len(backends)} backend{"s" if len(backends) > 1 else ""} unhealthy: {", ".join(backends)}')
    if nodes:
        parts.append(f'{len(nodes)} node{"s" if len(nodes) > 1 else ""} offline: {", ".join(nodes)}')
    with ui.row().classes('w-full items-center gap-3 p-3 rounded bg-red-600 text-white').mark('health-banner'):
        ui.icon('warning', size='24px')
        ui.label(' · '.join(parts)).classes('font-semibold')


def _advice_row(item: _Advised, refresh: Callable[[], Awaitable[None]]) -> None:
    @admin_handler
    async def apply() -> None:
        try:
            admin = await require_admin()
            actor = actions.Actor(id=admin.id, name=admin.username)
            done = await actions.apply_capacity_advice(actions.live_runtime(), actor, item.backend_id)
        except (MindRouterError, PermissionError) as exc:
            notify_failure(exc)
            return
        ui.notify(f'{done.name}: max_concurrent is now {done.max_concurrent}.', type='positive')
        await refresh()

    mark = f'capacity-banner-{item.backend_id}'
    with ui.row().classes('w-full items-center gap-3 p-3 rounded bg-amber-100 text-amber-900 border border-amber-400') \
            .mark(mark):
        ui.icon('hourglass_top', size='24px')
        with ui.column().classes('gap-0 flex-1'):
            ui.label(f'Backend {item.name} queues requests inside its engine, out of fair share\'s reach: '
                     f'max_concurrent is {item.max_concurrent}, the evidence supports {item.advice.suggested}.') \
                .classes('font-semibold')
            ui.label(item.advice.evidence).classes('text-sm')
        ui.button(f'Set max to {item.advice.suggested}', on_click=apply).props('color=warning').mark(f'{mark}-apply')
        ui.link('Backends', '/admin/backends').classes('text-sm')


async def _trouble() -> tuple[list[str], list[str], list[_Advised]]:
    async with get_database().session() as session:
        backends = await session.exec(select(Backend.name).where(col(Backend.status) == BackendStatus.unhealthy))
        nodes = await session.exec(select(Node.name).where(col(Node.status) == NodeStatus.offline))
        with_advice = await session.exec(select(Backend).where(col(Backend.capacity_advice).is_not(None)))
        advised = []
        for backend in with_advice:
            advice = CapacityAdvice.from_json(backend.capacity_advice)
            if advice is not None and backend.id is not None and advice.applies_to(backend.max_concurrent):
                advised.append(_Advised(backend.id, backend.name, backend.max_concurrent, advice))
        return list(backends), list(nodes), advised
