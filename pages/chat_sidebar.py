"""The chat page's list of the user's own conversations: a new chat, search by title, pages of PAGE_SIZE (most
recently active first), and each conversation's rename and delete (after a confirmation).

Every query and change is scoped to the signed-in user (core.chat.conversations refuses anyone else's
conversation as one that does not exist), and each handler checks the session again first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from nicegui import ui

from components.confirm import confirm
from components.notify import notify_failure
from components.session import still_signed_in
from core.chat import conversations
from core.db import get_database
from core.errors import InvalidRequest
from core.models import Conversation, utcnow

PAGE_SIZE = 20
_SELECTED = 'bg-blue-100 dark:bg-slate-700'


class ConversationList:
    def __init__(self, user_id: int, *, on_open: Callable[[int], Awaitable[None]],
                 on_new: Callable[[], Awaitable[None]], on_deleted: Callable[[int], Awaitable[None]],
                 on_renamed: Callable[[Conversation], None]) -> None:
        self._user_id = user_id
        self._on_open = on_open
        self._on_new = on_new
        self._on_deleted = on_deleted
        self._on_renamed = on_renamed
        self.current: int | None = None
        self._items: dict[int, ui.row] = {}
        self._loads = 0
        self._renaming: Conversation | None = None
        with ui.column().classes('w-full gap-2 p-2').mark('conversation-panel'):
            ui.button('New chat', icon='add', on_click=self._new).props('unelevated').classes('w-full') \
                .mark('new-chat')
            self.search = ui.input(placeholder='Search titles', on_change=self._first_page) \
                .props('dense outlined clearable debounce=300').classes('w-full').mark('conversation-search')
            with self.search.add_slot('prepend'):
                ui.icon('search')
            self.list = ui.column().classes('w-full gap-0').mark('conversation-list')
            self.pager = ui.pagination(1, 1, direction_links=True, on_change=self.load) \
                .props('dense max-pages=5').mark('conversation-pager')
            self.pager.visible = False
        self._build_rename_dialog()

    async def load(self) -> None:
        self._loads += 1
        mine = self._loads
        page = int(self.pager.value or 1)
        query = (self.search.value or '').strip() or None
        async with get_database().session() as session:
            rows, total = await conversations.list_conversations(session, user_id=self._user_id, q=query,
                                                                 offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        if mine != self._loads:  # a newer search or page was asked for meanwhile: its answer is the one to show
            return
        pages = max(1, -(-total // PAGE_SIZE))
        if page > pages:  # the last page emptied (a delete, a narrower search): show the one before
            self.pager.value = pages
            return  # the pager's change loads it
        self.pager.max = pages
        self.pager.visible = pages > 1
        self.list.clear()
        self._items.clear()
        with self.list:
            if not rows:
                ui.label('No conversations match.' if query else 'No conversations yet.') \
                    .classes('text-sm opacity-70 p-2').mark('no-conversations')
            for row in rows:
                self._row(row)

    def mark_current(self, conversation_id: int | None) -> None:
        self.current = conversation_id
        for item_id, item in self._items.items():
            if item_id == conversation_id:
                item.classes(add=_SELECTED)
            else:
                item.classes(remove=_SELECTED)

    def _row(self, row: Conversation) -> None:
        assert row.id is not None
        conversation_id = row.id
        selected = conversation_id == self.current
        with ui.row().classes('w-full items-center no-wrap gap-1 rounded px-2 py-1 cursor-pointer '
                              'hover:bg-slate-200 dark:hover:bg-slate-700' + (f' {_SELECTED}' if selected else '')) \
                .mark(f'conversation-{conversation_id}') as item:
            self._items[conversation_id] = item
            item.on('click', lambda: self._on_open(conversation_id))
            with ui.column().classes('gap-0 grow min-w-0'):
                ui.label(row.title).classes('truncate w-full text-sm').mark('conversation-title-item')
                ui.label(_when(row.updated_at)).classes('text-xs opacity-60')
            with ui.button(icon='more_vert').props('flat round dense size=sm') \
                    .on('click', js_handler='(e) => e?.stopPropagation?.()') \
                    .mark(f'conversation-menu-{conversation_id}'), ui.menu():
                ui.menu_item('Rename', on_click=lambda: self._ask_rename(row)).mark(f'rename-{conversation_id}')
                ui.menu_item('Delete', on_click=lambda: self._delete(row)).mark(f'delete-{conversation_id}')

    async def _first_page(self) -> None:
        if self.pager.value != 1:
            self.pager.value = 1  # its change loads the list
        else:
            await self.load()

    async def _new(self) -> None:
        await self._on_new()

    # renaming

    def _build_rename_dialog(self) -> None:
        with ui.dialog() as self.rename_dialog, ui.card().classes('w-96 max-w-full'):
            ui.label('Rename the conversation').classes('text-lg font-semibold')
            self.title = ui.input('Title', validation={
                'Give it a title': lambda v: bool((v or '').strip()),
                f'At most {conversations.TITLE_MAX} characters':
                    lambda v: len((v or '').strip()) <= conversations.TITLE_MAX}) \
                .props('autofocus').classes('w-full').mark('rename-title')
            self.title.on('keydown.enter', self._rename)
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=self.rename_dialog.close).props('flat')
                ui.button('Rename', on_click=self._rename).mark('confirm-rename')

    def _ask_rename(self, row: Conversation) -> None:
        self._renaming = row
        self.title.value = row.title
        self.title.error = None
        self.rename_dialog.open()

    async def _rename(self) -> None:
        row = self._renaming
        if row is None or row.id is None or not self.title.validate():
            return
        me = await still_signed_in(self._user_id)
        if me is None:
            return
        try:
            async with get_database().session() as session:
                renamed = await conversations.rename_conversation(session, user_id=me.id, conversation_id=row.id,
                                                                  title=self.title.value)
        except InvalidRequest as exc:
            self.title.error = exc.message
            return
        except Exception as exc:
            notify_failure(exc)
            return
        self._renaming = None
        self.rename_dialog.close()
        self._on_renamed(renamed)
        await self.load()

    # deleting

    async def _delete(self, row: Conversation) -> None:
        if row.id is None or not await confirm(f'Delete "{row.title}"?', ok='Delete',
                                               detail='Its messages and files are deleted too. This cannot be undone.'):
            return
        me = await still_signed_in(self._user_id)
        if me is None:
            return
        try:
            async with get_database().session() as session:
                await conversations.delete_conversation(session, user_id=me.id, conversation_id=row.id)
        except Exception as exc:
            notify_failure(exc)
            return
        ui.notify(f'Deleted "{row.title}".', type='positive')
        await self._on_deleted(row.id)
        await self.load()


def _when(moment: datetime) -> str:
    now = utcnow()
    if moment.date() == now.date():
        return f'today {moment:%H:%M} UTC'
    return f'{moment:%Y-%m-%d}'
