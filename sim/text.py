"""Deterministic "model output": answers, token counts, token ids and embeddings derived from the input text.

Tests predict what a fake engine will say with `expected_text` / `expected_tokens`, so the rule is part of the
public contract and must not change casually:

* The seed text is the content of the last message with role ``user`` (chat; the content of the last message
  when that is a tool result (role ``tool``), or when there is no user message; '' when there are no messages),
  or the prompt (generate, completions). A request carrying images adds a marker, see `vision_seed_text`.
* The answer is a sequence of words from the 64-word `VOCABULARY`: word i is VOCABULARY[b & 63] where b is byte
  i of the byte stream BLAKE2b-512(k as 8 bytes little-endian + seed text as UTF-8) for k = 0, 1, 2, ...
  Token 0 is the first word; every later token is a space followed by the next word, so the text of n tokens
  is the n words joined by single spaces (no leading or trailing space). A longer answer extends a shorter one.
* The `reply` knob replaces the answer's words with its text, streamed `REPLY_PIECE_CHARS` characters a token.
* Prompt tokens: every text counts its whitespace-separated words plus one (the "turn" token), see
  `count_prompt_tokens`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

REPLY_PIECE_CHARS = 8  # the `reply` knob's text streams in pieces of this many characters, one per token

# 64 short, plain words: no punctuation, so that stop sequences and JSON escaping never surprise a test.
VOCABULARY: tuple[str, ...] = (
    'the',
    'quick',
    'model',
    'answers',
    'every',
    'question',
    'with',
    'care',
    'and',
    'a',
    'small',
    'amount',
    'of',
    'noise',
    'river',
    'stone',
    'light',
    'green',
    'blue',
    'cloud',
    'paper',
    'window',
    'garden',
    'music',
    'number',
    'signal',
    'token',
    'vector',
    'system',
    'kernel',
    'packet',
    'socket',
    'orange',
    'silver',
    'forest',
    'ocean',
    'planet',
    'rocket',
    'engine',
    'bridge',
    'castle',
    'mirror',
    'pencil',
    'ladder',
    'candle',
    'harbor',
    'meadow',
    'valley',
    'summit',
    'canyon',
    'island',
    'desert',
    'glacier',
    'thunder',
    'breeze',
    'shadow',
    'lantern',
    'compass',
    'anchor',
    'feather',
    'marble',
    'velvet',
    'copper',
    'amber',
)

# Thinking text uses the same generator with a prefixed seed, so it never equals the answer.
_THINKING_PREFIX = 'thinking:'
_BLOCK = 64  # bytes of one BLAKE2b-512 digest
_BYTE_WORDS = tuple(VOCABULARY[b & 63] for b in range(256))


def _block(seed_text: str, index: int) -> bytes:
    """Block `index` of the byte stream behind a seed text: BLAKE2b-512 of (index as 8 bytes LE) + UTF-8 text."""
    return hashlib.blake2b(index.to_bytes(8, 'little') + seed_text.encode('utf-8'), digest_size=_BLOCK).digest()


@functools.lru_cache(maxsize=4096)
def _words(seed_text: str, n: int) -> tuple[str, ...]:
    # Word i is VOCABULARY[byte i of the stream & 63]; 64 words, so every byte maps to a word uniformly.
    words: list[str] = []
    index = 0
    while len(words) < n:
        words.extend(map(_BYTE_WORDS.__getitem__, _block(seed_text, index)[: n - len(words)]))
        index += 1
    return tuple(words)


@functools.lru_cache(maxsize=4096)
def _tokens(seed_text: str, n: int) -> tuple[str, ...]:
    words = _words(seed_text, n)
    return tuple(w if i == 0 else ' ' + w for i, w in enumerate(words))


def expected_tokens(seed_text: str, n_tokens: int) -> tuple[str, ...]:
    """The first `n_tokens` tokens the fakes emit for `seed_text`: 'w0', ' w1', ' w2', ..."""
    return _tokens(seed_text, n_tokens)


def expected_text(seed_text: str, n_tokens: int) -> str:
    """The answer text of `n_tokens` tokens for `seed_text` (the words joined by single spaces)."""
    return ' '.join(_words(seed_text, n_tokens))


def reply_tokens(reply: str) -> tuple[str, ...]:
    """The tokens a given answer text (the `reply` knob) streams as: pieces of a few characters."""
    return tuple(reply[i : i + REPLY_PIECE_CHARS] for i in range(0, len(reply), REPLY_PIECE_CHARS)) or ('',)


def expected_thinking_tokens(seed_text: str, n_tokens: int) -> tuple[str, ...]:
    """The reasoning ("thinking") tokens emitted before the answer when thinking is on."""
    return expected_tokens(_THINKING_PREFIX + seed_text, n_tokens)


def expected_thinking(seed_text: str, n_tokens: int) -> str:
    return ''.join(expected_thinking_tokens(seed_text, n_tokens))


def count_prompt_tokens(texts: Iterable[str]) -> int:
    """Each text counts its whitespace-separated words plus one."""
    return sum(len(t.split()) + 1 for t in texts)


def prompt_token_ids(texts: Iterable[str]) -> list[int]:
    """Token ids matching `count_prompt_tokens`: a turn marker (1) then one id per word (CRC32 of the word)."""
    ids: list[int] = []
    for t in texts:
        ids.append(1)
        ids.extend(word_id(w) for w in t.split())
    return ids


def word_id(word: str) -> int:
    return 100 + zlib.crc32(word.encode('utf-8')) % 32000


def content_text(content: Any) -> str:
    """Text of a message `content`: a string as is; OpenAI content parts: the text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get('text', '') for p in content if isinstance(p, Mapping) and p.get('type') == 'text']
        return '\n'.join(p for p in parts if isinstance(p, str))
    return ''


