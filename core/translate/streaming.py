"""The two streaming seams: engine bytes -> `Delta`s (parsers), `Delta`s -> client bytes (encoders).

A streamed answer flows  engine socket --feed()--> [Delta, ...] --delta()--> client socket,  one chunk at a
time, never buffered whole. The HTTP layer owns the loop; these protocols are all it needs to know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.translate.canonical import Delta, Usage

SSE = 'text/event-stream'
NDJSON = 'application/x-ndjson'


class StreamParser(Protocol):
    """Turns an engine's raw response bytes, split anywhere, into canonical deltas."""

    def feed(self, data: bytes) -> list[Delta]:
        """Deltas for every complete frame/line seen so far. Raises `engine_errors.EngineStreamError` when
        the engine reports an error, or sends something unreadable; its `deltas` are the ones parsed from
        this call's data before the error (send them, then the error)."""
        ...

    @property
    def done(self) -> bool:
        """True once the engine signalled a complete ending; a stream that closes before this was cut."""
        ...


class StreamEncoder(Protocol):
    """Writes a canonical stream in one client dialect. Methods return bytes to send, possibly b''."""

    media_type: str

    def start(self) -> bytes:
        """Bytes to send before any delta."""
        ...

    def delta(self, d: Delta) -> bytes:
        ...

    def end(self, finish_reason: str, usage: Usage) -> bytes:
        """The clean, complete ending."""
        ...

    def error(self, message: str) -> bytes:
        """The dialect's mid-stream error; nothing may be sent after it (no clean ending)."""
        ...


@dataclass(slots=True)
class StreamTally:
    """What the relay loop needs once the engine stream ends: the finish reason and usage, whichever delta
    brought them (Ollama: the final line; vLLM: the finish chunk, then a separate usage chunk), and how much
    text went by (for an estimate when an engine reports no usage).

        tally.observe(d); out = encoder.delta(d)          for each delta
        encoder.end(tally.finish_reason or 'stop', tally.usage or Usage())   once parser.done
    """

    finish_reason: str | None = None
    usage: Usage | None = None
    chars: int = 0  # content + reasoning characters streamed

    def observe(self, d: Delta) -> None:
        if d.finish_reason:
            self.finish_reason = d.finish_reason
        if d.usage is not None:
            self.usage = d.usage
        self.chars += len(d.content) + len(d.reasoning)


class LineBuffer:
    """Splits a byte stream into complete lines however the chunks were cut (inside a UTF-8 sequence, a
    `data:` prefix or a `\\r\\n` pair): a line is only released once its `\\n` has arrived, so decoding
    always sees whole lines. CRLF line ends become LF."""

    __slots__ = ('_pending',)

    def __init__(self) -> None:
        self._pending = b''

    def lines(self, data: bytes) -> list[bytes]:
        if self._pending:
            data = self._pending + data
        cut = data.rfind(b'\n') + 1
        if not cut:
            self._pending = data
            return []
        self._pending = data[cut:]
        complete = data[:cut]
        if b'\r' in complete:
            complete = complete.replace(b'\r\n', b'\n')
        return complete.split(b'\n')[:-1]  # the piece after the last newline is empty

    @property
    def pending(self) -> bytes:
        """Bytes after the last newline (an unterminated last line when the stream has ended)."""
        return self._pending
