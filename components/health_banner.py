"""The warning every admin page shows while any backend is unhealthy or any node offline, kept live."""

from __future__ import annotations

from nicegui import ui
from sqlmodel import col, select

from components.admin_guard import admin_handler
from core.db import get_database
from core.models import Backend, BackendStatus, Node, NodeStatus

REFRESH_SECONDS = 5.0


def health_banner() -> None:
    place = ui.column().classes('w-full gap-0')

    @admin_handler
    async def update() -> None:
        backends, nodes = await _trouble()
        place.clear()
        if not backends and not nodes:
            return
        parts = []
        if backends:
            parts.append(f'{len(backends)} backend{"s" if len(backends) > 1 else ""} unhealthy: {", ".join(backends)}')
        if nodes:
            parts.append(f'{len(nodes)} node{"s" if len(nodes) > 1 else ""} offline: {", ".join(nodes)}')
        with place, ui.row().classes('w-full items-center gap-3 p-3 rounded bg-red-600 text-white') \
                .mark('health-banner'):
            ui.icon('warning', size='24px')
            ui.label(' · '.join(parts)).classes('font-semibold')

    ui.timer(0.01, update, once=True)  # after the page is sent: a slow database never delays the page
    ui.timer(REFRESH_SECONDS, update)


async def _trouble() -> tuple[list[str], list[str]]:
    async with get_database().session() as session:
        backends = await session.exec(select(Backend.name).where(col(Backend.status) == BackendStatus.unhealthy))
        nodes = await session.exec(select(Node.name).where(col(Node.status) == NodeStatus.offline))
        return list(backends), list(nodes)
