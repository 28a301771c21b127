"""Admin pages' event handlers run only for an account that is an admin now.

The gate (pages/gate.py) checks the account when an admin page is requested, but a tab stays open for hours
and its clicks, timers and field changes arrive over the websocket, past the gate. So every handler of an admin
page, reading or writing, is wrapped:

    @admin_handler
    async def search(self) -> None: ...

Before it runs, the account is read again (one indexed read, components/session.py). A demoted, deactivated or
signed-out admin's tab is told so once, and everything the page shows is taken off it (its timers go with it),
so a stale tab neither acts nor shows new data.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from nicegui import ui

from components.session import signed_in

P = ParamSpec('P')
R = TypeVar('R')

REFUSAL = 'Your account is no longer an administrator (or was signed out): this page shows nothing more.'
_WITHDRAWN = 'admin_page_withdrawn'  # in the tab's connection storage: the refusal is said once


def admin_handler(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R | None]]:
    """`handler`, run only while the signed-in account is an active admin; otherwise the page is withdrawn and
    the handler's result is None."""

    @functools.wraps(handler)  # keeps the signature NiceGUI reads to decide whether to pass the event
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R | None:
        account = await signed_in()
        if account is None or not account.is_admin:
            withdraw_page()
            return None
        return await handler(*args, **kwargs)

    return guarded


def withdraw_page() -> None:
    """Tell the tab it lost admin rights and clear the page's content (tables, dialogs, timers)."""
    client = ui.context.client
    if client.storage.get(_WITHDRAWN):
        return
    client.storage[_WITHDRAWN] = True
    ui.notify(REFUSAL, type='negative', multi_line=True, timeout=0, close_button='OK')
    client.content.clear()
    with client.content, ui.column().classes('w-full max-w-7xl mx-auto p-6 gap-3').mark('admin-refused'):
        ui.label(REFUSAL).classes('text-lg text-red-700 dark:text-red-400')
        with ui.row().classes('gap-4'):
            ui.link('Your dashboard', '/dashboard')
            ui.link('Sign in again', '/login')
