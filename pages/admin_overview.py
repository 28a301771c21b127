"""/admin: the cluster at a glance, live. Health (backends by status, nodes, alerts), throughput now with a
small chart, the queue, and the top users and models by tokens over a chosen range, exportable as CSV or JSON.

Live figures come from the running gateway's own services (core.runtime: ClusterStats, the scheduler), the
same ones the admin API serves; the top lists from the request log (core.status.overview). One timer refreshes the
page in place every few seconds; the top lists, which cost a grouped query, every few ticks or on demand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from nicegui import app as nicegui_app
from nicegui import ui

from components.admin_guard import admin_handler
from components.frame import admin_frame
from components.notify import notify_failure
from core import runtime
from core.db import get_database
from core.models import BackendStatus
from core.status import overview

REFRESH_SECONDS = 5.0
TOP_EVERY_TICKS = 6  # the top lists every 30 s: a grouped query over up to 30 days of requests
CHART_POINTS = 60  # five minutes of history at one point a tick
TOP_ROWS = 10
STATUS_COLOURS = {'ok': 'bg-green-600', 'degraded': 'bg-amber-500', 'down': 'bg-red-600'}


def register() -> None:
    @ui.page('/admin')
    async def overview_page() -> None:
        async with admin_frame('Overview'):
            _Overview().tick_forever()


@dataclass(slots=True)
class _Top:
    """One top list: its table, and the rows it shows (what the export writes)."""

    kind: str  # users | models
    columns: tuple[str, ...]
    table: ui.table
    rows: list[dict[str, Any]] = field(default_factory=list)


class _Overview:
    def __init__(self) -> None:
        self._ticks = 0
        self._range = '24h'
        self._start = overview.since(self._range)  # of the rows shown: what an export says
        self._failing = False
        self._shown_alerts: list[dict[str, Any]] = []
        with ui.row().classes('w-full gap-4 items-stretch'):
            with ui.card().classes('flex-1 min-w-64'):
                ui.label('Cluster health').classes('text-lg font-semibold')
                self._status = ui.label('…').classes('px-2 py-1 rounded text-white font-semibold self-start') \
                    .mark('cluster-status')
                self._backends = ui.label('').mark('backends-summary')
                self._nodes = ui.label('').mark('nodes-summary')
            with ui.card().classes('flex-1 min-w-64'):
                ui.label('Throughput now').classes('text-lg font-semibold')
                self._requests_rate = ui.label('').classes('text-2xl').mark('requests-per-second')
                self._tokens_rate = ui.label('').classes('text-2xl').mark('tokens-per-second')
                ui.label('over the last minute').classes('text-sm opacity-70')
            with ui.card().classes('flex-1 min-w-64'):
                ui.label('Queue').classes('text-lg font-semibold')
                self._queued = ui.label('').classes('text-2xl').mark('queue-queued')
                self._running = ui.label('').mark('queue-running')
                self._waits = ui.label('').classes('text-sm opacity-70').mark('queue-waits')
                ui.link('Open the live queue', '/admin/queue')
        self._alerts = ui.column().classes('w-full gap-1').mark('alerts')
        dark = nicegui_app.storage.user.get('dark_mode')
        self._figure: dict[str, Any] = {
            'data': [
                {'type': 'scatter', 'mode': 'lines', 'name': 'tokens/s', 'x': [], 'y': []},
                {'type': 'scatter', 'mode': 'lines', 'name': 'requests/s', 'x': [], 'y': [], 'yaxis': 'y2'},
            ],
            'layout': {
                'template': 'plotly_dark' if dark else 'plotly_white', 'height': 240,
                'margin': {'l': 50, 'r': 50, 't': 10, 'b': 30}, 'legend': {'orientation': 'h'},
                'yaxis': {'title': {'text': 'tokens/s'}, 'rangemode': 'tozero'},
                'yaxis2': {'title': {'text': 'requests/s'}, 'overlaying': 'y', 'side': 'right',
                           'rangemode': 'tozero'},
            },
        }
        self._chart = ui.plotly(self._figure).classes('w-full').mark('throughput-chart')

        with ui.row().classes('w-full items-center justify-between'):
            ui.label('Top users and models by tokens').classes('text-xl font-semibold')
            ui.toggle({key: label for key, (label, _) in overview.RANGES.items()}, value=self._range,
                      on_change=lambda e: self._change_range(str(e.value))).mark('top-range')
        with ui.row().classes('w-full gap-4 items-start'):
            self._users = self._top_table('users', 'User', 'username', overview.USER_COLUMNS)
            self._models = self._top_table('models', 'Model', 'model', overview.MODEL_COLUMNS)

    def tick_forever(self) -> None:
        # immediate: the first tick runs as soon as the browser is connected, after the page was sent
        ui.timer(REFRESH_SECONDS, self._tick, immediate=True)

    @admin_handler
    async def _tick(self) -> None:
        try:
            await self._live()
            if self._ticks % TOP_EVERY_TICKS == 0:
                await self._load_top()
        except Exception as exc:  # a database hiccup: say it once, try again at the next tick
            if not self._failing:
                notify_failure(exc)
            self._failing = True
        else:
            self._failing = False
        finally:
            self._ticks += 1

    async def _live(self) -> None:
        live = runtime.current()
        if live is None:  # a console without the API lifespan (a test, a shell): nothing live to show
            self._status.set_text('not running here')
            self._backends.set_text('The gateway services do not run in this process.')
            return
        status = await live.cluster.status()
        throughput = await live.cluster.throughput()
        snapshot = await live.scheduler.snapshot(limit=0)
        self._show_health(status)
        per_second = throughput['requests'] / throughput['window_seconds']
        self._requests_rate.set_text(f'{per_second:.2f} requests/s')
        self._tokens_rate.set_text(f'{throughput["tokens_per_second"]:.1f} tokens/s')
        running = sum(backend.in_flight for backend in snapshot.backends)
        self._queued.set_text(f'{snapshot.queued} queued')
        self._running.set_text(f'{running} running')
        self._waits.set_text(f'wait p50 {snapshot.wait_p50_s:.1f} s · p95 {snapshot.wait_p95_s:.1f} s'
                             if snapshot.queued else 'nobody waiting')
        self._plot(per_second, float(throughput['tokens_per_second']))

    def _show_health(self, status: dict[str, Any]) -> None:
        state = str(status['status'])
        self._status.set_text(state)
        self._status.classes(replace='px-2 py-1 rounded text-white font-semibold self-start '
                                     + STATUS_COLOURS.get(state, 'bg-slate-500'))
        backends = status['backends']
        parts = [f'{backends.get(s.value, 0)} {s.value}' for s in BackendStatus if backends.get(s.value)]
        self._backends.set_text(f'Backends: {backends["taking_requests"]} of {backends["total"]} taking requests'
                                + (f' ({", ".join(parts)})' if parts else ''))
        nodes = status['nodes']
        self._nodes.set_text(f'Nodes: {nodes["online"]} online, {nodes["offline"]} offline, {nodes["total"]} in all')
        if status['alerts'] == self._shown_alerts:
            return
        self._shown_alerts = status['alerts']
        self._alerts.clear()  # a handful of lines, rebuilt only when they change
        with self._alerts:
            for alert in status['alerts']:
                colour = 'text-red-600' if alert['severity'] == 'critical' else 'text-amber-600'
                with ui.row().classes('items-center gap-2'):
                    ui.icon('error' if alert['severity'] == 'critical' else 'warning').classes(colour)
                    ui.label(alert['message']).mark('alert')

    def _plot(self, requests_per_second: float, tokens_per_second: float) -> None:
        stamp = time.strftime('%H:%M:%S')
        tokens, requests = self._figure['data']
        for trace, value in ((tokens, tokens_per_second), (requests, round(requests_per_second, 3))):
            trace['x'] = [*trace['x'], stamp][-CHART_POINTS:]
            trace['y'] = [*trace['y'], value][-CHART_POINTS:]
        self._chart.update()

    @admin_handler
    async def _change_range(self, key: str) -> None:
        self._range = key
        try:
            await self._load_top()
        except Exception as exc:
            notify_failure(exc)

    async def _load_top(self) -> None:
        start = self._start = overview.since(self._range)
        database = get_database()
        self._users.rows = await overview.top_users(database, start=start, limit=TOP_ROWS)
        self._models.rows = await overview.top_models(database, start=start, limit=TOP_ROWS)
        for top in (self._users, self._models):
            top.table.rows = top.rows
            top.table.update()

    def _top_table(self, kind: str, title: str, key: str, columns: tuple[str, ...]) -> _Top:
        with ui.card().classes('flex-1 min-w-80'):
            with ui.row().classes('w-full items-center justify-between'):
                ui.label(f'Top {kind}').classes('text-lg font-semibold')
                with ui.row().classes('gap-1'):
                    csv = ui.button('CSV', icon='download').props('flat dense').mark(f'export-{kind}-csv')
                    json = ui.button('JSON', icon='download').props('flat dense').mark(f'export-{kind}-json')
            headers = {key: title, 'requests': 'Requests', 'prompt_tokens': 'Prompt tokens',
                       'completion_tokens': 'Completion tokens', 'total_tokens': 'Tokens'}
            table = ui.table(columns=[{'name': c, 'label': headers[c], 'field': c, 'align': 'left' if c == key
                                       else 'right', 'sortable': True} for c in columns],
                             rows=[], row_key=key).props('flat dense').classes('w-full').mark(f'top-{kind}')
            table.props('no-data-label="No requests in this range"')
        top = _Top(kind=kind, columns=columns, table=table)
        csv.on_click(lambda: self._export(top, 'csv'))
        json.on_click(lambda: self._export(top, 'json'))
        return top

    @admin_handler
    async def _export(self, top: _Top, fmt: str) -> None:
        name = f'mindrouter-top-{top.kind}-{self._range}.{fmt}'
        if fmt == 'csv':
            ui.download.content(overview.as_csv(top.rows, top.columns), name, 'text/csv')
        else:
            data = overview.as_json(top.rows, range_key=self._range, start=self._start)
            ui.download.content(data, name, 'application/json')
