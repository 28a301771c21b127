"""The dashboard's usage parts: charts over a chosen range, and the user's recent requests a page at a time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from nicegui import ui

from components.notify import notify_failure
from components.usage_charts import UsageCharts
from core.db import get_database
from core.models import utcnow
from core.quotas import usage

PAGE_SIZE = 20
DEFAULT_RANGE = 30

COLUMNS = [
    {'name': 'time', 'label': 'Time (UTC)', 'field': 'time', 'align': 'left'},
    {'name': 'endpoint', 'label': 'Endpoint', 'field': 'endpoint', 'align': 'left'},
    {'name': 'model', 'label': 'Model', 'field': 'model', 'align': 'left'},
    {'name': 'status', 'label': 'Status', 'field': 'status', 'align': 'left'},
    {'name': 'tokens', 'label': 'Tokens (prompt / completion)', 'field': 'tokens', 'align': 'right'},
    {'name': 'latency', 'label': 'Latency', 'field': 'latency', 'align': 'right'},
]


class UsageSection:
    """Tokens per day and by model for the last 7, 30 or 90 days (UTC)."""

    def __init__(self, user_id: int, *, dark: bool) -> None:
        self._user_id = user_id
        with ui.card().classes('w-full'):
            with ui.row().classes('w-full items-center justify-between'):
                ui.label('Usage over time').classes('text-lg font-semibold')
                self.range = ui.toggle({days: f'{days} days' for days in usage.RANGES}, value=DEFAULT_RANGE,
                                       on_change=lambda: _shown(self.load)).mark('usage-range')
            self.charts = UsageCharts(dark=dark)
            self.caption = ui.label('').classes('text-sm opacity-70').mark('usage-range-total')

    async def load(self) -> None:
        days = int(self.range.value or DEFAULT_RANGE)
        today = utcnow().date()
        first = today - timedelta(days=days - 1)
        async with get_database().session() as session:
            per_day = await usage.daily(session, user_id=self._user_id, days=days, today=today)
            per_model = await usage.by_model(session, user_id=self._user_id,
                                             since=datetime(first.year, first.month, first.day, tzinfo=UTC))
        self.charts.show(per_day, per_model)
        tokens = sum(d.prompt_tokens + d.completion_tokens for d in per_day)
        requests = sum(d.requests for d in per_day)
        self.caption.text = f'{requests:,} requests and {tokens:,} tokens in the last {days} days.'


class RecentRequests:
    """The user's requests, newest first, paged on the server (never more than a page in memory)."""

    def __init__(self, user_id: int) -> None:
        self._user_id = user_id
        with ui.card().classes('w-full'):
            with ui.row().classes('w-full items-center justify-between'):
                ui.label('Recent requests').classes('text-lg font-semibold')
                self.count = ui.label('').classes('text-sm opacity-70').mark('recent-count')
            self.table = ui.table(columns=COLUMNS, rows=[], row_key='key').classes('w-full') \
                .props('flat dense no-data-label="No requests yet"').mark('recent-requests')
            self.pager = ui.pagination(1, 1, direction_links=True, on_change=lambda: _shown(self.load)) \
                .props('boundary-links').mark('recent-pager')

    async def load(self) -> None:
        page = int(self.pager.value or 1)
        async with get_database().session() as session:
            rows, total = await usage.recent(session, user_id=self._user_id, offset=(page - 1) * PAGE_SIZE,
                                             limit=PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        self.pager.max = pages
        self.pager.visible = pages > 1
        if page > pages:  # the list shrank (it cannot today, but a page past the end must not stick)
            self.pager.value = pages
            return
        self.table.rows = [_row((page - 1) * PAGE_SIZE + n, row) for n, row in enumerate(rows)]
        self.count.text = f'{total:,} request{"" if total == 1 else "s"} in all'


async def _shown(load: Callable[[], Awaitable[None]]) -> None:
    """A reload the user asked for (another range, another page): a failure is told, never a traceback."""
    try:
        await load()
    except Exception as exc:
        notify_failure(exc)


def _row(key: int, row: usage.RequestRow) -> dict[str, object]:
    status = row.status if row.http_status == 200 else f'{row.status} ({row.http_status})'
    return {'key': key, 'time': f'{row.created_at:%Y-%m-%d %H:%M:%S}', 'endpoint': row.endpoint,
            'model': row.model or '-', 'status': status,
            'tokens': f'{row.prompt_tokens:,} / {row.completion_tokens:,}', 'latency': _latency(row.total_ms)}


def _latency(ms: float) -> str:
    return f'{ms:,.0f} ms' if ms < 1000 else f'{ms / 1000:,.1f} s'
