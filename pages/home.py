"""/: the public status page. Whether the cluster is serving (overall status, backends, nodes, models, tokens
served, live throughput, active alerts) and how to start using it.

Figures come from the running gateway's ClusterStats (core.runtime), the object behind the public /status API;
in a process without the API's lifespan, from a ClusterStats over the registry as the database has it. One
timer refreshes every figure in place; the first tick runs once the page is in the browser, so a slow database
never delays the page.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nicegui import app as nicegui_app
from nicegui import ui
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from components.frame import frame
from components.session import session_user
from components.stat_card import StatCard, Tone
from core import __version__
from core.db import get_database
from core.errors import DatabaseUnavailable, MindRouterError
from core.migrations import head_revision
from core.runtime import current
from core.status.cluster import ClusterStats
from core.status.throughput import throughput_history
from pages.public_models import registry_view

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
SHARED_SECONDS = 2.0  # how long one snapshot serves every open status page
HISTORY_MINUTES = 10
HISTORY_STEP = 10  # seconds per chart point

# overall status -> icon, words, pill colour
_LOOK = {
    'ok': ('check_circle', 'All systems operational', 'bg-emerald-600'),
    'degraded': ('warning', 'Degraded: some capacity is out', 'bg-amber-500'),
    'down': ('error', 'Down: no backend is taking requests', 'bg-red-600'),
    'empty': ('hourglass_empty', 'No backends registered yet', 'bg-slate-500'),
    'unknown': ('help', 'Status unknown', 'bg-slate-500'),
}
_GRID = 'rgba(148, 163, 184, 0.25)'
_PILL_COLOURS = ' '.join(sorted({colour for _, _, colour in _LOOK.values()}))


@dataclass(frozen=True, slots=True)
class Figures:
    status: dict[str, Any]
    tokens: dict[str, int]
    throughput: dict[str, Any]
    history: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    database_ok: bool
    database: str  # the sentence about the database
    figures: Figures | None  # None: the database cannot give them now
    taken_at: datetime


_recent: dict[str, tuple[float, Snapshot]] = {}  # see snapshot()


def register() -> None:
    @ui.page('/')
    async def home_page(request: Request) -> None:
        with frame('Cluster status'):
            board = _StatusBoard()
            access_guide(str(request.base_url).rstrip('/'))
        ui.timer(REFRESH_SECONDS, board.refresh)  # fires first once the client is connected, then every few s


async def database_state() -> tuple[bool, str]:
    """Whether the database can serve the gateway, and the sentence that says so."""
    database = get_database()
    try:
        revision = await database.schema_revision()
    except DatabaseUnavailable:
        return False, 'Database unreachable: the gateway cannot authenticate requests right now.'
    if revision != head_revision():
        return False, 'Database schema is out of date: an operator needs to run `mindrouter migrate`.'
    return True, 'Serving: database reachable and up to date.'


async def cluster_figures() -> Figures:
    runtime = current()
    if runtime is not None:
        stats, database = runtime.cluster, runtime.database
    else:
        database = get_database()
        stats = ClusterStats(database, await registry_view())
    return Figures(status=await stats.status(), tokens=await stats.total_tokens(),
                   throughput=await stats.throughput(),
                   history=await throughput_history(database, minutes=HISTORY_MINUTES, step=HISTORY_STEP))


async def snapshot() -> Snapshot:
    """What the status page shows now. Shared for a moment by every status page open in this process: it is the
    page the whole campus may keep open, and a hundred visitors should cost one set of queries, not a hundred."""
    key = f'{get_database().url}|{id(current())}'
    now = time.monotonic()
    hit = _recent.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    ok, sentence = await database_state()
    figures = None
    if ok:
        try:
            figures = await cluster_figures()
        except (MindRouterError, SQLAlchemyError) as exc:
            # a public page: the reason (it may name the database host) goes to the log, not to the visitor
            log.warning('public status figures unavailable: %s', exc)
    taken = Snapshot(database_ok=ok, database=sentence, figures=figures, taken_at=datetime.now(UTC))
    _recent.clear()  # only the latest one is ever asked for again
    _recent[key] = (now + SHARED_SECONDS, taken)
    return taken


class _StatusBoard:
    """The page's live parts, built once and updated in place by `refresh`."""

    def __init__(self) -> None:
        with ui.row().classes('w-full items-center justify-between gap-4 -mt-2'):
            ui.label('MindRouter is one API for the GPU cluster: OpenAI, Anthropic and Ollama clients, fair '
                     'sharing between users, quotas and a full audit trail.').classes('text-lg opacity-80 max-w-3xl')
            with ui.row().classes('items-center gap-2 px-4 py-2 rounded-full text-white shadow bg-slate-500') \
                    as self.pill:
                self.pill_icon = ui.icon('hourglass_top', size='22px')
                self.pill_text = ui.label('Checking…').classes('font-semibold').mark('cluster-status')
        with ui.element('div').classes('grid grid-cols-1 sm:grid-cols-2 lg:grid-cols-5 gap-4 w-full'):
            self.backends = StatCard('Backends', icon='dns', marker='stat-backends')
            self.nodes = StatCard('GPU nodes', icon='memory', marker='stat-nodes')
            self.models = StatCard('Models', icon='view_in_ar', marker='stat-models')
            self.models.card.classes('cursor-pointer').on('click', lambda: ui.navigate.to('/models'))
            self.tokens = StatCard('Tokens served', icon='token', marker='stat-tokens')
            self.rate = StatCard('Throughput', icon='speed', marker='stat-throughput')
        with ui.element('div').classes('grid grid-cols-1 lg:grid-cols-3 gap-6 w-full'):
            with ui.card().classes('lg:col-span-2 w-full shadow-sm'):
                _heading('show_chart', 'Live throughput',
                         f'completion tokens per second, last {HISTORY_MINUTES} minutes')
                self.chart_figure = _chart_figure()
                self.chart = ui.plotly(self.chart_figure).classes('w-full h-56').mark('throughput-chart')
            with ui.card().classes('w-full shadow-sm'):
                _heading('notifications_active', 'Active alerts', '')
                self.alerts = ui.column().classes('w-full gap-2').mark('alerts')
                self.shown_alerts: list[dict[str, Any]] | None = None
                with ui.row().classes('items-center gap-2 mt-auto pt-4 text-sm opacity-70'):
                    ui.icon('storage', size='18px')
                    self.database = ui.label('Checking the database…').mark('database-state')
                with ui.row().classes('items-center gap-2 text-xs opacity-60'):
                    ui.label(f'Version {__version__}')
                    self.updated = ui.label('').mark('updated')

    async def refresh(self) -> None:
        now = await snapshot()
        self.database.text = now.database
        if now.figures is None:
            self._unknown('The figures return when the database is back.' if not now.database_ok else
                          'The figures are unavailable right now.')
            return
        self._show(now.figures)
        self.updated.text = f'· updated {now.taken_at:%H:%M:%S} UTC'

    def _show(self, figures: Figures) -> None:
        status, backends, nodes = figures.status, figures.status['backends'], figures.status['nodes']
        self._status('empty' if not backends['total'] else status['status'])

        total, taking = backends['total'], backends['taking_requests']
        out = [f'{backends[state]} {state}' for state in ('unhealthy', 'draining', 'disabled', 'unknown')
               if backends.get(state)]
        self.backends.set(f'{taking} / {total}', ', '.join(out) or ('taking requests' if total else 'none yet'),
                          tone=_share_tone(taking, total))
        offline = nodes['offline']
        self.nodes.set(f'{nodes["online"]} / {nodes["total"]}',
                       f'{offline} offline' if offline else 'online' if nodes['total'] else 'none registered',
                       tone=_share_tone(nodes['online'], nodes['total']))
        count = len(status['models'])
        self.models.set(str(count), 'available now · see the list' if count else 'none available',
                        tone='neutral' if count or not total else 'bad')
        self.tokens.set(compact(figures.tokens['total_tokens']), f'{figures.tokens["requests"]:,} requests')
        rate = figures.throughput
        self.rate.set(f'{rate["tokens_per_second"]:g} tok/s',
                      f'{rate["requests"]} requests last minute · {status["in_flight"]} running')

        if status['alerts'] != self.shown_alerts:  # rebuilt only when they change: no flicker, no traffic
            self.shown_alerts = status['alerts']
            self.alerts.clear()
            with self.alerts:
                for alert in status['alerts']:
                    _alert(alert)
                if not status['alerts']:
                    with ui.row().classes('items-center gap-2 text-emerald-600 dark:text-emerald-400') \
                            .mark('no-alerts'):
                        ui.icon('check_circle')
                        ui.label('No active alerts')
        self._draw(figures.history)

    def _draw(self, history: list[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        trace = self.chart_figure['data'][0]
        x = [round(-(now - point['end']).total_seconds() / 60, 2) for point in history]
        y = [point['tokens_per_second'] for point in history]
        requests = [point['requests_per_second'] for point in history]
        template = 'plotly_dark' if nicegui_app.storage.user.get('dark_mode') else 'plotly_white'
        if trace['y'] == y and trace['customdata'] == requests and self.chart_figure['layout']['template'] == template:
            return  # a new point comes once per step; most ticks change nothing
        trace.update(x=x, y=y, customdata=requests)
        self.chart_figure['layout']['template'] = template
        self.chart.update()

    def _status(self, key: str) -> None:
        icon, words, colour = _LOOK[key]
        self.pill_icon.name = icon
        self.pill_text.text = words
        self.pill.classes(remove=_PILL_COLOURS, add=colour)

    def _unknown(self, why: str) -> None:
        self._status('unknown')
        for card in (self.backends, self.nodes, self.models, self.tokens, self.rate):
            card.set('-', '')
        self.shown_alerts = None
        self.alerts.clear()
        with self.alerts:
            ui.label(why).classes('opacity-70')


def access_guide(base: str) -> None:
    """How to start: an account, a key, and the client set-ups with this gateway's own address filled in."""
    with ui.card().classes('w-full shadow-sm gap-4').mark('access'):
        _heading('rocket_launch', 'Get access', '')
        with ui.element('div').classes('grid grid-cols-1 md:grid-cols-3 gap-4 w-full'):
            _step('person_add', '1. Ask for an account',
                  "The cluster's administrators create accounts: ask one of them for yours.")
            _step('vpn_key', '2. Create an API key',
                  'Log in and create a key on your dashboard. It is shown once: keep it somewhere safe.')
            _step('send', '3. Send it with each request', 'As a header (or `X-API-Key: KEY`):')
        ui.code('Authorization: Bearer KEY', language='text').classes('w-full').mark('auth-header')
        with ui.tabs().props('dense align=left no-caps').classes('w-full') as tabs:
            for client in SNIPPETS:
                ui.tab(client)
        with ui.tab_panels(tabs, value=next(iter(SNIPPETS))).classes('w-full bg-transparent'):
            for client, (language, snippet) in SNIPPETS.items():
                with ui.tab_panel(client).classes('p-0'):
                    ui.code(snippet.replace('{BASE}', base), language=language).classes('w-full') \
                        .mark(f'snippet-{client.lower()}')
        with ui.row().classes('items-center gap-4'):
            if session_user() is None:
                ui.button('Log in', icon='login', on_click=lambda: ui.navigate.to('/login')).mark('cta-login')
            else:
                ui.button('Open your dashboard', icon='dashboard', on_click=lambda: ui.navigate.to('/dashboard')) \
                    .mark('cta-dashboard')
            ui.link('Browse the models', '/models')
            ui.link('API reference', '/docs')


SNIPPETS = {
    'OpenAI': ('python', """from openai import OpenAI

client = OpenAI(base_url='{BASE}/v1', api_key=KEY)
client.chat.completions.create(model='MODEL', messages=[{'role': 'user', 'content': 'Hello'}])"""),
    'Anthropic': ('python', """from anthropic import Anthropic

client = Anthropic(base_url='{BASE}/anthropic', api_key=KEY)
client.messages.create(model='MODEL', max_tokens=512, messages=[{'role': 'user', 'content': 'Hello'}])"""),
    'Ollama': ('python', """from ollama import Client

client = Client(host='{BASE}', headers={'Authorization': f'Bearer {KEY}'})
client.chat(model='MODEL', messages=[{'role': 'user', 'content': 'Hello'}])"""),
    'curl': ('bash', """curl {BASE}/v1/chat/completions -H 'Authorization: Bearer KEY' \\
  -H 'Content-Type: application/json' \\
  -d '{"model": "MODEL", "messages": [{"role": "user", "content": "Hello"}]}'"""),
}


def _step(icon: str, title: str, text: str) -> None:
    with ui.row().classes('items-start gap-3 no-wrap'):
        ui.icon(icon, size='28px').classes('text-primary shrink-0')
        with ui.column().classes('gap-0'):
            ui.label(title).classes('font-semibold')
            ui.markdown(text).classes('text-sm opacity-80')


def compact(number: int) -> str:
    """1234 -> '1,234'; 1234567 -> '1.23M': a big count that fits a card."""
    for size, suffix in ((10**12, 'T'), (10**9, 'B'), (10**6, 'M')):
        if number >= size:
            return f'{number / size:.3g}{suffix}'
    return f'{number:,}'


def _share_tone(up: int, total: int) -> Tone:
    if not total:
        return 'neutral'
    return 'good' if up == total else 'bad' if up == 0 else 'warn'


def _heading(icon: str, title: str, caption: str) -> None:
    with ui.row().classes('items-center gap-2'):
        ui.icon(icon, size='22px').classes('text-primary')
        ui.label(title).classes('text-lg font-semibold')
        if caption:
            ui.label(caption).classes('text-sm opacity-60')


def _alert(alert: dict[str, Any]) -> None:
    critical = alert['severity'] == 'critical'
    colours = 'bg-red-50 text-red-800 dark:bg-red-950 dark:text-red-200' if critical else \
        'bg-amber-50 text-amber-800 dark:bg-amber-950 dark:text-amber-200'
    with ui.row().classes(f'w-full items-start gap-2 p-2 rounded no-wrap {colours}').mark('alert'):
        ui.icon('error' if critical else 'warning', size='20px')
        ui.label(alert['message']).classes('text-sm')


def _chart_figure() -> dict[str, Any]:
    return {
        'data': [{'type': 'scatter', 'mode': 'lines', 'x': [], 'y': [], 'customdata': [], 'fill': 'tozeroy',
                  'line': {'width': 2, 'color': '#6366f1'},
                  'hovertemplate': '%{y} tokens/s<br>%{customdata} requests/s<extra></extra>'}],
        # transparent, with greys that read on light and dark pages alike: with the theme on "auto" the server
        # cannot know which one the browser shows
        'layout': {'template': 'plotly_white', 'height': 224, 'margin': {'l': 48, 'r': 12, 't': 8, 'b': 36},
                   'paper_bgcolor': 'rgba(0,0,0,0)', 'plot_bgcolor': 'rgba(0,0,0,0)', 'showlegend': False,
                   'font': {'color': '#94a3b8'},
                   'xaxis': {'title': {'text': 'minutes ago'}, 'range': [-HISTORY_MINUTES, 0], 'fixedrange': True,
                             'gridcolor': _GRID, 'zerolinecolor': _GRID},
                   'yaxis': {'title': {'text': 'tokens/s'}, 'rangemode': 'tozero', 'fixedrange': True,
                             'gridcolor': _GRID, 'zerolinecolor': _GRID}},
        'config': {'displayModeBar': False, 'responsive': True},
    }
