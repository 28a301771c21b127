"""The dashboard's API keys: the user's own keys, a new one (shown once), and revoking one after a confirmation.

Each handler re-reads who is signed in (event handlers arrive over the websocket, after the page was built)
and acts only as that user, through core.accounts.my_keys, which refuses any key that is not the user's.
"""

from __future__ import annotations

from datetime import date, datetime

from nicegui import ui

from components.notify import notify_failure
from components.session import still_signed_in
from core import runtime
from core.accounts import my_keys
from core.db import get_database
from core.errors import InvalidRequest
from core.models import ApiKeyStatus, utcnow

STATUS_COLORS = {ApiKeyStatus.active: 'positive', ApiKeyStatus.revoked: 'negative', ApiKeyStatus.expired: 'grey'}
HEADERS = ('Name', 'Key', 'Created', 'Last used', 'Expires', 'Status', '')


class KeysSection:
    def __init__(self, user_id: int) -> None:
        self._user_id = user_id
        self._revoking: my_keys.KeyView | None = None
        with ui.card().classes('w-full') as self.card:
            with ui.row().classes('w-full items-center justify-between'):
                ui.label('API keys').classes('text-lg font-semibold')
                ui.button('New key', icon='add', on_click=self._open_create).mark('new-key')
            ui.label('Send a key as "Authorization: Bearer KEY" or "X-API-Key: KEY". Revoked keys stop working '
                     'within seconds.').classes('text-sm opacity-70')
            self.list = ui.column().classes('w-full gap-0').mark('key-list')
        self._build_create_dialog()
        self._build_revoke_dialog()

    async def load(self) -> None:
        async with get_database().session() as session:
            keys = await my_keys.list_my_keys(session, user_id=self._user_id)
        self.list.clear()
        with self.list:
            if not keys:
                ui.label('You have no API keys yet.').classes('opacity-70').mark('no-keys')
                return
            with ui.grid(columns='2fr 1.2fr 1fr 1fr 1fr auto auto').classes('w-full items-center gap-x-4 gap-y-1'):
                for header in HEADERS:
                    ui.label(header).classes('text-xs uppercase opacity-60')
                for key in keys:
                    self._key_row(key)

    def _key_row(self, key: my_keys.KeyView) -> None:
        ui.label(key.name).classes('truncate')
        ui.label(f'{key.prefix}…').classes('font-mono text-sm')
        ui.label(_day(key.created_at))
        ui.label(_day(key.last_used_at) if key.last_used_at else 'never')
        ui.label(_day(key.expires_at) if key.expires_at else 'never')
        ui.badge(key.status, color=STATUS_COLORS.get(ApiKeyStatus(key.status), 'grey')) \
            .mark(f'key-status-{key.prefix}')
        if key.status == ApiKeyStatus.active:
            ui.button('Revoke', on_click=lambda k=key: self._ask_revoke(k)).props('flat dense color=negative') \
                .mark(f'revoke-{key.prefix}')
        else:
            ui.label('')

    # creating: a name and an optional expiry date, then the plaintext once

    def _build_create_dialog(self) -> None:
        with ui.dialog() as self.create_dialog, ui.card().classes('w-96'):
            ui.label('New API key').classes('text-lg font-semibold')
            self.name = ui.input('Name', placeholder='e.g. laptop, course project',
                                 validation={'Give the key a name': lambda v: bool(v and v.strip()),
                                             f'At most {my_keys.NAME_MAX} characters':
                                                 lambda v: len((v or '').strip()) <= my_keys.NAME_MAX}) \
                .props('autofocus').classes('w-full').mark('key-name')
            self.expiry = ui.input('Expires on (optional, YYYY-MM-DD)', validation=_expiry_error) \
                .classes('w-full').mark('key-expiry')
            with self.expiry.add_slot('append'), ui.icon('event').classes('cursor-pointer'), ui.menu() as menu:
                ui.date(on_change=menu.close).bind_value(self.expiry)
            ui.label('The key stops working when that day begins (UTC).').classes('text-xs opacity-60')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=self.create_dialog.close).props('flat')
                ui.button('Create', on_click=self._create).mark('create-key')

    def _open_create(self) -> None:
        self.name.value = ''
        self.expiry.value = ''
        self.name.error = None
        self.expiry.error = None
        self.create_dialog.open()

    async def _create(self) -> None:
        if not (self.name.validate() & self.expiry.validate()):
            return
        me = await still_signed_in(self._user_id)
        if me is None:
            return
        expires_on = date.fromisoformat(self.expiry.value.strip()) if (self.expiry.value or '').strip() else None
        try:
            async with get_database().session() as session:
                key, plaintext = await my_keys.create_my_key(session, user_id=me.id, name=self.name.value,
                                                             expires_on=expires_on)
        except InvalidRequest as exc:  # the service's own checks: shown on the field concerned
            (self.expiry if exc.param == 'expires_at' else self.name).error = exc.message
            return
        except Exception as exc:
            notify_failure(exc)
            return
        self.create_dialog.close()
        self._show_once(key, plaintext)
        await self.load()

    def _show_once(self, key: my_keys.KeyView, plaintext: str) -> None:
        """The plaintext in a dialog that is deleted when closed: after that it is nowhere on the page."""
        with self.card, ui.dialog().props('persistent') as dialog, ui.card().classes('w-[36rem] max-w-full'):
            ui.label(f'Your new key "{key.name}"').classes('text-lg font-semibold')
            with ui.row().classes('w-full items-center no-wrap gap-2'):
                ui.label(plaintext).classes('font-mono text-sm break-all p-2 rounded bg-slate-100 '
                                            'dark:bg-slate-700 grow').mark('new-key-value')
                ui.button(icon='content_copy', on_click=lambda: _copy(plaintext)).props('flat round') \
                    .tooltip('Copy').mark('copy-key')
            with ui.row().classes('items-center gap-2 text-amber-700 dark:text-amber-400'):
                ui.icon('warning')
                ui.label('Copy it now: it will not be shown again. MindRouter keeps only a fingerprint of it.') \
                    .mark('new-key-warning')
            with ui.row().classes('w-full justify-end'):
                ui.button('Done', on_click=dialog.delete).mark('close-new-key')
        dialog.open()

    # revoking: a confirmation first

    def _build_revoke_dialog(self) -> None:
        with ui.dialog() as self.revoke_dialog, ui.card():
            self.revoke_question = ui.label('').mark('revoke-question')
            ui.label('Programs using it get 401 errors within seconds. This cannot be undone.') \
                .classes('text-sm opacity-70')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=self.revoke_dialog.close).props('flat')
                ui.button('Revoke', on_click=self._revoke).props('color=negative').mark('confirm-revoke')

    def _ask_revoke(self, key: my_keys.KeyView) -> None:
        self._revoking = key
        self.revoke_question.text = f'Revoke the key "{key.name}" ({key.prefix}…)?'
        self.revoke_dialog.open()

    async def _revoke(self) -> None:
        key, self._revoking = self._revoking, None
        self.revoke_dialog.close()
        if key is None:
            return
        me = await still_signed_in(self._user_id)
        if me is None:
            return
        try:
            async with get_database().session() as session:
                revoked = await my_keys.revoke_my_key(session, user_id=me.id, key_id=key.id)
            live = runtime.current()
            if live is not None:  # this process's key cache forgets it now, not after API_KEY_CACHE_TTL
                live.authenticator.invalidate(revoked.digest)
        except Exception as exc:
            notify_failure(exc)
            return
        ui.notify(f'Key "{key.name}" revoked.', type='positive')
        await self.load()


def _copy(text: str) -> None:
    ui.clipboard.write(text)
    ui.notify('Copied to the clipboard.')


def _expiry_error(value: str | None) -> str | None:
    text = (value or '').strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return 'Use the form YYYY-MM-DD'
    if day <= utcnow().date():
        return 'Pick a day after today'
    return None


def _day(moment: datetime) -> str:
    return f'{moment:%Y-%m-%d}'
