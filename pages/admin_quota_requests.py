"""/admin/quota-requests: what users asked for, pending ones first (oldest first), each with the requester's
limits now; approve (as asked, or with the amounts edited, and a note) or deny (with a note). Decided ones
follow, newest first, saying who decided and when.

Decisions go through core.quotas.quota_admin.decide_request, the service POST /api/admin/quota-requests/{id}/approve
and /deny call, so the user's limits rise in the same transaction and the admin log records it. The page's
one timer watches for new requests and offers (on the Refresh button) to show them, rather than redrawing
under an admin's edits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from components.admin_guard import admin_handler
from components.frame import admin_frame
from components.notify import notify_failure
from components.session import require_admin
from core import runtime
from core.admin.cluster_actions import Actor
from core.config import get_settings
from core.db import get_database
from core.quotas import quota_admin
from core.quotas.quota_admin import ReviewRow
from core.quotas.quota_requests import QuotaDecision
from pages.admin_roles import whole_number

PAGE_SIZE = 20
WATCH_SECONDS = 10.0

# (what was asked, the limit it raises, label, marker prefix); a budget's label gets "per <quota period>"
ASKED = (('requested_tokens', 'token_budget', 'Token budget', 'grant-tokens'),
         ('requested_rpm', 'rpm_limit', 'Requests per minute', 'grant-rpm'),
         ('requested_max_concurrent', 'max_concurrent', 'Running requests', 'grant-concurrency'),
         ('requested_tts_chars', 'tts_char_budget', 'Speech characters', 'grant-tts'),
         ('requested_stt_seconds', 'stt_seconds_budget', 'Transcription seconds', 'grant-stt'))
BUDGETS = frozenset({'token_budget', 'tts_char_budget', 'stt_seconds_budget'})
SPEECH = frozenset({'tts_char_budget', 'stt_seconds_budget'})  # shown only on a request that asks for speech


def register() -> None:
    @ui.page('/admin/quota-requests')
    async def quota_requests_page() -> None:
        async with admin_frame('Quota requests'):
            page = _ReviewPage()
            ui.timer(0.01, page.show, once=True)  # after the page is sent
            ui.timer(WATCH_SECONDS, page.watch)


class _ReviewPage:
    def __init__(self) -> None:
        self._offset = 0
        self._shown: tuple[int, int] = (-1, -1)  # (pending, total) when last drawn
        with ui.row().classes('w-full items-center gap-4'):
            self._summary = ui.label('Loading…').classes('text-lg').mark('pending-count')
            ui.space()
            self._refresh = ui.button('Refresh', icon='refresh', on_click=self.show).props('flat') \
                .mark('quota-refresh')
        self._list = ui.column().classes('w-full gap-4').mark('quota-requests')
        with ui.row().classes('w-full items-center justify-end gap-2'):
            self._range = ui.label('').classes('text-sm opacity-70').mark('quota-range')
            self._prev = ui.button(icon='chevron_left', on_click=lambda: self._page(-PAGE_SIZE)) \
                .props('flat round dense').mark('quota-prev')
            self._next = ui.button(icon='chevron_right', on_click=lambda: self._page(PAGE_SIZE)) \
                .props('flat round dense').mark('quota-next')

    @admin_handler
    async def show(self) -> None:
        try:
            async with get_database().session() as session:
                page = await quota_admin.review_list(session, offset=self._offset, limit=PAGE_SIZE)
        except Exception as exc:
            notify_failure(exc)
            return
        self._shown = (page.pending, page.total)
        self._refresh.text = 'Refresh'
        self._refresh.props(remove='color')
        self._summary.text = f'{page.pending} pending' if page.pending else 'Nothing pending'
        self._list.clear()
        with self._list:
            for row in page.rows:
                _RequestCard(row, on_decided=self.show)
            if not page.rows:
                ui.label('No quota requests yet. Users ask from their dashboard or POST /api/account/quota-requests.') \
                    .classes('opacity-70').mark('quota-empty')
        last = self._offset + len(page.rows)
        self._range.text = f'{self._offset + 1}-{last} of {page.total}' if page.rows else ''
        self._prev.set_enabled(self._offset > 0)
        self._next.set_enabled(last < page.total)

    @admin_handler
    async def watch(self) -> None:
        """Offer to show what arrived since the list was drawn (new requests, or decisions made elsewhere)."""
        try:
            async with get_database().session() as session:
                page = await quota_admin.review_list(session, offset=0, limit=1)
        except Exception:
            return  # the next tick tries again; the banner of the frame reports an unreachable database
        if (page.pending, page.total) != self._shown:
            self._refresh.text = 'New requests or decisions: show them'
            self._refresh.props('color=primary')

    @admin_handler
    async def _page(self, step: int) -> None:
        self._offset = max(0, self._offset + step)
        await self.show()


class _RequestCard:
    def __init__(self, row: ReviewRow, *, on_decided: Callable[[], Awaitable[None]]) -> None:
        self._row = row
        self._on_decided = on_decided
        pending = row.status == 'pending'
        colour = {'pending': 'bg-amber-500', 'approved': 'bg-green-600', 'denied': 'bg-red-600'}[row.status]
        with ui.card().classes('w-full gap-2').mark(f'request-{row.id}'):
            with ui.row().classes('w-full items-center gap-3'):
                ui.label(row.status).classes(f'px-2 rounded text-white text-sm {colour}').mark(f'status-{row.id}')
                ui.label(row.username).classes('text-lg font-semibold')
                ui.label(f'{row.role} · asked {row.created_at:%Y-%m-%d %H:%M} UTC').classes('opacity-70')
            ui.label(row.justification).classes('whitespace-pre-wrap').mark(f'reason-{row.id}')
            self._inputs: dict[str, ui.number] = {}
            with ui.row().classes('w-full items-start gap-6'):
                for asked, limit, label, marker in ASKED:
                    value = row.asked.get(asked)
                    if value is None and limit in SPEECH:
                        continue
                    with ui.column().classes('gap-0'):
                        per = f' per {get_settings().quota_period}' if limit in BUDGETS else ''
                        ui.label(label + per).classes('text-xs uppercase opacity-60')
                        ui.label(f'now {_amount(row.current[limit])}').classes('text-sm') \
                            .mark(f'now-{marker}-{row.id}')
                        if pending and value is not None:
                            self._inputs[limit] = ui.number(f'asked {value:,}', value=value, min=1, step=1, format='%d',
                                                            validation=whole_number(1, optional=True)) \
                                .classes('w-44').mark(f'{marker}-{row.id}')
                        elif value is not None:
                            ui.label(f'asked {value:,}').classes('text-sm')
            if pending:
                self._note = ui.input('Note to the user (optional)').classes('w-full').mark(f'note-{row.id}')
                with ui.row().classes('gap-2'):
                    ui.button('Approve', icon='check', on_click=lambda: self._decide(True)) \
                        .props('color=positive').mark(f'approve-{row.id}')
                    ui.button('Deny', icon='close', on_click=lambda: self._decide(False)) \
                        .props('outline color=negative').mark(f'deny-{row.id}')
            else:
                when = f'{row.reviewed_at:%Y-%m-%d %H:%M} UTC' if row.reviewed_at else 'an unknown time'
                ui.label(f'{row.status.capitalize()} by {row.reviewer or "a removed account"} on {when}'
                         + (f': {row.review_note}' if row.review_note else '')).classes('text-sm') \
                    .mark(f'decision-{row.id}')

    @admin_handler
    async def _decide(self, approve: bool) -> None:
        if approve and not all([element.validate() for element in self._inputs.values()]):
            return
        try:
            me = await require_admin()
            granted = {limit: int(element.value) for limit, element in self._inputs.items()
                       if element.value is not None} if approve else {}
            decision = QuotaDecision(note=self._note.value or '', **granted)
            async with get_database().session() as session:
                await quota_admin.decide_request(session, actor=Actor(id=me.id, name=me.username),
                                                 request_id=self._row.id, approve=approve, decision=decision)
            runtime.forget_cached_keys()  # an approval's limits hold from the user's next request
        except Exception as exc:
            notify_failure(exc)
            return
        ui.notify(f'Request of {self._row.username} {"approved" if approve else "denied"}', type='positive')
        await self._on_decided()


def _amount(value: int) -> str:
    return 'unlimited' if value == 0 else f'{value:,}'
