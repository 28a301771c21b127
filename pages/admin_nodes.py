"""/admin/nodes: the GPU nodes. Register one (its sidecar URL and key), poll it now, remove it; per node its
status, last reading, driver and CUDA versions and the backends placed on it, and per GPU live charts.

The page never calls a sidecar on its own: the gateway's poller reads each node once per NODE_POLL_INTERVAL and
stores the reading in the node's row; one timer per page reads the rows and appends each new reading to the
charts in place. The range selector swaps the charts for stored telemetry (1 h, 24 h) and back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from nicegui import app as nicegui_app
from nicegui import run, ui
from pydantic import ValidationError
from sqlmodel import col, select

from components.admin_guard import admin_handler
from components.confirm import confirm
from components.frame import admin_frame
from components.gpu_chart import GpuChart
from components.notify import notify_failure
from components.session import SignedIn, require_admin
from components.validators import http_url, required
from core.admin import cluster_actions as actions
from core.config import get_settings
from core.db import get_database
from core.errors import InvalidRequest, MindRouterError
from core.models import Backend, Node, NodeBase, NodeStatus, utcnow
from core.registry import nodes
from core.telemetry import queries
from core.telemetry.sidecar import NodeSnapshot

LIVE_SECONDS = 2.0  # how often the page looks for new readings (the poller decides how often there are some)
SEED_SPAN = timedelta(minutes=15)  # stored history shown in the live charts when the page opens
RANGES = {'live': 'Live', '1h': '1 h', '24h': '24 h'}
SPANS = {'1h': timedelta(hours=1), '24h': timedelta(days=1)}
STATUS_COLORS: dict[str, str] = {NodeStatus.online: 'positive', NodeStatus.offline: 'negative'}


def register() -> None:
    @ui.page('/admin/nodes')
    async def nodes_page() -> None:
        async with admin_frame('Nodes'):
            page = _NodesPage(dark=bool(nicegui_app.storage.user.get('dark_mode')))
        ui.timer(0.01, page.load, once=True)  # after the page is sent: queries never delay it
        ui.timer(LIVE_SECONDS, page.tick)


NodeAction = Callable[[int], Awaitable[None]]


class _GpuCard:
    def __init__(self, index: int, dark: bool, node_id: int) -> None:
        with ui.card().classes('w-full gap-1').mark(f'gpu-{node_id}-{index}'):
            self.title = ui.label(f'GPU {index}').classes('font-semibold')
            self.now = ui.label('').classes('text-sm opacity-80').mark(f'gpu-{node_id}-{index}-now')
            self.chart = GpuChart(dark=dark)

    def show(self, gpu: dict[str, Any]) -> None:
        self.title.text = f'GPU {gpu.get("index")} · {gpu.get("name") or "unknown model"}'
        self.now.text = str(gpu['error']) if gpu.get('error') else _figures(gpu)


class _NodeCard:
    def __init__(self, node: Node, dark: bool, on_refresh: NodeAction, on_remove: NodeAction) -> None:
        assert node.id is not None
        self.id, self.dark = node.id, dark
        self.seen: datetime | None = None  # time of the reading the charts last took
        self.gpus: dict[int, _GpuCard] = {}
        with ui.card().classes('w-full gap-2').mark(f'node-{node.id}') as self.card:
            with ui.row().classes('w-full items-center gap-3'):
                self.name = ui.label(node.name).classes('text-xl font-semibold')
                self.badge = ui.badge('').mark(f'node-{node.id}-status')
                ui.space()
                ui.button('Poll now', icon='refresh', on_click=lambda: on_refresh(self.id)).props('flat') \
                    .mark(f'node-{node.id}-refresh')
                ui.button('Remove', icon='delete', on_click=lambda: on_remove(self.id)).props('flat color=negative') \
                    .mark(f'node-{node.id}-remove')
            self.where = ui.label('').classes('text-sm opacity-80')
            self.versions = ui.label('').classes('text-sm').mark(f'node-{node.id}-versions')
            self.error = ui.label('').classes('text-sm text-red-600').mark(f'node-{node.id}-error')
            self.backends = ui.label('').classes('text-sm').mark(f'node-{node.id}-backends')
            self.grid = ui.element('div').classes('w-full grid grid-cols-1 xl:grid-cols-2 gap-3')

    def update(self, node: Node, backends: list[Backend]) -> list[tuple[_GpuCard, dict[str, Any]]]:
        """Show the row; the GPUs (with their cards) of a reading not charted yet, else nothing."""
        self.name.text = node.name
        self.badge.text = node.status
        self.badge.props(f'color={STATUS_COLORS.get(node.status, "grey")}')
        seen = f'last reading {node.last_seen_at:%Y-%m-%d %H:%M:%S} UTC' if node.last_seen_at else 'never read'
        self.where.text = f'{node.hostname} · sidecar {node.sidecar_url} · {seen}'
        self.versions.text = (f'{node.gpu_count if node.gpu_count is not None else "?"} GPUs · driver '
                              f'{node.driver_version or "?"} · CUDA {node.cuda_version or "?"} · sidecar '
                              f'{node.sidecar_version or "?"}')
        self.error.text = (node.last_error or '') if node.status != NodeStatus.online else ''
        self.backends.text = 'Backends: ' + (', '.join(f'{b.name} ({_gpus(b.gpu_indices)})' for b in backends)
                                             or 'none')
        if node.status != NodeStatus.online or not node.last_reading or node.last_seen_at == self.seen:
            return []
        self.seen = node.last_seen_at
        fresh = []
        for gpu in NodeSnapshot.from_json(node.last_reading).gpus:
            index = gpu.get('index')
            if isinstance(index, bool) or not isinstance(index, int):
                continue
            if index not in self.gpus:
                with self.grid:
                    self.gpus[index] = _GpuCard(index, self.dark, self.id)
            self.gpus[index].show(gpu)
            fresh.append((self.gpus[index], {**gpu, 'taken_at': node.last_seen_at}))
        return fresh


class _NodesPage:
    def __init__(self, *, dark: bool) -> None:
        self.dark = dark
        self.cards: dict[int, _NodeCard] = {}
        self.loaded = False
        with ui.row().classes('w-full items-center gap-4'):
            self.range = ui.toggle(RANGES, value='live', on_change=self.show_range).mark('nodes-range')
            ui.button('Export CSV', icon='download', on_click=self.export).props('outline').mark('nodes-export')
            ui.space()
            self.note = ui.label('').classes('text-sm text-orange-600').mark('nodes-note')
        with ui.expansion('Register a node', icon='add').classes('w-full border rounded').mark('node-register'):
            self._form()
        self.empty = ui.label('No nodes registered yet.').classes('opacity-70').mark('nodes-empty')
        self.empty.visible = False
        self.list = ui.column().classes('w-full gap-4').mark('node-list')

    def _form(self) -> None:
        with ui.grid(columns=2).classes('w-full gap-x-6'):
            self.f_name = ui.input('Name', validation=required(100)).mark('node-name')
            self.f_host = ui.input('Hostname (default: the sidecar URL\'s host)',
                                   validation=lambda v: 'At most 255 characters' if len(v or '') > 255 else None) \
                .mark('node-hostname')
            self.f_url = ui.input('Sidecar URL', placeholder='http://gpu1:8007',
                                  validation=http_url('http://gpu1:8007')).mark('node-url')
            self.f_key = ui.input('Sidecar key', password=True, password_toggle_button=True,
                                  validation=required(512)).mark('node-key')
        ui.button('Register node', icon='add', on_click=self.register_node).mark('node-submit')

    @admin_handler
    async def load(self) -> None:
        try:
            await self._sync()
            await self._seed()
        except MindRouterError as exc:
            self.note.text = f'Cannot read the nodes now: {exc.message}'
        self.loaded = True

    @admin_handler
    async def tick(self) -> None:
        if not self.loaded:
            return
        self._follow_theme()
        try:
            await self._sync()
        except MindRouterError as exc:  # the database is away: keep the charts, say they are stale
            self.note.text = f'Cannot read the nodes now: {exc.message}'

    def _follow_theme(self) -> None:
        """The header's theme switch changes the user's setting; the charts follow it at the next tick."""
        dark = bool(nicegui_app.storage.user.get('dark_mode'))
        if dark == self.dark:
            return
        self.dark = dark
        for card in self.cards.values():
            card.dark = dark
            for gpu in card.gpus.values():
                gpu.chart.set_dark(dark)

    async def _sync(self) -> None:
        async with get_database().session() as session:
            rows = await nodes.list_nodes(session)
            placed = list(await session.exec(select(Backend).where(col(Backend.node_id).is_not(None))
                                             .order_by(col(Backend.name))))
        self.note.text = ''
        for gone in set(self.cards) - {row.id for row in rows}:
            self.cards.pop(gone).card.delete()
        for row in rows:
            assert row.id is not None
            if row.id not in self.cards:
                with self.list:
                    self.cards[row.id] = _NodeCard(row, self.dark, self.refresh_node, self.remove_node)
            for gpu_card, sample in self.cards[row.id].update(row, [b for b in placed if b.node_id == row.id]):
                gpu_card.chart.push(sample)
        self.empty.visible = not rows

    async def _seed(self) -> None:
        """Recent stored history into the live charts, so they do not start empty."""
        now = utcnow()
        for card in list(self.cards.values()):
            history = await queries.node_history(get_database(), node_id=card.id, since=now - SEED_SPAN, until=now,
                                                 step=None)
            for gpu in history['gpus']:
                chart = card.gpus.get(gpu['gpu_index'])
                if chart is not None:
                    live = [p for p in gpu['points'] if card.seen is None or p['taken_at'] < card.seen]
                    chart.chart.seed(live)

    @admin_handler
    async def show_range(self) -> None:
        span = SPANS.get(self.range.value)
        if span is None:
            for card in self.cards.values():
                for gpu in card.gpus.values():
                    gpu.chart.show_live()
            return
        wanted, until = self.range.value, utcnow()
        # Buckets no finer than the samples; ~240 points per chart whatever the span.
        step = max(int(get_settings().telemetry_sample_interval), int(span.total_seconds()) // 240)
        histories = []
        try:
            for card in list(self.cards.values()):
                history = await queries.node_history(get_database(), node_id=card.id, since=until - span,
                                                     until=until, step=step)
                histories.append((card, {gpu['gpu_index']: gpu['points'] for gpu in history['gpus']}))
        except MindRouterError as exc:
            notify_failure(exc)
            return
        if self.range.value != wanted:
            return  # another range was chosen while this one loaded
        for card, points in histories:
            for index, gpu in card.gpus.items():
                gpu.chart.show_history(points.get(index, []))

    @admin_handler
    async def export(self) -> None:
        span = SPANS.get(self.range.value, SPANS['1h'])  # live: the last hour
        until = utcnow()
        try:
            rows = await queries.export_rows(get_database(), kind='gpu', since=until - span, until=until)
        except MindRouterError as exc:
            notify_failure(exc)
            return
        name = f'mindrouter-gpu-telemetry-{until - span:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}.csv'
        content = await run.io_bound(actions.telemetry_csv, queries.export_columns('gpu'), rows)  # a day: big
        if content is not None:  # None: the server is shutting down
            ui.download.content(content, name, 'text/csv')

    @admin_handler
    async def register_node(self) -> None:
        fields = {'name': self.f_name, 'hostname': self.f_host, 'sidecar_url': self.f_url, 'sidecar_key': self.f_key}
        if not all([field.validate() for field in fields.values()]):
            return
        url = (self.f_url.value or '').strip()
        hostname = (self.f_host.value or '').strip() or urlsplit(url).hostname or ''
        try:
            data = NodeBase(name=(self.f_name.value or '').strip(), hostname=hostname, sidecar_url=url)
        except ValidationError as exc:  # the table's own limits, as the API checks them
            for error in exc.errors():
                fields[str(error['loc'][0])].error = error['msg']
            return
        try:
            admin = await require_admin()
            node = await actions.register_node(actions.live_runtime(), _actor(admin), data, self.f_key.value)
        except InvalidRequest as exc:
            if exc.param in fields:
                fields[exc.param].error = exc.message
            else:
                notify_failure(exc)
            return
        except (MindRouterError, PermissionError) as exc:
            notify_failure(exc)
            return
        for field in fields.values():
            field.value = ''
            field.error = None
        verdict = f'online, {node.gpu_count} GPUs' if node.status == NodeStatus.online else \
            f'{node.status}: {node.last_error or "not read yet"}'
        online = node.status == NodeStatus.online
        ui.notify(f'Node {node.name} registered ({verdict}).', type='positive' if online else 'warning')
        await self._sync()

    @admin_handler
    async def refresh_node(self, node_id: int) -> None:
        try:
            admin = await require_admin()
            node = await actions.refresh_node(actions.live_runtime(), _actor(admin), node_id)
        except (MindRouterError, PermissionError) as exc:
            notify_failure(exc)
            return
        ui.notify(f'Node {node.name}: {node.status}.')
        await self._sync()

    @admin_handler
    async def remove_node(self, node_id: int) -> None:
        card = self.cards.get(node_id)
        name = card.name.text if card else f'node {node_id}'
        if not await confirm(f'Remove node {name}?', ok='Remove',
                             detail='Its sidecar is no longer polled and its GPU history is deleted. '
                                    'Backends placed on it must be moved or removed first.'):
            return
        try:
            admin = await require_admin()
            await actions.delete_node(actions.live_runtime(), _actor(admin), node_id)
        except (MindRouterError, PermissionError) as exc:
            notify_failure(exc)
            return
        ui.notify(f'Node {name} removed.')
        await self._sync()


def _actor(admin: SignedIn) -> actions.Actor:
    return actions.Actor(id=admin.id, name=admin.username)


def _gpus(indices: list[int] | None) -> str:
    return 'all GPUs' if indices is None else 'GPU ' + ', '.join(str(i) for i in indices)


def _figures(gpu: dict[str, Any]) -> str:
    def show(key: str, unit: str, digits: int = 0) -> str:
        value = gpu.get(key)
        return f'{value:.{digits}f}{unit}' if isinstance(value, int | float) else '?'
    return (f'{show("utilization_gpu", " %")} busy · memory {show("memory_used_gb", "", 1)} / '
            f'{show("memory_total_gb", " GB", 1)} · {show("temperature_gpu", " °C")} · '
            f'{show("power_draw_watts", " W")}')
