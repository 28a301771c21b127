"""/admin/queue: the scheduler's queue, live. Who waits and who runs, each user's standing against its fair
share, what each backend runs, and the queued requests in the order they will be served.

The same view as GET /api/admin/queue (core.status.overview.queue_view: the scheduler's snapshot with usernames), from
the running gateway's scheduler (core.runtime); one timer updates the tables in place every two seconds.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from components.admin_guard import admin_handler
from components.frame import admin_frame
from components.notify import notify_failure
from core import runtime
from core.status import overview

REFRESH_SECONDS = 2.0
SHOWN_REQUESTS = 100  # the head of the queue; the total is said above the table
ROWS_PER_PAGE = 25


def register() -> None:
    @ui.page('/admin/queue')
    async def queue_page() -> None:
        async with admin_frame('Queue'):
            _QueuePage()


class _QueuePage:
    def __init__(self) -> None:
        self._failing = False
        with ui.row().classes('w-full gap-8 items-baseline'):
            self._queued = ui.label('').classes('text-2xl').mark('queue-queued')
            self._running = ui.label('').classes('text-2xl').mark('queue-running')
            self._waits = ui.label('').classes('opacity-70').mark('queue-waits')
        self._empty = ui.label('Nobody is waiting and nothing is running.').classes('text-lg opacity-70') \
            .mark('queue-empty')
        self._absent = ui.label('The gateway services do not run in this process: there is no queue to show.') \
            .classes('text-lg opacity-70').mark('queue-absent')
        self._absent.set_visibility(False)
        with ui.column().classes('w-full gap-6') as self._details:
            ui.label('Users').classes('text-xl font-semibold')
            ui.label('Deficit: tokens a user has had beyond its fair share (ahead) or short of it (behind); the user '
                     'furthest behind is served first.').classes('text-sm opacity-70')
            self._users = _table('queue-users', 'username', [
                ('username', 'User', 'left'), ('weight', 'Weight', 'right'), ('queued', 'Queued', 'right'),
                ('running', 'Running', 'right'), ('standing', 'Deficit', 'right'),
                ('longest_wait', 'Longest wait', 'right')])
            ui.label('Backends').classes('text-xl font-semibold')
            self._backends = _table('queue-backends', 'name', [
                ('name', 'Backend', 'left'), ('status', 'Status', 'left'), ('running', 'Running', 'right'),
                ('queued_for', 'Queued requests it could serve', 'right')])
            ui.label('Queued requests, next to be served first').classes('text-xl font-semibold')
            self._more = ui.label('').classes('text-sm opacity-70').mark('queue-more')
            self._requests = _table('queue-requests', 'position', [
                ('position', '#', 'right'), ('username', 'User', 'left'), ('model', 'Model', 'left'),
                ('cost_tokens', 'Tokens (estimate)', 'right'), ('waited', 'Waiting', 'right')])
        # immediate: the first update runs as soon as the browser is connected, after the page was sent
        ui.timer(REFRESH_SECONDS, self._update, immediate=True)

    @admin_handler
    async def _update(self) -> None:
        live = runtime.current()
        if live is None:
            self._absent.set_visibility(True)
            for element in (self._empty, self._details):
                element.set_visibility(False)
            return
        try:
            view = await overview.queue_view(live.scheduler, live.database, limit=SHOWN_REQUESTS)
        except Exception as exc:  # the usernames come from the database: say it once, try again next time
            if not self._failing:
                notify_failure(exc)
            self._failing = True
            return
        self._failing = False
        self._show(view)

    def _show(self, view: dict[str, Any]) -> None:
        running = sum(backend['in_flight'] for backend in view['backends'])
        self._queued.set_text(f'{view["queued"]} queued')
        self._running.set_text(f'{running} running')
        self._waits.set_text(f'wait p50 {view["wait_p50_s"]:.1f} s · p95 {view["wait_p95_s"]:.1f} s'
                             if view['queued'] else '')
        users = [user for user in view['users'] if user['queued'] or user['running'] or user['deficit_tokens']]
        idle = not view['queued'] and not running
        self._empty.set_visibility(idle)
        self._details.set_visibility(not idle)
        _fill(self._users, [{
            'username': _name(user), 'weight': f'{user["weight"]:g}', 'queued': user['queued'],
            'running': user['running'], 'standing': _standing(user['deficit_tokens']),
            'longest_wait': _seconds(user['longest_wait_s']) if user['queued'] else '',
        } for user in sorted(users, key=lambda u: (-u['queued'], -u['running'], u['deficit_tokens']))])
        _fill(self._backends, [{
            'name': backend['name'], 'status': backend['status'],
            'running': f'{backend["in_flight"]} of {backend["max_concurrent"]}', 'queued_for': backend['queued_for'],
        } for backend in view['backends']])
        _fill(self._requests, [{
            'position': position, 'username': _name(request), 'model': request['model'],
            'cost_tokens': request['cost_tokens'], 'waited': _seconds(request['waited_s']),
        } for position, request in enumerate(view['requests'], start=1)])
        hidden = view['queued'] - len(view['requests'])
        self._more.set_text(f'Showing the first {len(view["requests"])} of {view["queued"]}.' if hidden > 0 else '')


def _table(marker: str, key: str, columns: list[tuple[str, str, str]]) -> ui.table:
    return ui.table(columns=[{'name': name, 'label': label, 'field': name, 'align': align}
                             for name, label, align in columns],
                    rows=[], row_key=key, pagination=ROWS_PER_PAGE).props('flat dense').classes('w-full').mark(marker)


def _fill(table: ui.table, rows: list[dict[str, Any]]) -> None:
    if table.rows != rows:  # unchanged: nothing sent
        table.rows = rows
        table.update()


def _name(row: dict[str, Any]) -> str:
    if row['username']:
        return str(row['username'])
    return 'internal' if row['user_id'] == 0 else f'user {row["user_id"]} (deleted)'


def _standing(deficit: int) -> str:
    if deficit > 0:
        return f'{deficit:,} ahead'
    if deficit < 0:
        return f'{-deficit:,} behind'
    return 'even'


def _seconds(value: float) -> str:
    return f'{value:.1f} s' if value < 120 else f'{value / 60:.1f} min'
