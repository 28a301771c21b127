"""Where the user writes: the message box, files to send with it (uploaded at once, shown as removable chips
until sent), Send, and Stop while an answer streams.

A file is checked and converted when it arrives (core.chat.files.save_upload: text, Markdown, code, PDF and
Word become text for the model; PNG, JPEG, GIF and WebP stay images); what cannot be attached is refused then,
with the reason. Uploads not sent yet stay the user's (reloading the page brings their chips back); removing a
chip deletes the upload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import events, ui

from components.notify import notify_failure
from components.session import still_signed_in
from core import runtime
from core.chat import files
from core.config import Settings, get_settings
from core.db import get_database
from core.errors import MindRouterError
from core.models import AttachmentKind, ChatAttachment

MESSAGE_MAX = 100_000  # characters typed in one message


def current_settings() -> Settings:
    live = runtime.current()
    return live.settings if live is not None else get_settings()


class Composer:
    def __init__(self, user_id: int, *, on_send: Callable[[str], Awaitable[None]], on_stop: Callable[[], None],
                 vision: Callable[[], bool]) -> None:
        self._user_id = user_id
        self._on_send = on_send
        self._vision = vision
        self.pending: list[ChatAttachment] = []
        with ui.column().classes('w-full max-w-5xl mx-auto gap-1'):
            self.chips = ui.row().classes('gap-1 wrap').mark('pending-files')
            with ui.row().classes('w-full items-center no-wrap gap-2'):
                self.upload = ui.upload(multiple=True, auto_upload=True, max_file_size=files.MAX_UPLOAD_BYTES,
                                        on_upload=self._uploaded, on_rejected=self._rejected) \
                    .classes('hidden').mark('chat-upload')
                self.attach = ui.button(icon='attach_file', on_click=lambda: self.upload.run_method('pickFiles')) \
                    .props('flat round').tooltip('Attach files: text, code, PDF, Word, images').mark('attach')
                self.leading = ui.row().classes('gap-0')  # more buttons before the box (the microphone)
                self.input = ui.textarea(placeholder='Message (Enter sends, Shift+Enter for a new line)',
                                         validation={f'At most {MESSAGE_MAX:,} characters':
                                                     lambda v: len(v or '') <= MESSAGE_MAX}) \
                    .props('autogrow outlined dense rows=1 input-class="max-h-60"').classes('grow') \
                    .mark('chat-input')
                self.input.on('keydown.enter.exact.prevent', self._send)
                self.send = ui.button(icon='send', on_click=self._send).props('round unelevated color=primary') \
                    .tooltip('Send').mark('send')
                self.stop = ui.button('Stop', icon='stop', on_click=on_stop).props('unelevated color=negative') \
                    .mark('stop')
                self.stop.visible = False

    async def restore(self) -> None:
        """Uploads not sent yet (e.g. before a reload) come back as chips."""
        async with get_database().session() as session:
            self.pending = await files.list_unsent(session, user_id=self._user_id)
        self._show_chips()

    def set_streaming(self, streaming: bool) -> None:
        self.send.visible = not streaming
        self.stop.visible = streaming
        self.attach.set_enabled(not streaming)

    def clear(self) -> None:
        """After sending: the box and the chips empty (the files went with the message)."""
        self.input.value = ''
        self.pending = []
        self._show_chips()

    def restore_text(self, text: str) -> None:
        self.input.value = text

    def add_text(self, text: str) -> None:
        """Text from elsewhere (a transcribed recording) after what is already typed."""
        typed = (self.input.value or '').rstrip()
        self.input.value = f'{typed} {text}' if typed else text

    async def _send(self) -> None:
        if not self.send.visible or not self.input.validate():
            return
        await self._on_send(self.input.value or '')

    async def _uploaded(self, event: events.UploadEventArguments) -> None:
        self.upload.run_method('removeUploadedFiles')  # the hidden uploader keeps no list: the chips are the list
        me = await still_signed_in(self._user_id)
        if me is None:
            return
        name = event.file.name
        if len(self.pending) >= files.MAX_ATTACHMENTS_PER_MESSAGE:
            ui.notify(f'Not attached: {name}. At most {files.MAX_ATTACHMENTS_PER_MESSAGE} files go with one message.',
                      type='negative')
            return
        try:
            files.check_size(name, event.file.size())  # before reading: a crafted upload can be any size
            data = await event.file.read()
            async with get_database().session() as session:
                attachment = await files.save_upload(session, user_id=me.id, filename=name, data=data,
                                                     settings=current_settings())
        except MindRouterError as exc:
            ui.notify(f'Not attached: {exc.message}', type='negative', multi_line=True)
            return
        except Exception as exc:
            notify_failure(exc)
            return
        self.pending.append(attachment)
        self._show_chips()
        if attachment.kind == AttachmentKind.image and not self._vision():
            ui.notify(f'{attachment.filename} is an image, and the model chosen cannot see images: pick a model '
                      'with the Vision badge before sending, or remove it.', type='warning', multi_line=True)

    def _rejected(self) -> None:
        ui.notify(f'Not attached: files can be up to {files.MAX_UPLOAD_BYTES // 1024 // 1024} MiB each.',
                  type='negative')

    def _show_chips(self) -> None:
        self.chips.clear()
        with self.chips:
            for attachment in self.pending:
                icon = 'image' if attachment.kind == AttachmentKind.image else 'description'
                ui.chip(f'{attachment.filename} ({_size(attachment.size_bytes)})', icon=icon, removable=True,
                        on_value_change=lambda e, a=attachment: self._remove(a) if not e.value else None) \
                    .props('dense outline').mark(f'pending-file-{attachment.id}')

    async def _remove(self, attachment: ChatAttachment) -> None:
        self.pending = [a for a in self.pending if a.id != attachment.id]
        self._show_chips()
        me = await still_signed_in(self._user_id)
        if me is None or attachment.id is None:
            return
        try:
            async with get_database().session() as session:
                await files.delete_attachment(session, user_id=me.id, attachment_id=attachment.id,
                                              settings=current_settings())
        except MindRouterError:
            pass  # already gone: nothing to undo


def _size(size: int) -> str:
    if size < 1024:
        return f'{size} B'
    if size < 1024 * 1024:
        return f'{size / 1024:.0f} KB'
    return f'{size / 1024 / 1024:.1f} MB'
