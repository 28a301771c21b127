"""/admin/log: the admin audit log. Who changed what, when, through the console or the API; filter by who and
by action (or its prefix, e.g. "user."), page through on the server, and open an entry to see its before and
after side by side with the changed keys highlighted. Reads through core.audit.admin_log, as GET /api/admin/log does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from nicegui import events, ui

from components.admin_guard import admin_handler
from components.frame import admin_frame
from components.notify import notify_failure
from core.audit import admin_log
from core.audit import search as audit_search
from core.db import get_database
from core.models import AdminAction

PAGE_SIZE = 50
VALUE_LIMIT = 2_000  # characters of one value shown in the diff
COLUMNS: list[dict[str, Any]] = [
    {'name': 'time', 'label': 'Time (UTC)', 'field': 'time', 'align': 'left'},
    {'name': 'actor', 'label': 'Who', 'field': 'actor', 'align': 'left'},
    {'name': 'action', 'label': 'Action', 'field': 'action', 'align': 'left'},
    {'name': 'target', 'label': 'Target', 'field': 'target', 'align': 'left'},
    {'name': 'via', 'label': 'Via', 'field': 'via', 'align': 'left'},
    {'name': 'changed', 'label': 'Changed', 'field': 'changed', 'align': 'left'},
]


def register() -> None:
    @ui.page('/admin/log')
    async def admin_log_page() -> None:
        async with admin_frame('Admin log'):
            _LogView()


class _LogView:
    def __init__(self) -> None:
        self.actor: str | None = None
        self.action: str | None = None
        self.offset = 0
        self.total = 0
        self.entries: dict[int, AdminAction] = {}
        with ui.row().classes('w-full items-start gap-3'):
            self.who = ui.input('Who', placeholder='username').props('clearable dense').classes('w-48') \
                .mark('log-actor')
            self.what = ui.input('Action', placeholder='e.g. user. or backend.drain').props('clearable dense') \
                .classes('w-64').mark('log-action')
            for field in (self.who, self.what):
                field.on('keydown.enter', self.search)
            ui.button('Search', icon='search', on_click=self.search).mark('log-search')
        self.table = ui.table(columns=COLUMNS, rows=[], row_key='id').props('flat dense') \
            .classes('w-full cursor-pointer').mark('log-table')
        self.table.on('rowClick', self.open_row)
        with ui.row().classes('w-full items-center justify-end gap-3'):
            self.count = ui.label('Loading…').classes('text-sm opacity-70').mark('log-count')
            self.newer = ui.button('Newer', icon='chevron_left', on_click=lambda: self.load(self.offset - PAGE_SIZE)) \
                .props('flat dense').mark('log-newer')
            self.older = ui.button('Older', on_click=lambda: self.load(self.offset + PAGE_SIZE)) \
                .props('flat dense icon-right=chevron_right').mark('log-older')
        with ui.dialog() as self.dialog, ui.card().classes('w-[760px] max-w-full'):
            self.detail = ui.column().classes('w-full gap-3').mark('log-detail')
        ui.timer(0.01, self.search, once=True)  # after the page is sent

    @admin_handler
    async def search(self) -> None:
        self.actor = (self.who.value or '').strip() or None
        self.action = (self.what.value or '').strip() or None
        await self.load(0)

    @admin_handler
    async def load(self, offset: int) -> None:
        offset = max(0, offset)
        try:
            async with get_database().session() as session:
                entries, total = await admin_log.search(session, actor=self.actor, action=self.action,
                                                        offset=offset, limit=PAGE_SIZE)
        except Exception as exc:
            notify_failure(exc)
            return
        self.offset, self.total = offset, total
        self.entries = {entry.id: entry for entry in entries if entry.id is not None}
        self.table.rows = [table_row(entry) for entry in entries]
        self.table.update()
        self.count.text = f'{offset + 1:,} to {offset + len(entries):,} of {total:,}' if entries else \
            'No entries match.'
        self.newer.set_enabled(offset > 0)
        self.older.set_enabled(offset + len(entries) < total)

    @admin_handler
    async def open_row(self, event: events.GenericEventArguments) -> None:
        # Quasar's row-click sends (event, row, index).
        row = event.args[1] if isinstance(event.args, list) and len(event.args) > 1 else {}
        self.open(int(row.get('id', 0)))

    def open(self, entry_id: int) -> None:
        entry = self.entries.get(entry_id)
        if entry is None:
            ui.notify('That entry is no longer on this page; search again.', type='warning')
            return
        self.detail.clear()
        with self.detail:
            entry_detail(entry)
        self.dialog.open()


def entry_detail(entry: AdminAction) -> None:
    with ui.row().classes('w-full items-center justify-between'):
        ui.label(entry.action).classes('text-lg font-mono').mark('log-detail-action')
        ui.label(f'{fmt_time(entry.created_at)} UTC').classes('text-sm opacity-70')
    ui.label(f'{entry.actor} via {entry.via}' + (f' · {entry.target}' if entry.target else '')).classes('text-sm')
    diff = audit_search.changes(entry.before, entry.after)
    if not diff:
        ui.label('No before or after was recorded for this action.').classes('italic opacity-70')
        return
    with ui.grid(columns='auto 1fr 1fr').classes('w-full gap-x-4 gap-y-1 text-sm items-start').mark('log-diff'):
        for heading in ('', 'Before', 'After'):
            ui.label(heading).classes('font-semibold')
        for change in diff:
            tint = 'bg-amber-100 dark:bg-amber-900 font-semibold' if change.changed else 'opacity-70'
            ui.label(change.key).classes(f'font-mono px-1 rounded {tint}') \
                .mark('diff-changed' if change.changed else 'diff-same')
            ui.label(_shown(change.before, present=entry.before is not None and change.key in entry.before)) \
                .classes(f'font-mono whitespace-pre-wrap break-all px-1 rounded {tint}')
            ui.label(_shown(change.after, present=entry.after is not None and change.key in entry.after)) \
                .classes(f'font-mono whitespace-pre-wrap break-all px-1 rounded {tint}')


def table_row(entry: AdminAction) -> dict[str, Any]:
    changed = audit_search.admin_action_row(entry)['changed']
    return {'id': entry.id, 'time': fmt_time(entry.created_at), 'actor': entry.actor, 'action': entry.action,
            'target': entry.target, 'via': entry.via, 'changed': ', '.join(changed) or '—'}


def _shown(value: Any, *, present: bool) -> str:
    """Text as it is, anything else as JSON spells it (null, true, 3, [...]); an absent key or an empty text
    says so, rather than showing nothing."""
    if not present:
        return '(absent)'
    if value == '':
        return '(empty)'
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= VALUE_LIMIT else f'{text[:VALUE_LIMIT]}… ({len(text) - VALUE_LIMIT:,} more)'


def fmt_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')
