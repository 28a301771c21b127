"""/dashboard: every signed-in user's own page. How much of the token budget this period is used and the limits
that apply, usage charts, the user's recent requests, API keys, and asking an admin for more quota.

Everything on it is the signed-in user's alone: each query is scoped to the user id read from the session and
re-checked against the database when the page is built. The page is sent at once and filled by its one timer,
whose first tick loads everything and whose later ticks refresh the live parts (usage this period, recent
requests, the quota requests' decisions) in place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import app as nicegui_app
from nicegui import ui
from starlette.responses import RedirectResponse

from components.frame import frame
from components.notify import notify_failure
from components.session import signed_in, still_signed_in
from core import runtime
from core.config import get_settings
from core.db import get_database
from core.errors import InvalidRequest, MindRouterError
from core.models import QuotaRequest, QuotaRequestStatus
from core.quotas import quota_requests, usage
from core.quotas.guard import Period
from core.quotas.quota_requests import QuotaRequestCreate
from pages.dashboard_keys import KeysSection
from pages.dashboard_usage import RecentRequests, UsageSection

REFRESH_SECONDS = 10.0
PERIOD_WORDS = {'day': 'today', 'week': 'this week', 'month': 'this month'}
STATUS_COLORS = {QuotaRequestStatus.pending: 'orange', QuotaRequestStatus.approved: 'positive',
                 QuotaRequestStatus.denied: 'negative'}
REASON_MIN, REASON_MAX = 10, 4000  # as QuotaRequestCreate.justification
# The request form, a row of fields each: (QuotaRequestCreate field, label, marker)
ASKED_ROWS = ((('requested_tokens', 'Token budget per {period}', 'quota-tokens'),
               ('requested_rpm', 'Requests per minute', 'quota-rpm'),
               ('requested_max_concurrent', 'Running at once', 'quota-concurrent')),
              (('requested_tts_chars', 'Speech characters per {period}', 'quota-tts'),
               ('requested_stt_seconds', 'Transcription seconds per {period}', 'quota-stt')))


def register() -> None:
    @ui.page('/dashboard')
    async def dashboard_page() -> RedirectResponse | None:
        me = await signed_in()
        if me is None:  # deactivated since the session began
            return RedirectResponse('/login?redirect_to=/dashboard')
        period = _period()
        with frame('Dashboard'):
            ui.label(f'Signed in as {me.username} ({me.role}).').classes('opacity-70').mark('dashboard-who')
            problem = ui.label('').classes('text-red-600').mark('dashboard-error')
            problem.visible = False
            summary = Summary(me.id, period)
            charts = UsageSection(me.id, dark=bool(nicegui_app.storage.user.get('dark_mode')))
            recent = RecentRequests(me.id)
            keys = KeysSection(me.id)
            quota = QuotaRequests(me.id, period)

        first = True

        async def tick() -> None:
            nonlocal first
            loads: list[Callable[[], Awaitable[None]]] = [summary.load, recent.load, quota.load]
            if first:
                loads += [charts.load, keys.load]
            try:
                for load in loads:
                    await load()
            except MindRouterError as exc:  # e.g. the database is unreachable: say so, try again next tick
                problem.text, problem.visible = f'Could not load your figures: {exc.message}', True
                return
            first, problem.visible = False, False

        ui.timer(REFRESH_SECONDS, tick)  # immediate: its first tick fills the page once it is connected
        return None


class Summary:
    """Tokens used against the budget this period, requests, the running limits, and when the budget renews."""

    def __init__(self, user_id: int, period: Period) -> None:
        self._user_id = user_id
        self._period = period
        with ui.card().classes('w-full'):
            ui.label(f'Your usage {PERIOD_WORDS[period]}').classes('text-lg font-semibold')
            self.progress = ui.linear_progress(value=0, show_value=False, size='14px').mark('usage-progress')
            with ui.row().classes('w-full items-baseline justify-between'):
                self.tokens = ui.label('Loading…').classes('text-xl').mark('usage-tokens')
                self.reset = ui.label('').classes('text-sm opacity-70').mark('period-reset')
            with ui.row().classes('w-full gap-8'):
                self.requests = _stat('Requests', 'usage-requests')
                self.rpm = _stat('Requests per minute', 'limit-rpm')
                self.concurrency = _stat('Running at once', 'limit-concurrency')
                self.role = _stat('Role', 'usage-role')
            self.speech = ui.label('').classes('text-sm').mark('usage-speech')

    async def load(self) -> None:
        async with get_database().session() as session:
            summary = await usage.account_summary(session, user_id=self._user_id, period=self._period)
        used = summary.used.tokens
        fraction = summary.budget_fraction
        if fraction is None:
            self.tokens.text = f'{used:,} tokens used · unlimited budget'
            self.progress.visible = False
        else:
            self.tokens.text = f'{used:,} of {summary.token_budget:,} tokens ({fraction:.1%})'
            self.progress.value = fraction
            self.progress.props(f'color={"negative" if fraction >= 0.9 else "primary"}')
            self.progress.visible = True
        self.reset.text = f'Renews {summary.period_end:%Y-%m-%d %H:%M} UTC'
        self.requests.text = f'{summary.used.requests:,}'
        self.rpm.text = _limit(summary.rpm_limit)
        live = runtime.current()
        running = f' ({live.ledger.user_in_flight(self._user_id)} running now)' if live else ''
        self.concurrency.text = _limit(summary.max_concurrent) + running
        self.role.text = summary.role
        self.speech.text = speech_line(summary)
        self.speech.visible = bool(self.speech.text)


def speech_line(summary: usage.AccountSummary) -> str:
    """Speech in its own units, against its budgets; empty for someone who has no speech use and no speech budget."""
    used, parts = summary.used, []
    if used.speech_chars or summary.tts_char_budget:
        budget = f' of {summary.tts_char_budget:,}' if summary.tts_char_budget else ''
        parts.append(f'{used.speech_chars:,}{budget} characters read aloud')
    if used.audio_seconds or summary.stt_seconds_budget:
        budget = f' of {summary.stt_seconds_budget:,}' if summary.stt_seconds_budget else ''
        parts.append(f'{used.audio_seconds:,.0f}{budget} seconds of audio transcribed')
    return 'Speech: ' + ' · '.join(parts) if parts else ''


class QuotaRequests:
    """Ask an admin for more (a form validated inline) and the decisions on the user's requests."""

    def __init__(self, user_id: int, period: Period) -> None:
        self._user_id = user_id
        with ui.card().classes('w-full'):
            ui.label('Request more quota').classes('text-lg font-semibold')
            ui.label('Ask for what you need; an administrator approves or denies it, with a note. Leave a field '
                     'empty to keep its current limit.').classes('text-sm opacity-70')
            self.asked: dict[str, ui.input] = {}
            for row in ASKED_ROWS:
                with ui.row().classes('w-full gap-4'):
                    for field, label, marker in row:
                        self.asked[field] = ui.input(label.format(period=period), validation=_whole_number) \
                            .classes('grow').mark(marker)
            self.reason = ui.textarea('Why do you need it?', validation=_reason_error).classes('w-full') \
                .mark('quota-reason')
            self.error = ui.label('').classes('text-red-600 text-sm').mark('quota-error')
            with ui.row().classes('items-center gap-4'):
                self.submit = ui.button('Send request', on_click=self._file).mark('quota-submit')
                self.pending_note = ui.label('You have a pending request; you can file another once it is decided.') \
                    .classes('text-sm opacity-70')
            ui.separator()
            ui.label('Your requests').classes('font-semibold')
            self.list = ui.column().classes('w-full gap-2').mark('quota-requests')

    async def load(self) -> None:
        async with get_database().session() as session:
            mine = await quota_requests.list_requests(session, user_id=self._user_id)
        pending = any(r.status == QuotaRequestStatus.pending for r in mine)
        self.submit.set_enabled(not pending)
        self.pending_note.visible = pending
        self.list.clear()
        with self.list:
            if not mine:
                ui.label('None yet.').classes('opacity-70')
            for request in mine[:20]:  # the latest; older decisions stay in the admin's records
                _request_row(request)

    async def _file(self) -> None:
        self.error.text = ''
        fields = (*self.asked.values(), self.reason)
        if not all([field.validate() for field in fields]):
            return
        amounts = {field: amount for field, element in self.asked.items()
                   if (amount := _as_int(element.value)) is not None}
        if not amounts:
            self.error.text = 'Ask for at least one: a budget, requests per minute or running at once.'
            return
        me = await still_signed_in(self._user_id)
        if me is None:
            return
        try:
            data = QuotaRequestCreate(justification=self.reason.value.strip(), **amounts)
            async with get_database().session() as session:
                await quota_requests.file_request(session, user_id=me.id, data=data)
        except InvalidRequest as exc:  # e.g. a request is already pending: shown with the form
            self.error.text = exc.message
            return
        except Exception as exc:
            notify_failure(exc)
            return
        for field in fields:
            field.value = ''
            field.error = None
        ui.notify('Request sent; an administrator will decide on it.', type='positive')
        await self.load()


