"""/admin/audit: the request audit trail. Filter by user, model, status, endpoint, time range and text; page
through the matches on the server; open one request to read its prompt and response; export the filter's
conversations as JSON. Everything goes through core.audit.search, as the admin API does.

The export downloads from /admin/audit/export.json, a route on the console's own app: the browser has a
session, not an API key, and the route streams the same chunked export as GET /api/admin/audit/export.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from nicegui import app as nicegui_app
from nicegui import events, ui
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from components.admin_guard import admin_handler
from components.frame import admin_frame
from components.notify import notify_failure
from components.session import signed_in
from core import runtime
from core.audit import search as audit_search
from core.audit.search import AuditFilter, AuditPage
from core.config import Settings, get_settings
from core.db import get_database
from core.errors import InvalidRequest, MindRouterError

PAGE_SIZE = 50
DISPLAY_LIMIT = 20_000  # characters of one message shown in the drawer; the export has the rest
RANGES = {'1h': 'Last hour', '24h': 'Last 24 hours', '7d': 'Last 7 days', '30d': 'Last 30 days', 'all': 'All time',
          'custom': 'Custom (UTC)'}
COLUMNS: list[dict[str, Any]] = [
    {'name': 'time', 'label': 'Time (UTC)', 'field': 'time', 'align': 'left'},
    {'name': 'user', 'label': 'User', 'field': 'user', 'align': 'left'},
    {'name': 'endpoint', 'label': 'Endpoint', 'field': 'endpoint', 'align': 'left'},
    {'name': 'model', 'label': 'Model', 'field': 'model', 'align': 'left'},
    {'name': 'backend', 'label': 'Backend', 'field': 'backend', 'align': 'left'},
    {'name': 'status', 'label': 'Status', 'field': 'status', 'align': 'left'},
    {'name': 'tokens', 'label': 'Tokens in / out · speech', 'field': 'tokens', 'align': 'right'},
    {'name': 'latency', 'label': 'Latency', 'field': 'latency', 'align': 'right'},
    {'name': 'schema', 'label': 'Schema', 'field': 'schema', 'align': 'center'},
]
STATUS_COLORS = "{completed: 'positive', failed: 'negative', cancelled: 'grey', rejected: 'warning'}"


def register() -> None:
    @ui.page('/admin/audit')
    async def audit_page() -> None:
        async with admin_frame('Request audit'):
            _AuditView()

    @nicegui_app.get('/admin/audit/export.json', include_in_schema=False)
    async def export_download(request: Request) -> Response:
        """The console's export: the signed-in admin's session instead of an API key; the same service."""
        account = await signed_in()
        if account is None or not account.is_admin:
            return PlainTextResponse('This export is for administrators.', status_code=403)
        params = request.query_params
        try:
            flt = AuditFilter(user=params.get('user'), model=params.get('model'), status=params.get('status'),
                              endpoint=params.get('endpoint'), since=parse_utc(params.get('since', '')),
                              until=parse_utc(params.get('until', '')), text=params.get('q'))
            async with get_database().session() as session:
                await audit_search.check_export(session, flt)
        except (MindRouterError, ValueError) as exc:
            return PlainTextResponse(getattr(exc, 'message', str(exc)), status_code=400)
        return StreamingResponse(audit_search.export_json(get_database(), flt), media_type='application/json',
                                 headers={'Content-Disposition': 'attachment; filename="mindrouter-audit.json"'})


class _AuditView:
    """The filters, the table with its pager, and the drawer of one request, for one browser tab."""

    def __init__(self) -> None:
        self.flt = AuditFilter()
        self.offset = 0
        self.total = 0
        self.exact = True
        self.models_loaded = False
        settings = runtime_settings()
        unrecorded = [what for what, on in (('prompts', settings.audit_log_prompts),
                                            ('responses', settings.audit_log_responses)) if not on]
        if unrecorded:
            ui.label(f'Recording of {" and ".join(unrecorded)} is off (AUDIT_LOG_PROMPTS / AUDIT_LOG_RESPONSES): '
                     f'new requests are logged without them.') \
                .classes('text-amber-700 dark:text-amber-300').mark('audit-recording-off')
        with ui.row().classes('w-full items-start gap-3'):
            self.user = ui.input('User', placeholder='username').props('clearable dense').classes('w-40') \
                .mark('audit-user')
            self.model = ui.input('Model', autocomplete=[]).props('clearable dense').classes('w-48') \
                .mark('audit-model')
            self.status = ui.select({'': 'Any status', **{s: s for s in audit_search.STATUSES}}, value='',
                                    label='Status').props('dense').classes('w-36').mark('audit-status')
            self.endpoint = ui.input('Endpoint', autocomplete=list(audit_search.ENDPOINTS)) \
                .props('clearable dense').classes('w-52').mark('audit-endpoint')
            self.range = ui.select(RANGES, value='24h', label='Time').props('dense').classes('w-40') \
                .mark('audit-range')
            self.since = ui.input('From', placeholder='2026-01-31 08:00').props('dense').classes('w-40') \
                .bind_visibility_from(self.range, 'value', value='custom').mark('audit-from')
            self.until = ui.input('To', placeholder='2026-01-31 18:00').props('dense').classes('w-40') \
                .bind_visibility_from(self.range, 'value', value='custom').mark('audit-to')
            self.text = ui.input('Text in prompt or response', placeholder='within 7 days at most') \
                .props('clearable dense').classes('w-56').mark('audit-text')
            for field in (self.user, self.model, self.endpoint, self.since, self.until, self.text):
                field.on('keydown.enter', self.search)
            ui.button('Search', icon='search', on_click=self.search).mark('audit-search')
            ui.button('Export JSON', icon='download', on_click=self.export).props('outline').mark('audit-export')
        self.message = ui.label('').classes('text-red-600 text-sm').mark('audit-error')
        self.table = ui.table(columns=COLUMNS, rows=[], row_key='request_id').props('flat dense') \
            .classes('w-full cursor-pointer').mark('audit-table')
        self.table.add_slot('body-cell-status', f'''<q-td :props="props">
            <q-badge :color="({STATUS_COLORS})[props.value] || 'grey'" :label="props.value" /></q-td>''')
        self.table.on('rowClick', self.open_row)
        with ui.row().classes('w-full items-center justify-end gap-3'):
            self.count = ui.label('Loading…').classes('text-sm opacity-70').mark('audit-count')
            self.newer = ui.button('Newer', icon='chevron_left', on_click=lambda: self.turn(-PAGE_SIZE)) \
                .props('flat dense').mark('audit-newer')
            self.older = ui.button('Older', on_click=lambda: self.turn(PAGE_SIZE)) \
                .props('flat dense icon-right=chevron_right').mark('audit-older')
        with ui.dialog().props('position=right full-height') as self.drawer, \
                ui.card().classes('w-[760px] max-w-full h-full overflow-auto'):
            self.detail = ui.column().classes('w-full gap-3').mark('audit-detail')
        ui.timer(0.01, self.search, once=True)  # after the page is sent: the database never delays the page

    @admin_handler
    async def search(self) -> None:
        flt = self.read_filter()
        if flt is None:
            return
        await self.load(flt, offset=0, count=True)

    @admin_handler
    async def turn(self, delta: int) -> None:
        await self.load(self.flt, offset=max(0, self.offset + delta), count=False)

    async def load(self, flt: AuditFilter, *, offset: int, count: bool) -> None:
        try:
            async with get_database().session() as session:
                page = await audit_search.search(session, flt, offset=offset, limit=PAGE_SIZE, count=count)
                models = None if self.models_loaded else await audit_search.known_models(session)
        except InvalidRequest as exc:
            self.show_invalid(exc)
            self.table.rows = []  # rows of an earlier filter under a refused one would mislead
            self.table.update()
            self.count.text = ''
            return
        except Exception as exc:
            notify_failure(exc)
            return
        self.flt, self.offset = flt, offset
        if count:
            self.total, self.exact = page.total, page.total_exact
        if models is not None:
            self.model.set_autocomplete(models)
            self.models_loaded = True
        self.show(page)

    def show(self, page: AuditPage) -> None:
        self.table.rows = [table_row(row) for row in page.rows]
        self.table.update()
        shown_to = self.offset + len(page.rows)
        total = f'{self.total:,}' if self.exact else f'{self.total:,}+'
        self.count.text = f'{self.offset + 1:,} to {shown_to:,} of {total}' if page.rows else \
            ('No requests match.' if self.offset == 0 else 'No more requests.')
        self.newer.set_enabled(self.offset > 0)
        self.older.set_enabled(len(page.rows) == PAGE_SIZE and (not self.exact or shown_to < self.total))

    def read_filter(self) -> AuditFilter | None:
        """The form as a filter, or None with the reasons shown inline under the fields."""
        for field in (self.user, self.text, self.since, self.until):
            field.error = None
        self.message.text = ''
        since: datetime | None
        until: datetime | None
        if self.range.value != 'custom':
            since, until = audit_search.preset_range(str(self.range.value))
        else:
            try:
                since = parse_utc(self.since.value or '', field='From')
            except ValueError as exc:
                self.since.error = str(exc)
                return None
            try:
                until = parse_utc(self.until.value or '', field='To')
            except ValueError as exc:
                self.until.error = str(exc)
                return None
        return AuditFilter(user=self.user.value or None, model=self.model.value or None,
                           status=self.status.value or None, endpoint=self.endpoint.value or None,
                           since=since, until=until, text=self.text.value or None)

    def show_invalid(self, exc: InvalidRequest) -> None:
        fields = {'user': self.user, 'q': self.text, 'since': self.since, 'until': self.until}
        field = fields.get(exc.param or '')
        if field is not None and (field.visible or exc.param not in ('since', 'until')):
            field.error = exc.message
        else:
            self.message.text = exc.message

    @admin_handler
    async def open_row(self, event: events.GenericEventArguments) -> None:
        # Quasar's row-click sends (event, row, index).
        row = event.args[1] if isinstance(event.args, list) and len(event.args) > 1 else {}
        await self.open(str(row.get('request_id', '')))

    async def open(self, request_id: str) -> None:
        try:
            async with get_database().session() as session:
                record = await audit_search.get_request(session, request_id)
        except Exception as exc:
            notify_failure(exc)
            return
        self.detail.clear()
        with self.detail:
            request_detail(record)
        self.drawer.open()

    @admin_handler
    async def export(self) -> None:
        flt = self.read_filter()
        if flt is None:
            return
        try:
            async with get_database().session() as session:
                count, exact = await audit_search.count_matching(session, flt, cap=audit_search.EXPORT_MAX_ROWS)
        except InvalidRequest as exc:
            self.show_invalid(exc)
            return
        except Exception as exc:
            notify_failure(exc)
            return
        if not exact:
            self.message.text = (f'More than {audit_search.EXPORT_MAX_ROWS:,} requests match; an export holds at '
                                 f'most {audit_search.EXPORT_MAX_ROWS:,}. Narrow the time range or the filters.')
            return
        if count == 0:
            ui.notify('No requests match: nothing to export.', type='warning')
            return
        ui.download.from_url(f'/admin/audit/export.json?{export_query(flt)}', filename='mindrouter-audit.json')
        ui.notify(f'Exporting {count:,} request{"s" if count != 1 else ""}.')


def request_detail(record: dict[str, Any]) -> None:
    """One request, readably: what, who, timing, then the conversation."""
    with ui.row().classes('w-full items-center justify-between'):
        ui.label(record['request_id']).classes('text-lg font-mono').mark('audit-detail-id')
        ui.badge(f'{record["status"]} · HTTP {record["http_status"]}',
                 color={'completed': 'positive', 'failed': 'negative'}.get(record['status'], 'grey'))
    facts = {
        'Time (UTC)': fmt_time(record['created_at']), 'Completed': fmt_time(record['completed_at']),
        'User': record['user'] or '(deleted user)', 'API key': record['api_key'] or '—',
        'Endpoint': record['endpoint'] + (' (streamed)' if record['stream'] else ''), 'Model': record['model'],
        'Backend': record['backend'] or '—', 'Tokens in / out': f'{record["prompt_tokens"]:,} / '
        f'{record["completion_tokens"]:,}', 'Queue': fmt_ms(record['queue_ms']),
        'First token': fmt_ms(record['ttft_ms']), 'Total': fmt_ms(record['total_ms']),
        'Schema': fmt_schema(record['schema_valid']), 'Client IP': record['client_ip'] or '—',
        'User agent': record['user_agent'] or '—',
    }
    if speech := speech_usage(record):
        facts['Speech'] = speech
        facts['Recording'] = 'kept (AUDIT_LOG_AUDIO was on)' if record['audio_path'] else 'not kept'
    with ui.grid(columns='auto 1fr').classes('w-full gap-x-4 gap-y-1 text-sm'):
        for name, value in facts.items():
            ui.label(name).classes('opacity-60')
            ui.label(value).classes('break-all')
    if record['error']:
        ui.label(record['error']).classes('w-full p-2 rounded bg-red-50 dark:bg-red-950 text-red-700 '
                                          'dark:text-red-300 whitespace-pre-wrap').mark('audit-detail-error')
    ui.label('Prompt').classes('text-base font-semibold')
    with ui.column().classes('w-full gap-2').mark('audit-prompt'):
        prompt = record['prompt']
        if prompt is None:
            _note('Not recorded: AUDIT_LOG_PROMPTS was off when this request was served.')
        elif isinstance(prompt, list):
            for message in prompt:
                role = message.get('role', '?') if isinstance(message, dict) else '?'
                content = message.get('content') if isinstance(message, dict) else message
                _message(str(role), audit_search.message_text(content))
        else:
            _message('prompt', str(prompt))
    ui.label('Response').classes('text-base font-semibold')
    with ui.column().classes('w-full gap-2').mark('audit-response'):
        if record['response'] is not None:
            _message('assistant', record['response'])
        elif record['status'] != 'completed':
            _note(f'No response: the request {record["status"]}.')
        else:
            _note('Not recorded: AUDIT_LOG_RESPONSES was off when this request was served.')


def _message(role: str, text: str) -> None:
    with ui.column().classes('w-full gap-1 p-2 rounded bg-slate-100 dark:bg-slate-800'):
        ui.label(role).classes('text-xs uppercase tracking-wide opacity-60')
        shown = text if len(text) <= DISPLAY_LIMIT else \
            f'{text[:DISPLAY_LIMIT]}\n… {len(text) - DISPLAY_LIMIT:,} more characters: export for the full text'
        ui.label(shown).classes('whitespace-pre-wrap break-words font-mono text-sm')


def _note(text: str) -> None:
    ui.label(text).classes('italic opacity-70')


def table_row(row: dict[str, Any]) -> dict[str, Any]:
    return {'request_id': row['request_id'], 'time': fmt_time(row['created_at']), 'user': row['user'] or '—',
            'endpoint': row['endpoint'], 'model': row['model'], 'backend': row['backend'] or '—',
            'status': row['status'],
            'tokens': speech_usage(row) or f'{row["prompt_tokens"]:,} / {row["completion_tokens"]:,}',
            'latency': fmt_ms(row['total_ms']), 'schema': fmt_schema(row['schema_valid'])}


def speech_usage(row: dict[str, Any]) -> str:
    """A speech request's own units (what its budget counts), or '' for any other request."""
    if row['speech_chars']:
        return f'{row["speech_chars"]:,} characters spoken'
    if row['audio_seconds']:
        return f'{row["audio_seconds"]:,.1f} s of audio heard'
    return ''


def parse_utc(value: str, *, field: str = 'Time') -> datetime | None:
    """A time typed in the form or passed in the export URL: ISO 8601, UTC unless it names a zone."""
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f'{field}: use a time like 2026-01-31 08:00 (UTC)') from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def export_query(flt: AuditFilter) -> str:
    params = {'user': flt.user, 'model': flt.model, 'status': flt.status, 'endpoint': flt.endpoint, 'q': flt.text,
              'since': flt.since.isoformat() if flt.since else None,
              'until': flt.until.isoformat() if flt.until else None}
    return urlencode({name: value for name, value in params.items() if value})


def runtime_settings() -> Settings:
    live = runtime.current()
    return live.settings if live is not None else get_settings()


def fmt_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S') if value is not None else '—'


def fmt_ms(value: float | None) -> str:
    if value is None:
        return '—'
    return f'{value:,.0f} ms' if value < 1000 else f'{value / 1000:,.2f} s'


def fmt_schema(value: bool | None) -> str:
    return '—' if value is None else ('valid' if value else 'invalid')
