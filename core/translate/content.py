"""Message content helpers shared by the dialects and engines: images, tool-call arguments, system prompts."""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any

import orjson

from core.errors import InvalidRequest
from core.translate.canonical import ImagePart, Message

# magic bytes -> MIME type; enough of the file to tell the formats vision models accept
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b'\x89PNG\r\n\x1a\n', 'image/png'),
    (b'\xff\xd8\xff', 'image/jpeg'),
    (b'GIF87a', 'image/gif'),
    (b'GIF89a', 'image/gif'),
)
IMAGE_FORMATS = 'PNG, JPEG, GIF, WebP or BMP'


def sniff_image_type(data_b64: str) -> str | None:
    """The MIME type from the first bytes of base64 image data; None when it is not base64 or not an image."""
    head = data_b64[:36]  # 36 base64 chars = 27 bytes, enough for every signature below
    try:
        raw = b64decode(head + '=' * (-len(head) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return sniff_image_bytes(raw)


def sniff_image_bytes(raw: bytes) -> str | None:
    """The MIME type from an image's first bytes (its magic number); None when it is no format we know."""
    if raw[:4] == b'RIFF' and raw[8:12] == b'WEBP':
        return 'image/webp'
    # 'BM' alone is too weak (text can start with it): a BMP file header also has four reserved zero bytes
    if raw[:2] == b'BM' and len(raw) >= 26 and raw[6:10] == b'\0\0\0\0':
        return 'image/bmp'
    return next((mime for magic, mime in _MAGIC if raw.startswith(magic)), None)


def image_from_base64(data: object, param: str) -> ImagePart:
    """An Ollama-style bare base64 image (a `data:` URL is tolerated: some clients send one)."""
    if not isinstance(data, str) or not data:
        raise InvalidRequest(f"'{param}' must be a non-empty base64 string.", param=param)
    if data.startswith('data:'):
        return image_from_data_url(data, param)
    data = data.strip()
    mime = sniff_image_type(data)
    if mime is None:
        raise InvalidRequest(f"'{param}' is not a base64 image ({IMAGE_FORMATS}).", param=param)
    return ImagePart(data=data, media_type=mime, source=param)


def image_from_data_url(url: str, param: str) -> ImagePart:
    """`data:image/png;base64,....` -> ImagePart. Only base64 data URLs carry an image."""
    header, sep, data = url.partition(',')
    if not sep or not header.endswith(';base64'):
        raise InvalidRequest(f"'{param}' must be a base64 data URL (data:<mime>;base64,<data>).", param=param)
    data = data.strip()
    sniffed = sniff_image_type(data)
    if sniffed is None or not data:
        raise InvalidRequest(f"'{param}' does not hold a base64 image ({IMAGE_FORMATS}).", param=param)
    return ImagePart(data=data, media_type=sniffed, source=param)  # the bytes say what they are, not the header


def data_url(image: ImagePart) -> str:
    return f'data:{image.media_type};base64,{image.data}'


def arguments_text(arguments: object, param: str) -> str:
    """Tool-call arguments as canonical JSON text: objects (Ollama, Anthropic) are serialised, text kept."""
    if isinstance(arguments, str):
        return arguments
    if arguments is None:
        return '{}'
    if isinstance(arguments, dict):
        return orjson.dumps(arguments).decode()
    raise InvalidRequest(f"'{param}' must be an object or a JSON string.", param=param)


def arguments_object(arguments: str) -> dict[str, Any]:
    """Canonical JSON-text arguments as the object Ollama and Anthropic want.

    A model can produce arguments that are not a JSON object (truncated by max_tokens, or plain garbage);
    those become `{}` because both dialects' clients require an object and would fail on anything else.
    """
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def merge_system(messages: list[Message], extra: str | None = None) -> tuple[str | None, list[Message]]:
    """All system text, in order, joined by a blank line, and the other messages.

    Chat templates (Qwen's among them) reject a system message that is not first, or more than one, so
    engines always get at most one, at the front. `extra` (a completion's separate system) goes first.
    """
    parts = [extra] if extra else []
    rest: list[Message] = []
    for message in messages:
        if message.role == 'system':
            if message.content:
                parts.append(message.content)
        else:
            rest.append(message)
    return ('\n\n'.join(parts) if parts else None), rest