def seed_message(messages: Sequence[Any]) -> Mapping[str, Any] | None:
    """The message whose content seeds a chat's answer: the tool result that ends the chat, else the last user
    message, else the last message (None when there are none)."""
    dicts = [m for m in messages if isinstance(m, Mapping)]
    if dicts and dicts[-1].get('role') == 'tool':
        return dicts[-1]
    for m in reversed(dicts):
        if m.get('role') == 'user':
            return m
    return dicts[-1] if dicts else None


def chat_seed_text(messages: Sequence[Any]) -> str:
    """The seed text of a chat: the content of `seed_message` (see the module docstring)."""
    message = seed_message(messages)
    return content_text(message.get('content')) if message is not None else ''


def vision_seed_text(text: str, images: int) -> str:
    """The seed text of a prompt that came with `images` images: the text, then a line `[images: N]`, so that a
    test can tell from the answer that the images arrived (and how many)."""
    return f'{text}\n[images: {images}]' if images > 0 else text


def chat_prompt_texts(messages: Sequence[Any]) -> list[str]:
    """The texts counted as the prompt of a chat: every message's content."""
    return [content_text(m.get('content')) for m in messages if isinstance(m, Mapping)]


def chat_prompt(messages: Sequence[Any]) -> tuple[int, str]:
    """(prompt tokens, seed text) of a chat in one pass: `count_prompt_tokens(chat_prompt_texts(messages))` and
    `chat_seed_text(messages)`, for the hot path."""
    count = 0
    seed: str | None = None
    last = ''
    for m in messages:
        if not isinstance(m, dict):
            continue
        content = m.get('content')
        text = content if isinstance(content, str) else content_text(content)
        count += len(text.split()) + 1
        last = text
        if m.get('role') == 'user':
            seed = text
    # A chat that ends with a tool result is answered from that result (sim.tools: no call follows it).
    if messages and isinstance(messages[-1], dict) and messages[-1].get('role') == 'tool':
        return count, last
    return count, last if seed is None else seed


def embedding_vector(text: str, dim: int, *, normalize: bool = True) -> list[float]:
    """A deterministic vector for `text`; unit length when `normalize` (as /api/embed and vLLM return).

    Component i comes from the i-th little-endian uint32 of the seed text's byte stream, mapped onto [-1, 1).
    """
    per_block = _BLOCK // 4
    raw: list[float] = []
    index = 0
    while len(raw) < dim:
        raw.extend(v / 2147483648.0 - 1.0 for v in struct.unpack(f'<{per_block}I', _block(text, index)))
        index += 1
    del raw[dim:]
    if not normalize:
        return raw
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def embedding_base64(vector: Sequence[float]) -> str:
    """OpenAI's `encoding_format: "base64"`: little-endian float32 bytes, base64-encoded."""
    return base64.b64encode(struct.pack(f'<{len(vector)}f', *vector)).decode('ascii')


def apply_stop(tokens: Sequence[str], stops: Sequence[str]) -> tuple[Sequence[str], int, str | None]:
    """Cut the answer at the earliest stop sequence.

    Returns the tokens to emit (the token in which the stop begins is cut short, and dropped when nothing of it
    remains), how many generated tokens that consumed (up to and including the one completing the stop), and the
    stop string that matched, if any. The stop string itself is never emitted (vLLM and Ollama defaults).
    """
    stops = [s for s in stops if s]
    if not stops or not tokens:
        return tokens, len(tokens), None
    text = ''.join(tokens)
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return tokens, len(tokens), None
    cut, stop = best
    end = cut + len(stop)
    kept: list[str] = []
    consumed = 0
    pos = 0
    for tok in tokens:
        start, pos = pos, pos + len(tok)
        consumed += 1
        if start < cut:
            piece = tok[: cut - start]
            if piece:
                kept.append(piece)
        if pos >= end:
            break
    return kept, consumed, stop
