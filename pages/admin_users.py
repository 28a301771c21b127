"""/admin/users: every account, paged and searched on the server (25 a page however many there are), a form
to create one, and, for the user an admin picks, the role, status, quota overrides and API keys
(pages.admin_user_detail). Below, each role's defaults (pages.admin_roles).

Everything goes through core.accounts.users / core.quotas.quota_admin, the services of the admin API, so a change
made here reads the same in the admin log as one made with an admin key (only `via` differs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from components.admin_guard import admin_handler
from components.frame import admin_frame
from components.notify import notify_failure
from components.session import require_admin
from core.accounts import users
from core.accounts.service import list_roles
from core.accounts.users import UserCreate, UserRow
from core.admin.cluster_actions import Actor
from core.db import get_database
from pages.admin_roles import RolesSection
from pages.admin_user_detail import UserDetail, register_routes

_Created = Callable[[UserRow], Awaitable[None]]
STATUS_FILTERS = {'all': 'All', 'active': 'Active', 'inactive': 'Deactivated'}


def register() -> None:
    register_routes()

    @ui.page('/admin/users')
    async def users_page() -> None:
        async with admin_frame('Users'):
            page = _UsersPage()
            roles = RolesSection()

            @admin_handler
            async def load() -> None:
                await page.load_roles()
                await page.show()
                await roles.load()

            ui.timer(0.01, load, once=True)  # after the page is sent: the queries never delay it


class _UsersPage:
    def __init__(self) -> None:
        self._offset = 0
        self._generation = 0  # a fast typist starts several loads; only the newest one draws
        with ui.row().classes('w-full items-end gap-4'):
            self._search = ui.input('Search', placeholder='username, email or name', on_change=self._first_page) \
                .props('clearable dense').classes('w-72').mark('users-search')
            self._role = ui.select({'': 'All roles'}, value='', label='Role', on_change=self._first_page) \
                .props('dense').classes('w-40').mark('users-role-filter')
            self._status = ui.select(STATUS_FILTERS, value='all', label='Status', on_change=self._first_page) \
                .props('dense').classes('w-40').mark('users-status-filter')
            ui.space()
            ui.button('New user', icon='person_add', on_click=self._toggle_form).mark('users-new')
        self._form = _CreateForm(self._created)
        with ui.card().classes('w-full p-0 gap-0'):
            with ui.row().classes('w-full px-4 py-2 gap-4 text-xs uppercase opacity-60 font-semibold no-wrap'):
                for title, width in _COLUMNS:
                    ui.label(title).classes(width)
            self._rows = ui.column().classes('w-full gap-0').mark('users-table')
            with ui.row().classes('w-full items-center justify-end gap-2 px-4 py-1'):
                self._range = ui.label('Loading…').classes('text-sm opacity-70').mark('users-range')
                self._prev = ui.button(icon='chevron_left', on_click=self._previous) \
                    .props('flat round dense').tooltip('Previous page').mark('users-prev')
                self._next = ui.button(icon='chevron_right', on_click=self._following) \
                    .props('flat round dense').tooltip('Next page').mark('users-next')
        self._detail = UserDetail(on_change=self.show)

    async def load_roles(self) -> None:
        try:
            async with get_database().session() as session:
                roles = await list_roles(session)
        except Exception as exc:
            notify_failure(exc)
            return
        options = {role.name: role.display_name or role.name for role in roles}
        self._role.set_options({'': 'All roles', **options}, value='')
        self._form.set_roles(options)
        self._detail.set_roles(options)

    async def show(self) -> None:
        """(Re)draw the current page of users with the filters as they are now."""
        self._generation += 1
        generation = self._generation
        active = {'active': True, 'inactive': False}.get(str(self._status.value))
        try:
            async with get_database().session() as session:
                page = await users.list_users(session, q=self._search.value or None, role=self._role.value or None,
                                              active=active, offset=self._offset, limit=users.PAGE_SIZE)
        except Exception as exc:
            notify_failure(exc)
            return
        if generation != self._generation:
            return  # a newer search is on its way
        if page.total and page.offset >= page.total:  # the last page emptied (a filter changed under it)
            self._offset = max(0, (page.total - 1) // users.PAGE_SIZE * users.PAGE_SIZE)
            await self.show()
            return
        self._rows.clear()
        with self._rows:
            for row in page.rows:
                self._draw(row)
            if not page.rows:
                ui.label('No user matches.').classes('px-4 py-3 opacity-70').mark('users-empty')
        last = page.offset + len(page.rows)
        self._range.text = f'{page.offset + 1}-{last} of {page.total}' if page.rows else f'0 of {page.total}'
        self._prev.set_enabled(page.offset > 0)
        self._next.set_enabled(last < page.total)

    def _draw(self, row: UserRow) -> None:
        with ui.row().classes('w-full items-center px-4 py-2 gap-4 no-wrap border-t border-slate-200 '
                              'dark:border-slate-700').mark(f'user-row-{row.username}'):
            widths = iter(width for _, width in _COLUMNS)
            ui.label(row.username).classes(f'{next(widths)} font-semibold truncate')
            ui.label(row.full_name or '—').classes(f'{next(widths)} truncate')
            ui.label(row.email or '—').classes(f'{next(widths)} truncate')
            ui.label(row.role).classes(next(widths)).mark(f'user-role-{row.username}')
            ui.label('active' if row.is_active else 'deactivated') \
                .classes(f'{next(widths)} {"text-green-700" if row.is_active else "text-red-600"}') \
                .mark(f'user-status-{row.username}')
            ui.label(row.sign_in).classes(f'{next(widths)} text-sm truncate').mark(f'user-sign-in-{row.username}')
            last = f'{row.last_login_at:%Y-%m-%d %H:%M}' if row.last_login_at else 'never'
            via = (row.last_login_method or '').replace('sso:', 'sso: ')
            ui.label(f'{last} ({via})' if row.last_login_at and via else last) \
                .classes(f'{next(widths)} text-sm opacity-70').mark(f'user-last-login-{row.username}')
            ui.button('Manage', on_click=lambda name=row.username: self._detail.open(name)) \
                .props('flat dense').classes(next(widths)).mark(f'manage-{row.username}')

    @admin_handler
    async def _first_page(self) -> None:
        self._offset = 0
        await self.show()

    @admin_handler
    async def _previous(self) -> None:
        self._offset = max(0, self._offset - users.PAGE_SIZE)
        await self.show()

    @admin_handler
    async def _following(self) -> None:
        self._offset += users.PAGE_SIZE
        await self.show()

    def _toggle_form(self) -> None:
        self._form.card.set_visibility(not self._form.card.visible)

    async def _created(self, row: UserRow) -> None:
        self._search.value = row.username  # show the new account (the change handler redraws the list)
        await self.show()
        await self._detail.open(row.username)


_COLUMNS = (('Username', 'w-36'), ('Name', 'w-40'), ('Email', 'flex-1'), ('Role', 'w-20'), ('Status', 'w-24'),
            ('Signs in with', 'w-32'), ('Last login', 'w-44'), ('', 'w-20'))


class _CreateForm:
    """New account: the same rules as `mindrouter create-user` and POST /api/admin/users, told inline."""

    def __init__(self, on_created: _Created) -> None:
        self._on_created = on_created
        with ui.card().classes('w-full') as self.card:
            ui.label('New user').classes('text-lg font-semibold')
            with ui.row().classes('w-full items-start gap-4'):
                self._username = ui.input('Username', validation=lambda v: users.username_problem(v) if v else None) \
                    .props('autocomplete=off').classes('w-48').mark('new-username')
                self._email = ui.input('Email (optional)', validation=users.email_problem) \
                    .classes('w-64').mark('new-email')
                self._full_name = ui.input('Full name (optional)').classes('w-56').mark('new-full-name')
                self._role = ui.select({'student': 'Student'}, value='student', label='Role') \
                    .classes('w-40').mark('new-role')
                self._password = ui.input('Initial password (optional)', password=True,
                                          password_toggle_button=True, validation=users.password_problem) \
                    .props('autocomplete=new-password').classes('w-56').mark('new-password')
            ui.label('Without a password the account uses API keys only; it can sign in once one is set.') \
                .classes('text-sm opacity-70')
            self._error = ui.label('').classes('text-red-600 text-sm').mark('new-error')
            with ui.row().classes('gap-2'):
                ui.button('Create', icon='check', on_click=self._create).mark('new-submit')
                ui.button('Cancel', on_click=lambda: self.card.set_visibility(False)).props('flat')
        self.card.set_visibility(False)

    def set_roles(self, options: dict[str, str]) -> None:
        self._role.set_options(options, value='student' if 'student' in options else next(iter(options), None))

    @admin_handler
    async def _create(self) -> None:
        self._error.text = ''
        fields = (self._username, self._email, self._password)
        if not all([field.validate() for field in fields]) or not self._username.value:
            self._error.text = 'Fix the fields marked in red.' if self._username.value else 'Enter a username.'
            return
        try:
            me = await require_admin()
            data = UserCreate(username=self._username.value.strip(), role=str(self._role.value),
                              email=(self._email.value or '').strip() or None,
                              full_name=self._full_name.value or '', password=self._password.value or None)
            async with get_database().session() as session:
                row = await users.create_user(session, actor=Actor(id=me.id, name=me.username), data=data)
        except Exception as exc:
            self._error.text = getattr(exc, 'message', None) or str(exc)  # e.g. the name is taken: say so here
            return
        ui.notify(f'User {row.username} created', type='positive')
        for field in (self._username, self._email, self._full_name, self._password):
            field.value = ''
        self.card.set_visibility(False)
        await self._on_created(row)
