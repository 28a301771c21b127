"""/admin/sso: single sign-on providers and identities waiting to be linked.

- The provider of the OIDC_* settings (`oidc`) is shown read-only: change it in the environment.
- Admins add, change and delete further providers here (each at /auth/{name}/login). The client secret is
  sealed before it is stored (core.secretbox) and never put back in the page: leave it empty to keep it.
- A first sign-in whose email belongs to an existing account does not take it over; it waits here until an admin
  links it to that account (core.accounts.sso_users).
Every change goes through core.accounts.sso_admin and is written to the admin log.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from nicegui import ui
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from components.admin_guard import admin_handler
from components.confirm import confirm
from components.frame import admin_frame
from components.notify import notify_failure
from components.session import require_admin
from core.accounts import sso_admin
from core.accounts.local_login import local_login_enabled
from core.accounts.service import list_roles
from core.accounts.sso_admin import PendingIdentity, ProviderInput, ProviderRow
from core.accounts.sso_config import parse_role_map
from core.admin.cluster_actions import Actor
from core.config import get_settings
from core.db import get_database
from core.errors import InvalidRequest

REFUSE = '(refuse)'  # the default-role choice that refuses users no mapped claim names


def register() -> None:
    @ui.page('/admin/sso')
    async def sso_page() -> None:
        async with admin_frame('Single sign-on'):
            page = _SsoPage()
            ui.timer(0.01, admin_handler(page.load), once=True)  # after the page is sent


class _SsoPage:
    def __init__(self) -> None:
        self._form: _ProviderForm  # drawn below the providers' list
        self._local = ui.label('').classes('opacity-80').mark('sso-local-login')
        ui.label('Providers').classes('text-xl font-semibold')
        self._providers = ui.column().classes('w-full gap-3').mark('sso-providers')
        with ui.row().classes('gap-2'):
            ui.button('Add provider', icon='add', on_click=lambda: self._form.open(None)).mark('sso-add')
        self._form = _ProviderForm(on_saved=self.load)
        ui.label('Waiting to be linked').classes('text-xl font-semibold')
        ui.label('Someone signed in through a provider with the email of an existing account. The account was not '
                 'taken over: link it if the two are the same person.').classes('text-sm opacity-70')
        self._pending = ui.column().classes('w-full gap-2').mark('sso-pending')

    async def load(self) -> None:
        try:
            async with get_database().session() as session:
                providers = await sso_admin.list_providers(session, get_settings())
                pending = await sso_admin.pending_identities(session)
                local = await local_login_enabled(session, get_settings())
                roles = [role.name for role in await list_roles(session)]
        except Exception as exc:
            notify_failure(exc)
            return
        self._local.text = ('Password sign-in is on.' if local else
                            'Password sign-in is off (single sign-on only). From the shell, '
                            '`mindrouter local-login on` turns it back on.')
        self._form.set_roles(roles)
        self._providers.clear()
        with self._providers:
            for row in providers:
                self._provider(row)
            if not providers:
                ui.label('No provider: set OIDC_METADATA_URL (docs/sso.md) or add one here.') \
                    .classes('opacity-70').mark('sso-providers-empty')
        self._pending.clear()
        with self._pending:
            for identity in pending:
                self._waiting(identity)
            if not pending:
                ui.label('None.').classes('opacity-70').mark('sso-pending-empty')

    def _provider(self, row: ProviderRow) -> None:
        with ui.card().classes('w-full gap-1').mark(f'sso-provider-{row.name}'):
            with ui.row().classes('w-full items-baseline gap-3'):
                ui.label(row.display_name).classes('text-lg font-semibold')
                ui.label(f'/auth/{row.name}/login').classes('font-mono text-sm opacity-70')
                if row.source == 'environment':
                    ui.label('from the OIDC_* settings: read-only').classes(
                        'px-2 rounded bg-slate-500 text-white text-xs').mark(f'sso-readonly-{row.name}')
                elif not row.enabled:
                    ui.label('disabled').classes('px-2 rounded bg-amber-500 text-white text-xs')
                ui.space()
                if row.source == 'console':
                    ui.button('Edit', on_click=lambda r=row: self._form.open(r)).props('flat dense') \
                        .mark(f'sso-edit-{row.name}')
                    ui.button(icon='delete', on_click=lambda name=row.name: self._delete(name)) \
                        .props('flat round dense').mark(f'sso-delete-{row.name}')
            facts = [('Metadata', row.metadata_url), ('Client id', row.client_id),
                     ('Client secret', 'set (hidden)' if row.has_secret else 'not set'),
                     ('Tenant', row.tenant_id or '—'), ('Role claim', row.role_claim),
                     ('Role map', json.dumps(row.role_map) if row.role_map else '—'),
                     ('Default role', row.default_role or 'none: users without a mapped claim are refused')]
            for label, value in facts:
                with ui.row().classes('gap-2 text-sm'):
                    ui.label(label).classes('w-28 opacity-60')
                    ui.label(value).classes('font-mono break-all')

    def _waiting(self, identity: PendingIdentity) -> None:
        with ui.row().classes('w-full items-center gap-3').mark(f'sso-pending-{identity.id}'):
            ui.label(identity.display_name or '(no name)').classes('font-semibold')
            ui.label(identity.email or '(no email)').classes('font-mono text-sm')
            ui.label(f'via {identity.provider}').classes('text-sm opacity-70')
            target = ui.input('Link to account', value=identity.owner or '').props('dense').classes('w-48') \
                .mark(f'sso-link-user-{identity.id}')
            ui.button('Link', icon='link', on_click=lambda i=identity.id, t=target: self._link(i, str(t.value or ''))) \
                .props('dense').mark(f'sso-link-{identity.id}')

    @admin_handler
    async def _link(self, identity_id: int, username: str) -> None:
        if not username.strip():
            ui.notify('Name the account to link', type='warning')
            return
        if await _change(lambda actor, session: sso_admin.link_identity(
                session, actor=actor, identity_id=identity_id, username=username.strip())):
            ui.notify(f'Linked to {username}: it signs in through the provider from now on', type='positive')
            await self.load()

    @admin_handler
    async def _delete(self, name: str) -> None:
        if not await confirm(f'Delete the provider {name}?', detail='Its button goes; its users keep their accounts '
                             '(and can sign in again if it comes back under the same issuer).', ok='Delete'):
            return
        if await _change(lambda actor, session: sso_admin.delete_provider(session, actor=actor, name=name)):
            ui.notify(f'{name} deleted', type='positive')
            await self.load()


class _ProviderForm:
    """Add a provider, or change one (its name stays)."""

    def __init__(self, *, on_saved: Callable[[], Awaitable[None]]) -> None:
        self._on_saved = on_saved
        self._creating = True
        with ui.card().classes('w-full') as self.card:
            self._title = ui.label('').classes('text-lg font-semibold')
            with ui.row().classes('w-full gap-4'):
                self._name = ui.input('Name (in the URL)', placeholder='campus').classes('w-40').mark('sso-name')
                self._display = ui.input('Button text', value='Sign in with your institution').classes('w-72') \
                    .mark('sso-display-name')
                self._metadata = ui.input('Metadata URL', placeholder='https://…/.well-known/openid-configuration') \
                    .classes('flex-1 min-w-96').mark('sso-metadata-url')
            with ui.row().classes('w-full gap-4'):
                self._client_id = ui.input('Client id').classes('w-72').mark('sso-client-id')
                self._secret = ui.input('Client secret', password=True, password_toggle_button=True) \
                    .props('autocomplete=new-password').classes('w-72').mark('sso-client-secret')
                self._tenant = ui.input('Entra tenant id (optional)').classes('w-80').mark('sso-tenant-id')
            with ui.row().classes('w-full gap-4 items-start'):
                self._claim = ui.input('Role claim', value='roles').classes('w-40').mark('sso-role-claim')
                self._map = ui.textarea('Role map (JSON)', placeholder='{"MindRouter.Admin": "admin"}') \
                    .classes('flex-1').mark('sso-role-map')
                self._default = ui.select([REFUSE], value=REFUSE, label='Default role').classes('w-40') \
                    .mark('sso-default-role')
                self._enabled = ui.switch('Enabled', value=True).mark('sso-enabled')
            self._error = ui.label('').classes('text-red-600 text-sm').mark('sso-form-error')
            with ui.row().classes('gap-2'):
                ui.button('Save', icon='check', on_click=self._save).mark('sso-save')
                ui.button('Cancel', on_click=lambda: self.card.set_visibility(False)).props('flat')
        self.card.set_visibility(False)

    def set_roles(self, roles: list[str]) -> None:
        self._default.set_options([*roles, REFUSE], value=self._default.value if self._default.value in roles
                                  else ('student' if 'student' in roles else REFUSE))

    def open(self, row: ProviderRow | None) -> None:
        self._creating = row is None
        self._title.text = 'New provider' if row is None else f'Change {row.name}'
        self._name.value = row.name if row else ''
        self._name.set_enabled(row is None)
        if row is not None:
            self._display.value, self._metadata.value, self._client_id.value = \
                row.display_name, row.metadata_url, row.client_id
            self._tenant.value, self._claim.value = row.tenant_id, row.role_claim
            self._map.value = json.dumps(row.role_map, indent=1) if row.role_map else ''
            self._default.value = row.default_role or REFUSE
            self._enabled.value = row.enabled
        self._secret.value = ''
        self._secret.props(f'hint="{"required" if row is None else "empty: keep the stored secret"}"')
        self._error.text = ''
        self.card.set_visibility(True)

    @admin_handler
    async def _save(self) -> None:
        self._error.text = ''
        try:
            data = ProviderInput(
                name=(self._name.value or '').strip(), display_name=(self._display.value or '').strip(),
                metadata_url=(self._metadata.value or '').strip(), client_id=(self._client_id.value or '').strip(),
                client_secret=self._secret.value or '', tenant_id=(self._tenant.value or '').strip(),
                role_claim=(self._claim.value or '').strip() or 'roles',
                role_map=parse_role_map(self._map.value or '', setting='role map'),
                default_role='' if self._default.value == REFUSE else str(self._default.value or ''),
                enabled=bool(self._enabled.value))
            me = await require_admin()
            async with get_database().session() as session:
                await sso_admin.save_provider(session, get_settings(), actor=Actor(id=me.id, name=me.username),
                                              data=data, create=self._creating)
        except ValidationError as exc:
            self._error.text = '; '.join(f'{".".join(map(str, e["loc"]))}: {e["msg"]}' for e in exc.errors())
            return
        except InvalidRequest as exc:
            self._error.text = exc.message
            return
        except Exception as exc:
            self._error.text = getattr(exc, 'message', None) or str(exc)
            return
        self._secret.value = ''
        self.card.set_visibility(False)
        ui.notify(f'Provider {data.name} saved', type='positive')
        await self._on_saved()


async def _change(action: Callable[[Actor, AsyncSession], Awaitable[object]]) -> bool:
    try:
        me = await require_admin()
        async with get_database().session() as session:
            await action(Actor(id=me.id, name=me.username), session)
    except Exception as exc:
        notify_failure(exc)
        return False
    return True
