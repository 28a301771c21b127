"""A yes/no question before something that cannot be undone, as one awaitable call.

    if await confirm('Remove node gpu1?', detail='Its GPU history goes with it.', ok='Remove'):
        ...

The dialog is built for the question and deleted after the answer, so no page keeps a hidden dialog per row.
Escape, a click outside and Cancel all answer no. Tests press `confirm-ok` or `confirm-cancel`.
"""

from __future__ import annotations

from nicegui import ui


async def confirm(question: str, *, detail: str = '', ok: str = 'Confirm', danger: bool = True) -> bool:
    with ui.dialog() as dialog, ui.card().classes('min-w-80 max-w-lg').mark('confirm-dialog'):
        ui.label(question).classes('text-lg font-semibold')
        if detail:
            ui.label(detail).classes('text-sm opacity-80')
        with ui.row().classes('w-full justify-end gap-2'):
            ui.button('Cancel', on_click=lambda: dialog.submit(False)).props('flat').mark('confirm-cancel')
            ui.button(ok, on_click=lambda: dialog.submit(True)) \
                .props(f'color={"negative" if danger else "primary"}').mark('confirm-ok')
    try:
        return bool(await dialog)
    finally:
        if not dialog.is_deleted:
            dialog.delete()
