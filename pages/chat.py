"""/chat and /chat/{id}: a signed-in user's chat with the cluster's models.

Left, the user's own conversations (a drawer that folds away on a phone); on top, the model (chat and
multimodal models, with their badges), thinking and web search switches and the conversation's settings;
in the middle the messages; at the bottom the message box with its files.

Every message goes through the API itself, as the user's web-console key (pages/chat_stream.py), so limits,
the fair-share queue, failover and the audit trail apply exactly as to any client. Conversations, messages and
files are stored by core.chat, scoped to the user: an id of someone else's conversation shows nothing of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import app as nicegui_app
from nicegui import ui
from starlette.responses import RedirectResponse

from components.chat_message import AnswerBubble, Outcome, citations_of, user_bubble
from components.frame import frame
from components.model_picker import ChatModel, ModelPicker, chat_models
from components.notify import notify_failure
from components.session import signed_in, still_signed_in
from core import runtime
from core.chat import ConversationNotFound, conversations, files
from core.db import get_database
from core.models import AttachmentKind, ChatAttachment, ChatMessage, ChatRole, Conversation
from core.runtime import InferenceClient
from pages import chat_voice
from pages.chat_composer import Composer
from pages.chat_settings import SettingsDialog
from pages.chat_sidebar import ConversationList
from pages.chat_turn import answer, start_turn
from pages.chat_voice import ChatVoice

CSS = '''
.chat-code pre { margin: 0; padding: 0.75rem; border-radius: 0.5rem; overflow-x: auto; }
.chat-code .codehilite { background: rgba(127, 127, 127, 0.12); border-radius: 0.5rem; }
.chat-footer { background: #ffffff; color: #0f172a; border-top: 1px solid #e2e8f0; }
.body--dark .chat-footer { background: #0f172a; color: #f8fafc; border-top-color: #334155; }
'''
SCROLL_DOWN = ('if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 300) '
               'window.scrollTo(0, document.body.scrollHeight)')


def register() -> None:
    chat_voice.register()

    @ui.page('/chat')
    async def chat_page() -> RedirectResponse | None:
        return await _build(None)

    @ui.page('/chat/{conversation_id}')
    async def conversation_page(conversation_id: str) -> RedirectResponse | None:
        return await _build(int(conversation_id) if conversation_id.isdigit() else -1)


async def _build(conversation_id: int | None) -> RedirectResponse | None:
    me = await signed_in()
    if me is None:  # deactivated since the session began
        return RedirectResponse('/login?redirect_to=/chat')
    page = ChatPage(me.id)
    await page.start(conversation_id)
    return None


class ChatPage:
    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.conversation: Conversation | None = None
        self.system_prompt = ''
        self.temperature: float | None = None
        self.stop: asyncio.Event | None = None  # set while an answer streams
        self._quiet = False  # showing a conversation's settings: not changes to save
        ui.add_css(CSS)
        self.voice = ChatVoice(user_id, put_text=lambda text: self.composer.add_text(text))
        with ui.left_drawer(value=None, bordered=True).props('width=290 breakpoint=1023') \
                .classes('bg-slate-50 dark:bg-slate-900 p-0').mark('conversation-drawer') as self.drawer:
            self.sidebar = ConversationList(user_id, on_open=self.open, on_new=self.new,
                                            on_deleted=self._deleted, on_renamed=self._renamed)
        with frame('Chat'):
            with ui.row().classes('w-full items-center gap-3 wrap').mark('chat-toolbar'):
                ui.button(icon='menu', on_click=self.drawer.toggle).props('flat round') \
                    .classes('lg:hidden').tooltip('Conversations').mark('toggle-conversations')
                self.title = ui.label('New chat').classes('text-lg font-semibold truncate max-w-full') \
                    .mark('conversation-title')
                ui.space()
                self.picker = ModelPicker(self._model_changed)
                self.voice.picker()
                self.thinking = ui.switch('Thinking', on_change=self._thinking_changed).mark('thinking-toggle')
                self.searching = ui.switch('Web search', on_change=self._search_changed).mark('search-toggle')
                ui.button(icon='tune', on_click=self._open_settings).props('flat round') \
                    .tooltip('System prompt and temperature').mark('open-settings')
            self.notice = ui.label('').classes('text-sm text-amber-700 dark:text-amber-400').mark('chat-notice')
            self.notice.visible = False
            self.messages = ui.column().classes('w-full max-w-5xl mx-auto gap-4 pb-4').mark('chat-messages')
        with ui.footer().classes('chat-footer px-4 py-2'):
            self.composer = Composer(user_id, on_send=self.send, on_stop=self._stop,
                                     vision=lambda: bool(self.picker.model and self.picker.model.vision))
            with self.composer.leading:
                self.voice.mic_button()
        self.settings = SettingsDialog(self._save_settings)

    async def start(self, conversation_id: int | None) -> None:
        self._offer_models(None)
        self.voice.refresh()
        await self.composer.restore()
        if conversation_id is not None:
            await self.open(conversation_id, navigate=False)
        else:
            self._show_empty()
        await self.sidebar.load()

    # conversations

    async def open(self, conversation_id: int, *, navigate: bool = True) -> None:
        if self.stop is not None:
            ui.notify('Wait for the answer, or stop it, before switching conversations.', type='warning')
            return
        try:
            async with get_database().session() as session:
                conversation = await conversations.get_conversation(session, user_id=self.user_id,
                                                                    conversation_id=conversation_id)
                messages = await conversations.list_messages(session, user_id=self.user_id,
                                                             conversation_id=conversation_id)
                attached = await files.list_attachments(session, user_id=self.user_id,
                                                        conversation_id=conversation_id)
        except ConversationNotFound:
            await self.new(navigate=navigate)
            self._say('That conversation does not exist, or it is not yours.', marker='chat-not-found')
            return
        except Exception as exc:
            notify_failure(exc)
            return
        self.conversation = conversation
        self.notice.visible = False
        self._apply(conversation)
        self.messages.clear()
        names: dict[int, list[str]] = {}
        for attachment in attached:
            if attachment.message_id is not None:
                names.setdefault(attachment.message_id, []).append(attachment.filename)
        with self.messages:
            for message in messages:
                _show_saved(message, names.get(message.id or 0, []), self.voice.speaker())
        self.sidebar.mark_current(conversation.id)
        if navigate:
            ui.navigate.history.replace(f'/chat/{conversation.id}')
            # on a phone the list is an overlay: fold it away to show the conversation
            ui.run_javascript(f'if (window.innerWidth < 1024) getElement({self.drawer.id})?.hide()')
        ui.run_javascript('window.scrollTo(0, document.body.scrollHeight)')

    async def new(self, *, navigate: bool = True) -> None:
        if self.stop is not None:
            ui.notify('Wait for the answer, or stop it, before starting a new chat.', type='warning')
            return
        self.conversation = None
        self.notice.visible = False
        self._apply(None)
        self._show_empty()
        self.sidebar.mark_current(None)
        if navigate:
            ui.navigate.history.replace('/chat')

    def _apply(self, conversation: Conversation | None) -> None:
        self.title.text = conversation.title if conversation else 'New chat'
        self.system_prompt = conversation.system_prompt if conversation else ''
        self.temperature = conversation.temperature if conversation else None
        self._offer_models(conversation.model if conversation else None)
        self._quiet = True
        try:
            self.thinking.value = bool(conversation and conversation.think)
            self.searching.value = bool(conversation and conversation.web_search)
        finally:
            self._quiet = False

    def _show_empty(self) -> None:
        self.messages.clear()
        with self.messages, ui.column().classes('w-full items-center py-16 opacity-70').mark('chat-empty'):
            ui.icon('forum', size='48px')
            ui.label('Ask anything. Attach files with the clip; switch on web search for current facts.')

    async def _deleted(self, conversation_id: int) -> None:
        if self.conversation is not None and self.conversation.id == conversation_id:
            await self.new()

    def _renamed(self, conversation: Conversation) -> None:
        if self.conversation is not None and self.conversation.id == conversation.id:
            self.conversation = conversation
            self.title.text = conversation.title

    # settings

    def _offer_models(self, wanted: str | None) -> None:
        live = runtime.current()
        models = chat_models(live.registry.catalog(include_aliases=False)) if live is not None else []
        remembered = nicegui_app.storage.user.get('chat_model')
        if wanted is None and isinstance(remembered, str) and any(m.name == remembered for m in models):
            wanted = remembered
        self.picker.set_models(models, wanted)
        self._thinking_allowed()
        if live is None:
            self._say('The chat needs the gateway: this console is not running inside a MindRouter server.')
        elif not models:
            self._say('No chat model is being served right now: ask an administrator, or try again later.',
                      marker='no-models')

    def _thinking_allowed(self) -> None:
        model = self.picker.model
        able = bool(model and model.thinking)
        self.thinking.set_enabled(able)
        self.thinking.tooltip('Show the model\'s reasoning' if able else 'This model cannot think')

    async def _model_changed(self, model: ChatModel | None) -> None:
        self._thinking_allowed()
        if model is None:
            return
        nicegui_app.storage.user['chat_model'] = model.name
        await self._update(model=model.name)

    async def _thinking_changed(self) -> None:
        await self._update(think=bool(self.thinking.value))

    async def _search_changed(self) -> None:
        await self._update(web_search=bool(self.searching.value))

    def _open_settings(self) -> None:
        self.settings.open(self.system_prompt, self.temperature)

    async def _save_settings(self, system_prompt: str, temperature: float | None) -> bool:
        if not await self._update(system_prompt=system_prompt, temperature=temperature):
            return False
        self.system_prompt, self.temperature = system_prompt, temperature
        ui.notify('Settings saved for this conversation.' if self.conversation else
                  'Settings kept for the new conversation.', type='positive')
        return True

    async def _update(self, **changes: Any) -> bool:
        """Save setting changes to the open conversation (a new chat keeps them until its first message)."""
        if self._quiet or self.conversation is None or self.conversation.id is None:
            return True
        if await still_signed_in(self.user_id) is None:
            return False
        try:
            async with get_database().session() as session:
                self.conversation = await conversations.update_settings(
                    session, user_id=self.user_id, conversation_id=self.conversation.id, **changes)
        except Exception as exc:
            notify_failure(exc)
            return False
        return True

    # sending

    async def send(self, text: str) -> None:
        text = text.strip()
        attachments = list(self.composer.pending)
        if self.stop is not None or (not text and not attachments):
            return
        self.stop = asyncio.Event()  # taken at once: a second Enter while this one is checked sends nothing
        try:
            model = await self._sendable(attachments)
            live = runtime.current()
            if model is None or live is None:
                return
            self.composer.set_streaming(True)
            await self._ask(live.api, model, text, attachments)
        finally:
            self.stop = None
            self.composer.set_streaming(False)

    async def _sendable(self, attachments: list[ChatAttachment]) -> ChatModel | None:
        """The model to send to, or None after telling the user why not."""
        if await still_signed_in(self.user_id) is None:
            return None
        live = runtime.current()
        model = self.picker.model
        if live is None or model is None:
            wanted = self.picker.select.value
            ui.notify(f'{wanted} is not being served right now: pick another model.' if wanted and live else
                      'Pick a model first (no chat model is available right now).', type='warning')
            return None
        images = [a.filename for a in attachments if a.kind == AttachmentKind.image]
        if images and not model.vision:
            ui.notify(f'{model.name} cannot see images ({", ".join(images)}): pick a model with the Vision badge, '
                      'or remove the images.', type='negative', multi_line=True)
            return None
        return model

    async def _ask(self, api: InferenceClient, model: ChatModel, text: str,
                   attachments: list[ChatAttachment]) -> None:
        assert self.stop is not None
        try:
            if self.conversation is None:
                async with get_database().session() as session:
                    self.conversation = await conversations.create_conversation(
                        session, user_id=self.user_id, model=model.name,
                        title=conversations.title_from(text or attachments[0].filename),
                        system_prompt=self.system_prompt, temperature=self.temperature,
                        think=bool(self.thinking.value), web_search=bool(self.searching.value))
                self.title.text = self.conversation.title
                self.messages.clear()
                ui.navigate.history.replace(f'/chat/{self.conversation.id}')
            assert self.conversation.id is not None
            turn = await start_turn(user_id=self.user_id, conversation_id=self.conversation.id, model=model,
                                    text=text, attachments=attachments, think=bool(self.thinking.value),
                                    search=bool(self.searching.value), temperature=self.temperature)
        except Exception as exc:
            notify_failure(exc)
            return
        self.composer.clear()
        with self.messages:
            user_bubble(text, [a.filename for a in attachments])
            bubble = AnswerBubble(model=model.name, speak=self.voice.speaker())
        ui.run_javascript(SCROLL_DOWN)
        self.sidebar.mark_current(self.conversation.id)
        await self.sidebar.load()
        client = self.messages.client

        def follow() -> None:  # keep the newest text in view, unless the reader scrolled up
            if not client.is_deleted:
                client.run_javascript(SCROLL_DOWN)

        await answer(api, turn, bubble, self.stop, follow=follow)
        follow()

    def _stop(self) -> None:
        if self.stop is not None:
            self.stop.set()

    def _say(self, text: str, *, marker: str = 'chat-notice-text') -> None:
        self.notice.text = text
        self.notice.mark(marker)
        self.notice.visible = True


def _show_saved(message: ChatMessage, files_sent: list[str],
                speak: Callable[[str], Awaitable[None]] | None = None) -> None:
    if message.role == ChatRole.user:
        user_bubble(message.content, files_sent)
    elif message.role == ChatRole.assistant:
        bubble = AnswerBubble(model=message.model, speak=speak)
        bubble.finish(message.content, message.reasoning,
                      Outcome(prompt_tokens=message.prompt_tokens, completion_tokens=message.completion_tokens,
                              stopped=message.stopped, error=message.error, model=message.model),
                      citations_of(message.citations))

