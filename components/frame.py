"""The page shell every screen shares: header with navigation for who is signed in, the theme switch
(remembered per user), and the content column; admin pages get the admin menu and the health banner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from nicegui import app as nicegui_app
from nicegui import ui

from components.health_banner import health_banner
from components.session import save_theme, session_user

ADMIN_NAV = (
    ('Overview', '/admin', 'dashboard'),
    ('Nodes', '/admin/nodes', 'memory'),
    ('Backends', '/admin/backends', 'dns'),
    ('Models', '/admin/models', 'view_in_ar'),
    ('Users', '/admin/users', 'group'),
    ('Single sign-on', '/admin/sso', 'key'),
    ('Quota requests', '/admin/quota-requests', 'request_quote'),
    ('Queue', '/admin/queue', 'queue'),
    ('Audit', '/admin/audit', 'manage_search'),
    ('Admin log', '/admin/log', 'history'),
    ('Settings', '/admin/settings', 'settings'),
)


@contextmanager
def frame(title: str, *, admin: bool = False) -> Iterator[None]:
    ui.page_title(f'{title} · MindRouter')
    dark = ui.dark_mode(nicegui_app.storage.user.get('dark_mode'))  # None: follow the browser
    user = session_user()
    with ui.header().classes('items-center justify-between bg-slate-900 text-white px-6'):
        with ui.row().classes('items-center gap-3'):
            ui.icon('hub', size='28px')
            ui.link('MindRouter', '/').classes('text-xl font-semibold text-white no-underline')
        with ui.row().classes('items-center gap-4'):
            ui.link('Models', '/models').classes('text-white')
            ui.link('API docs', '/docs').classes('text-white')
            if user is None:
                ui.link('Log in', '/login').classes('text-white').mark('nav-login')
            else:
                ui.link('Chat', '/chat').classes('text-white').mark('nav-chat')
                ui.link('Dashboard', '/dashboard').classes('text-white').mark('nav-dashboard')
                if user.is_admin:
                    ui.link('Admin', '/admin').classes('text-white').mark('nav-admin')
                ui.label(user.username).classes('opacity-70').mark('nav-user')
                ui.link('Log out', '/logout').classes('text-white').mark('nav-logout')

            async def toggle() -> None:
                dark.value = not dark.value
                await save_theme(dark.value)

            ui.button(icon='dark_mode', on_click=toggle).props('flat round color=white') \
                .tooltip('Toggle dark mode').mark('theme-toggle')
    if admin:
        with ui.left_drawer(value=True).classes('bg-slate-50 dark:bg-slate-800').props('width=210 bordered'):
            for label, path, icon in ADMIN_NAV:
                with ui.link(target=path).classes('no-underline text-inherit w-full'), \
                        ui.row().classes('items-center gap-3 py-1'):
                    ui.icon(icon, size='20px')
                    ui.label(label)
    with ui.column().classes('w-full max-w-7xl mx-auto p-6 gap-6'):
        if admin:
            health_banner()
        ui.label(title).classes('text-2xl font-bold').mark('page-title')
        yield


@asynccontextmanager
async def admin_frame(title: str) -> AsyncIterator[None]:
    """`frame` for admin pages (the gate let only a current admin through), as an async block for uniformity."""
    with frame(title, admin=True):
        yield