def _request_row(request: QuotaRequest) -> None:
    asked = [f'{request.requested_tokens:,} tokens' if request.requested_tokens else '',
             f'{request.requested_rpm:,} requests/min' if request.requested_rpm else '',
             f'{request.requested_max_concurrent} at once' if request.requested_max_concurrent else '',
             f'{request.requested_tts_chars:,} speech characters' if request.requested_tts_chars else '',
             f'{request.requested_stt_seconds:,} transcription seconds' if request.requested_stt_seconds else '']
    with ui.row().classes('w-full items-start gap-3 no-wrap').mark('quota-request'):
        ui.badge(request.status, color=STATUS_COLORS.get(QuotaRequestStatus(request.status), 'grey')) \
            .mark(f'quota-status-{request.id}')
        with ui.column().classes('gap-0 grow'):
            ui.label(f'{request.created_at:%Y-%m-%d}: {" · ".join(a for a in asked if a)}').classes('font-medium')
            ui.label(request.justification).classes('text-sm opacity-80 break-words')
            if request.reviewed_at is not None:
                note = f': {request.review_note}' if request.review_note else ''
                ui.label(f'{request.status.capitalize()} on {request.reviewed_at:%Y-%m-%d}{note}') \
                    .classes('text-sm').mark(f'quota-decision-{request.id}')


def _stat(title: str, marker: str) -> ui.label:
    with ui.column().classes('gap-0'):
        ui.label(title).classes('text-xs uppercase opacity-60')
        return ui.label('…').classes('text-lg').mark(marker)


def _limit(value: int) -> str:
    return 'unlimited' if value == 0 else f'{value:,}'


def _period() -> Period:
    live = runtime.current()
    return live.settings.quota_period if live else get_settings().quota_period


def _as_int(value: str | None) -> int | None:
    text = (value or '').strip().replace(',', '').replace('_', '').replace(' ', '')
    return int(text) if text else None


def _whole_number(value: str | None) -> str | None:
    try:
        number = _as_int(value)
    except ValueError:
        return 'Enter a whole number of at least 1'
    return 'Enter a whole number of at least 1' if number is not None and number < 1 else None


def _reason_error(value: str | None) -> str | None:
    length = len((value or '').strip())
    if length < REASON_MIN:
        return f'Explain in at least {REASON_MIN} characters'
    return f'At most {REASON_MAX} characters' if length > REASON_MAX else None
