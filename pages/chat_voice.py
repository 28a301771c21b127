"""Voice in the chat: the microphone button (records in the browser, transcribes through the gateway, puts the text in
the composer), the read-aloud button on answers (plays the speech as it streams) and the voice picker; all hidden
when the registry serves no speech model.

Both directions go through the API as the user's own web-console key (app/loopback.py), so they take the path every
request takes: limits, speech budgets, the scheduler, failover, the audit trail. Read-aloud hands the browser a
one-time URL (`/chat/speech/<token>`, 256 random bits, valid once for a minute, bound to the text and the user's
key) that streams the gateway's audio: the browser starts playing before the speech is whole.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import orjson
from nicegui import app as nicegui_app
from nicegui import events, ui
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from components.notify import notify_failure
from components.session import still_signed_in
from components.voice import FAILED_EVENT, RECORDED_EVENT, SCRIPT, SpeechOffer, speakable, speech_offer
from core import runtime
from core.accounts import my_keys
from core.db import get_database
from core.speech.upload import encode_multipart

SPEECH_FORMAT = 'wav'  # every browser plays it as it arrives, and it needs no encoder on the speech server
TOKEN_SECONDS = 60.0


@dataclass(slots=True)
class _Pending:
    key_digest: str
    body: dict[str, object]
    expires: float


_pending: dict[str, _Pending] = {}  # token -> the speech it may fetch (the console runs in one process)


def register() -> None:
    @nicegui_app.get('/chat/speech/{token}', include_in_schema=False)
    async def speech(token: str) -> Response:
        """The audio of one read-aloud, streamed from the gateway as it arrives; the token works once."""
        now = time.monotonic()
        for stale in [t for t, p in _pending.items() if p.expires < now]:
            del _pending[stale]
        pending = _pending.pop(token, None)
        live = runtime.current()
        if pending is None or live is None:
            return PlainTextResponse('This link has expired: press read aloud again.', status_code=404)
        api = live.api
        opened = api.stream(key_digest=pending.key_digest, path='/v1/audio/speech', body=pending.body)
        response = await opened.__aenter__()
        if response.status != 200:
            message = (await response.read()).decode('utf-8', 'replace')
            await opened.__aexit__(None, None, None)
            return PlainTextResponse(message, status_code=response.status)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.chunks():
                    yield chunk
            finally:
                await opened.__aexit__(None, None, None)

        return StreamingResponse(relay(), media_type=response.headers.get('content-type', 'audio/wav'),
                                 headers={'Cache-Control': 'no-store'})


class ChatVoice:
    """The chat page's voice controls: `picker()` in the toolbar, `mic_button()` in the composer, and `read_aloud`
    for the answers (`speaker()` is None when nothing can speak). `refresh()` follows the registry."""

    def __init__(self, user_id: int, *, put_text: Callable[[str], None]) -> None:
        self._user_id = user_id
        self._put_text = put_text
        self.offer = SpeechOffer()
        self.recording = False
        self.mic: ui.button | None = None
        self.voice: ui.select | None = None
        ui.add_body_html(SCRIPT)
        ui.on(RECORDED_EVENT, self._recorded)
        ui.on(FAILED_EVENT, self._failed)

    def picker(self) -> None:
        self.voice = ui.select({}, label='Voice', on_change=self._voice_changed) \
            .props('dense outlined options-dense').classes('w-44 chat-voice-picker').mark('voice-picker')

    def mic_button(self) -> None:
        self.mic = ui.button(icon='mic', on_click=self._toggle).props('flat round').classes('chat-mic') \
            .tooltip('Speak your message (press again to stop)').mark('mic')

    def refresh(self) -> None:
        live = runtime.current()
        self.offer = speech_offer(live.registry.catalog(include_aliases=False)) if live is not None else SpeechOffer()
        if self.mic is not None:
            self.mic.visible = self.offer.listener is not None
        if self.voice is not None:
            options = self.offer.picker_options()
            remembered = nicegui_app.storage.user.get('chat_voice')
            self.voice.set_options(options, value=remembered if remembered in options else next(iter(options), None))
            self.voice.visible = bool(options)

    def speaker(self) -> Callable[[str], Awaitable[None]] | None:
        return self.read_aloud if self.offer.voices else None

    # the microphone

    async def _toggle(self) -> None:
        assert self.mic is not None
        if not self.recording:
            if not await ui.run_javascript('return await window.mrVoice.start()', timeout=15):
                return  # refused: _failed says why
            self.recording = True
            self.mic.props('icon=stop color=negative').tooltip('Stop and transcribe')
            return
        self.recording = False
        self.mic.props('icon=hourglass_top color=primary')
        self.mic.disable()  # until the transcript is in
        ui.run_javascript('window.mrVoice.stop()')

    def _idle(self) -> None:
        if self.mic is not None:
            self.mic.props('icon=mic color=primary')
            self.mic.enable()

    def _failed(self, event: events.GenericEventArguments) -> None:
        self.recording = False
        self._idle()
        message = str((event.args or {}).get('message', ''))[:300]
        ui.notify(f'The microphone or the speaker could not be used: {message}', type='negative', multi_line=True)

    async def _recorded(self, event: events.GenericEventArguments) -> None:
        try:
            await self._transcribe(event.args or {})
        finally:
            self._idle()

    async def _transcribe(self, args: dict[str, object]) -> None:
        live = runtime.current()
        listener = self.offer.listener
        if live is None or listener is None or await still_signed_in(self._user_id) is None:
            return
        try:
            data = base64.b64decode(str(args.get('audio', '')), validate=True)
        except (binascii.Error, ValueError):
            ui.notify('The recording could not be read.', type='negative')
            return
        if not data:
            ui.notify('Nothing was recorded.', type='warning')
            return
        kind = str(args.get('type') or 'audio/webm').split(';')[0]
        body, content_type = encode_multipart([('model', listener), ('response_format', 'json')],
                                              filename='recording.webm', data=data, content_type=kind)
        try:
            digest = await self._key_digest()
            async with live.api.stream(key_digest=digest, path='/v1/audio/transcriptions',
                                       raw=(body, content_type.decode())) as response:
                content = await response.read()
        except Exception as exc:
            notify_failure(exc)
            return
        if response.status != 200:
            ui.notify(f'Not transcribed: {_error_message(content)}', type='negative', multi_line=True)
            return
        text = str(orjson.loads(content).get('text', '')).strip()
        if text:
            self._put_text(text)
        else:
            ui.notify('No speech was heard in the recording.', type='warning')

    # read aloud

    async def read_aloud(self, text: str) -> None:
        chosen = self.voice.value if self.voice is not None else None
        if not isinstance(chosen, str) or '|' not in chosen:
            options = self.offer.picker_options()
            chosen = next(iter(options), None)
        live = runtime.current()
        spoken = speakable(text)
        if chosen is None or live is None or not spoken or await still_signed_in(self._user_id) is None:
            return
        model, voice = chosen.split('|', 1)
        token = secrets.token_urlsafe(32)
        _pending[token] = _Pending(await self._key_digest(), {
            'model': model, 'voice': voice, 'input': spoken, 'response_format': SPEECH_FORMAT},
            time.monotonic() + TOKEN_SECONDS)
        ui.run_javascript(f'window.mrVoice.play({orjson.dumps(f"/chat/speech/{token}").decode()})')

    def _voice_changed(self) -> None:
        if self.voice is not None and self.voice.value:
            nicegui_app.storage.user['chat_voice'] = self.voice.value

    async def _key_digest(self) -> str:
        async with get_database().session() as session:
            return await my_keys.console_key_digest(session, user_id=self._user_id)


def _error_message(content: bytes) -> str:
    try:
        error = orjson.loads(content).get('error') or {}
        return str(error.get('message') or 'the gateway refused it')[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return 'the gateway refused it'
