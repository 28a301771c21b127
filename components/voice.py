"""Voice in the browser: the microphone (MediaRecorder, in the page's JavaScript) and the read-aloud player (one
<audio> element that plays speech as it streams in), plus which speech models the registry offers.

The JavaScript records at most MAX_SECONDS at 32 kbit/s (a minute is ~240 kB: well within one Socket.IO message)
and hands the recording to Python as a `mr_voice_recorded` event; Python sends it on to the gateway. Playback is a
plain <audio src> on a one-time URL (pages/chat_voice.py), so the browser plays the audio while it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.registry.families import modality
from core.registry.view import CatalogEntry

MAX_SECONDS = 60
RECORDED_EVENT = 'mr_voice_recorded'
FAILED_EVENT = 'mr_voice_failed'

_JS = """
window.mrVoice = {
  recorder: null, chunks: [], timer: null,
  async start() {
    let stream;
    try { stream = await navigator.mediaDevices.getUserMedia({audio: true}); }
    catch (error) { emitEvent('FAILED', {message: String(error && error.message || error)}); return false; }
    const recorder = new MediaRecorder(stream, {audioBitsPerSecond: 32000});
    this.chunks = [];
    recorder.ondataavailable = (e) => { if (e.data && e.data.size) this.chunks.push(e.data); };
    recorder.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop());
      const bytes = new Uint8Array(await new Blob(this.chunks, {type: recorder.mimeType}).arrayBuffer());
      let binary = '';
      for (let i = 0; i < bytes.length; i += 0x8000) {
        binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      }
      emitEvent('RECORDED', {audio: btoa(binary), type: recorder.mimeType});
    };
    recorder.start(250);
    this.recorder = recorder;
    this.timer = setTimeout(() => this.stop(), MAX_MS);
    return true;
  },
  stop() {
    clearTimeout(this.timer);
    if (this.recorder && this.recorder.state !== 'inactive') this.recorder.stop();
    this.recorder = null;
  },
  play(url) {
    let audio = document.getElementById('mr-voice-audio');
    if (!audio) {
      audio = document.createElement('audio');
      audio.id = 'mr-voice-audio';
      document.body.appendChild(audio);
    }
    audio.src = url;
    audio.play().catch((e) => emitEvent('FAILED', {message: 'playback: ' + String(e && e.message || e)}));
  },
};
"""
SCRIPT = '<script>' + (_JS.replace('FAILED', FAILED_EVENT).replace('RECORDED', RECORDED_EVENT)
                       .replace('MAX_MS', str(MAX_SECONDS * 1000))) + '</script>'


@dataclass(frozen=True, slots=True)
class SpeechOffer:
    """What the registry offers the chat: a speech-to-text model (the microphone), text-to-speech voices."""

    listener: str | None = None
    voices: list[tuple[str, str]] = field(default_factory=list)  # (model, voice), in the picker's order

    @property
    def any(self) -> bool:
        return self.listener is not None or bool(self.voices)

    def picker_options(self) -> dict[str, str]:
        """`model|voice` -> its label (the model is named only when more than one speaks)."""
        several = len({model for model, _ in self.voices}) > 1
        return {f'{model}|{voice}': f'{voice} · {model}' if several else voice for model, voice in self.voices}


def speech_offer(entries: Iterable[CatalogEntry]) -> SpeechOffer:
    listener = None
    voices: list[tuple[str, str]] = []
    for entry in entries:
        info = entry.info
        kind = modality(info.capabilities)
        if kind == 'stt' and listener is None:
            listener = info.name
        elif kind == 'tts':
            voices.extend((info.name, voice) for voice in info.voices or ['default'])
    return SpeechOffer(listener=listener, voices=voices)


def speakable(markdown: str, *, limit: int = 4096) -> str:
    """An answer as it should be read aloud: code blocks named rather than spelled out, Markdown marks dropped."""
    out, in_code = [], False
    for line in markdown.splitlines():
        if line.strip().startswith('```'):
            if not in_code:
                out.append('(code)')
            in_code = not in_code
            continue
        if not in_code:
            out.append(line.lstrip('#> ').replace('**', '').replace('__', '').replace('`', ''))
    return ' '.join(' '.join(out).split())[:limit]
