"""The panel of /admin/users for one user: profile and role, activate/deactivate, quota overrides, API keys, and
their stored content (export as a zip, erase on request).

Not a page of its own: pages.admin_users opens it for the user an admin picks. Each action calls the service
the admin API calls (core.accounts.users, core.quotas.quota_admin) and re-checks that the caller is still an
admin, since event handlers arrive over the websocket, after the page's own check. The export downloads from
/admin/users/<name>/export.zip, a route on the console's own app (the browser has a session, not an API key) that
calls the service GET /api/admin/users/<name>/export calls.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from nicegui import app as nicegui_app
from nicegui import ui
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, PlainTextResponse, Response

from components.admin_guard import admin_handler
from components.confirm import confirm
from components.notify import notify_failure
from components.session import require_admin, signed_in
from core import runtime
from core.accounts import service as accounts
from core.accounts import users
from core.accounts.users import KeyRow, UserChanges, UserRow
from core.admin import user_data
from core.admin.cluster_actions import Actor
from core.config import get_settings
from core.db import get_database
from core.errors import UserNotFound
from core.quotas import limits, quota_admin
from core.quotas.limits import EffectiveLimits, UserLimits
from pages.admin_roles import whole_number

# (field, label, marker, smallest value): the overrides an admin may set, as core.quotas.limits.UserLimits has them
QUOTA_FIELDS = (('scheduler_weight', 'Scheduler weight', 'quota-weight', 1),
                ('token_budget', 'Token budget', 'quota-tokens', 0),
                ('rpm_limit', 'Requests per minute', 'quota-rpm', 0),
                ('max_concurrent', 'Running requests', 'quota-concurrency', 0),
                ('tts_char_budget', 'Speech characters', 'quota-tts-chars', 0),
                ('stt_seconds_budget', 'Transcribed seconds', 'quota-stt-seconds', 0))


class UserDetail:
    def __init__(self, *, on_change: Callable[[], Awaitable[None]]) -> None:
        self._on_change = on_change  # redraws the list (a role or status shown there changed)
        self._roles: dict[str, str] = {}
        self._box = ui.column().classes('w-full gap-4').mark('user-detail')

    def set_roles(self, options: dict[str, str]) -> None:
        self._roles = options

    @admin_handler
    async def open(self, username: str) -> None:
        try:
            async with get_database().session() as session:
                row = await users.get_user_row(session, username=username)
                effective = await limits.limits_of(session, user=await accounts.get_user(session, username=username))
                keys = await users.list_keys(session, username=username)
        except Exception as exc:
            notify_failure(exc)
            return
        self._box.clear()
        with self._box, ui.card().classes('w-full gap-4').mark(f'detail-{row.username}'):
            self._header(row)
            self._profile(row)
            ui.separator()
            self._quota(row, effective)
            ui.separator()
            self._keys(row, keys)
            ui.separator()
            self._content(row)

    def _header(self, row: UserRow) -> None:
        with ui.row().classes('w-full items-center gap-3'):
            ui.icon('person', size='28px')
            ui.label(row.username).classes('text-xl font-semibold')
            ui.label(f'{row.role} · {"active" if row.is_active else "deactivated"}').classes('opacity-70') \
                .mark('detail-summary')
            ui.space()
            if row.is_active:
                ui.button('Deactivate', icon='block', on_click=lambda: self._set_active(row, False)) \
                    .props('outline color=negative').mark('user-deactivate')
            else:
                ui.button('Activate', icon='check_circle', on_click=lambda: self._set_active(row, True)) \
                    .props('outline color=positive').mark('user-activate')
            ui.button(icon='close', on_click=self._box.clear).props('flat round').tooltip('Close') \
                .mark('detail-close')
        if not row.is_active:
            ui.label('Deactivated: this user cannot sign in, and its API keys are refused.') \
                .classes('text-red-600 text-sm')

    def _profile(self, row: UserRow) -> None:
        ui.label('Profile and role').classes('font-semibold')
        with ui.row().classes('w-full items-start gap-4'):
            full_name = ui.input('Full name', value=row.full_name).classes('w-56').mark('user-full-name')
            email = ui.input('Email', value=row.email or '', validation=users.email_problem) \
                .classes('w-64').mark('user-email')
            role = ui.select(self._roles or {row.role: row.role}, value=row.role, label='Role') \
                .classes('w-40').mark('user-role')
            error = ui.label('').classes('text-red-600 text-sm self-center').mark('user-error')

            @admin_handler
            async def save() -> None:
                error.text = ''
                if not email.validate():
                    return
                sent: dict[str, Any] = {}
                if (full_name.value or '') != row.full_name:
                    sent['full_name'] = full_name.value or ''
                if (email.value or '').strip() != (row.email or ''):
                    sent['email'] = (email.value or '').strip()
                if role.value != row.role:
                    sent['role'] = role.value
                if not sent:
                    ui.notify('Nothing changed')
                    return
                try:
                    await self._update(row.username, UserChanges(**sent))
                except Exception as exc:
                    error.text = getattr(exc, 'message', None) or str(exc)
                    return
                ui.notify(f'{row.username} saved', type='positive')

            ui.button('Save', icon='save', on_click=save).classes('self-center').mark('user-save')

    @admin_handler
    async def _set_active(self, row: UserRow, active: bool) -> None:
        if not active and not await confirm(
                f'Deactivate {row.username}?', ok='Deactivate',
                detail='They are signed out at their next page, cannot sign in, and their API keys are refused.'):
            return
        try:
            await self._update(row.username, UserChanges(is_active=active))
        except Exception as exc:
            notify_failure(exc)
            return
        ui.notify(f'{row.username} {"activated" if active else "deactivated"}', type='positive')

    async def _update(self, username: str, changes: UserChanges) -> None:
        me = await require_admin()
        async with get_database().session() as session:
            await users.update_user(session, actor=_actor(me.id, me.username), username=username, changes=changes)
        runtime.forget_cached_keys()  # a deactivated user's keys are refused now, not after API_KEY_CACHE_TTL
        await self._on_change()
        await self.open(username)

    def _quota(self, row: UserRow, effective: EffectiveLimits) -> None:
        with ui.row().classes('items-baseline gap-2'):
            ui.label('Quota overrides').classes('font-semibold')
            ui.label(f'blank: the {effective.role} role\'s value').classes('text-sm opacity-70')
        inputs: dict[str, ui.number] = {}
        with ui.row().classes('w-full items-start gap-4'):
            for field, label, marker, least in QUOTA_FIELDS:
                inputs[field] = ui.number(
                    label, value=effective.overrides[field], min=least, step=1, format='%d',
                    placeholder=f'role: {effective.role_limits[field]}',
                    validation=whole_number(least, optional=True)).classes('w-44').mark(marker)
            note = ui.input('Note', value=effective.note).classes('w-64').mark('quota-note')
        ui.label(_in_force(effective)).classes('text-sm').mark('quota-effective')
        error = ui.label('').classes('text-red-600 text-sm').mark('quota-error')

        @admin_handler
        async def save(clear: bool = False) -> None:
            error.text = ''
            if not clear and not all([element.validate() for element in inputs.values()]):
                error.text = 'Fix the values marked in red.'
                return
            try:
                values = {} if clear else {field: None if element.value is None else int(element.value)
                                           for field, element in inputs.items()}
                changes = UserLimits(**values, note='' if clear else note.value or '')
                me = await require_admin()
                async with get_database().session() as session:
                    await quota_admin.set_user_quota(session, actor=_actor(me.id, me.username),
                                                     username=row.username, changes=changes)
                runtime.forget_cached_keys()  # the new limits hold from the user's next request
            except Exception as exc:
                notify_failure(exc)
                return
            ui.notify('Role defaults restored' if clear else 'Quota overrides saved', type='positive')
            await self.open(row.username)

        with ui.row().classes('gap-2'):
            ui.button('Save overrides', icon='save', on_click=lambda: save()).mark('quota-save')
            ui.button('Use role defaults', on_click=lambda: save(clear=True)).props('flat').mark('quota-clear')

    def _keys(self, row: UserRow, keys: list[KeyRow]) -> None:
        ui.label('API keys').classes('font-semibold')
        if not keys:
            ui.label('No API keys.').classes('text-sm opacity-70').mark('keys-empty')
            return
        with ui.column().classes('w-full gap-1').mark('user-keys'):
            for key in keys:
                with ui.row().classes('w-full items-center gap-4 no-wrap').mark(f'key-{key.id}'):
                    ui.label(key.name).classes('w-40 truncate')
                    ui.label(f'{key.prefix}…').classes('w-36 font-mono text-sm')
                    ui.label(key.status).classes(
                        f'w-20 {"text-green-700" if key.status == "active" else "text-red-600"}')
                    ui.label(f'created {key.created_at:%Y-%m-%d}').classes('w-40 text-sm opacity-70')
                    ui.label(f'used {key.last_used_at:%Y-%m-%d %H:%M}' if key.last_used_at else 'never used') \
                        .classes('w-44 text-sm opacity-70')
                    if key.status == 'active':
                        ui.button('Revoke', on_click=lambda k=key: self._revoke(row.username, k)) \
                            .props('flat dense color=negative').mark(f'revoke-{key.id}')

    @admin_handler
    async def _revoke(self, username: str, key: KeyRow) -> None:
        if not await confirm(f'Revoke the key {key.name} ({key.prefix}…)?', ok='Revoke',
                             detail='Programs using it are refused within seconds. This cannot be undone.'):
            return
        try:
            me = await require_admin()
            async with get_database().session() as session:
                await users.revoke_key(session, actor=_actor(me.id, me.username), key_ref=str(key.id))
            runtime.forget_cached_keys()
        except Exception as exc:
            notify_failure(exc)
            return
        ui.notify(f'Key {key.prefix}… revoked', type='positive')
        await self.open(username)


    def _content(self, row: UserRow) -> None:
        ui.label('Stored content').classes('font-semibold')
        ui.label('Their prompts and answers in the audit log, chat conversations with their files, and stored '
                 'responses. Erasing keeps the audit records (who, when, model, tokens) and the account.') \
            .classes('text-sm opacity-70')
        with ui.row().classes('gap-2'):
            ui.button('Export (zip)', icon='download',
                      on_click=lambda: ui.download.from_url(f'/admin/users/{quote(row.username)}/export.zip')) \
                .props('outline').mark('content-export')
            ui.button('Erase content', icon='delete_forever', on_click=lambda: self._erase(row)) \
                .props('outline color=negative').mark('content-erase')

    @admin_handler
    async def _erase(self, row: UserRow) -> None:
        if not await confirm(f'Erase everything {row.username} has stored?', ok='Erase',
                             detail='Prompts and answers in their audit records, their chat conversations and files, '
                                    'and their stored responses are deleted. This cannot be undone.'):
            return
        try:
            me = await require_admin()
            live = runtime.current()
            report = await user_data.erase_content(get_database(), get_settings(), username=row.username,
                                                   actor=_actor(me.id, me.username),
                                                   flush=live.flush_writes if live else None)
        except Exception as exc:
            notify_failure(exc)
            return
        ui.notify(f'Erased: {report.requests_blanked:,} audit records blanked, {report.conversations_deleted:,} '
                  f'conversations, {report.files_deleted:,} files, {report.responses_deleted:,} stored responses',
                  type='positive')


def register_routes() -> None:
    @nicegui_app.get('/admin/users/{username}/export.zip', include_in_schema=False)
    async def export_download(username: str) -> Response:
        """The console's export: the signed-in admin's session instead of an API key; the same service."""
        account = await signed_in()
        if account is None or not account.is_admin:
            return PlainTextResponse('This export is for administrators.', status_code=403)
        live = runtime.current()
        try:
            path = await user_data.export_content(get_database(), get_settings(), username=username,
                                                  actor=_actor(account.id, account.username),
                                                  flush=live.flush_writes if live else None)
        except UserNotFound as exc:
            return PlainTextResponse(exc.message, status_code=404)
        stamp = datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')
        return FileResponse(path, media_type='application/zip', filename=f'mindrouter-{username}-{stamp}.zip',
                            background=BackgroundTask(os.unlink, path))


def _actor(user_id: int, username: str) -> Actor:
    return Actor(id=user_id, name=username, via='console')


def _in_force(effective: EffectiveLimits) -> str:
    values = effective.effective

    def amount(value: int, unit: str) -> str:
        return f'unlimited {unit}' if value == 0 else f'{value:,} {unit}'
    return (f'In force: weight {values["scheduler_weight"]} · '
            f'{amount(values["token_budget"], "tokens per " + get_settings().quota_period)} · '
            f'{amount(values["rpm_limit"], "requests per minute")} · {amount(values["max_concurrent"], "running")} · '
            f'{amount(values["tts_char_budget"], "characters of speech")} · '
            f'{amount(values["stt_seconds_budget"], "seconds transcribed")}')
