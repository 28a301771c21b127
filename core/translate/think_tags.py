"""Reasoning written inline as `<think>...</think>` at the start of the content, split out of it.

vLLM started without `--reasoning-parser` (and older Ollama builds) return a reasoning model's thoughts
inside the answer text. Clients asked for separate reasoning (`reasoning_content`, `message.thinking`,
Anthropic thinking blocks), so the engine parsers split it off, in a stream too, where a tag can arrive cut
across chunks (`<thi` + `nk>`). Only a `<think>` at the very start of the answer (after whitespace) opens
reasoning: a tag in the middle of an answer is text the model meant to write.

The common case (no tag) costs one check of the first chunk; after that the splitter passes text through.
"""

from __future__ import annotations

OPEN = '<think>'
CLOSE = '</think>'

_START, _PASS, _INSIDE, _AFTER = range(4)


def split_think_tags(text: str) -> tuple[str, str]:
    """(content, reasoning) of a whole answer."""
    splitter = ThinkTagSplitter()
    content, reasoning = splitter.split(text)
    tail_content, tail_reasoning = splitter.flush()
    return content + tail_content, reasoning + tail_reasoning


class ThinkTagSplitter:
    """Feed content fragments in order; each call returns the (content, reasoning) that is now certain."""

    __slots__ = ('_held', '_state')

    def __init__(self) -> None:
        self._state = _START
        self._held = ''  # text that may still turn out to be (part of) a tag

    def split(self, text: str) -> tuple[str, str]:
        if self._state == _PASS or not text:
            return text, ''
        if self._state == _AFTER:
            return self._after(text)
        text = self._held + text
        self._held = ''
        if self._state == _START:
            stripped = text.lstrip()
            if not stripped or (len(stripped) < len(OPEN) and OPEN.startswith(stripped)):
                self._held = text  # whitespace or a partial `<think>`: wait for more
                return '', ''
            if not stripped.startswith(OPEN):
                self._state = _PASS
                return text, ''
            self._state = _INSIDE
            text = stripped[len(OPEN):]
        return self._inside(text)

    def flush(self) -> tuple[str, str]:
        """What is still held when the answer ends: a cut tag is whatever it was inside of."""
        held, self._held = self._held, ''
        if self._state == _INSIDE:
            return '', held
        return held, ''

    def _inside(self, text: str) -> tuple[str, str]:
        end = text.find(CLOSE)
        if end >= 0:
            self._state = _AFTER
            content, _ = self._after(text[end + len(CLOSE):])
            return content, text[:end]
        keep = _partial_suffix(text, CLOSE)
        if keep:
            self._held = text[-keep:]
            return '', text[:-keep]
        return '', text

    def _after(self, text: str) -> tuple[str, str]:
        # the blank line models put between their thinking and the answer is not part of the answer
        text = text.lstrip('\n')
        if text:
            self._state = _PASS
        return text, ''


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper start of `tag` (0 if none)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
