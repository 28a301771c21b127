"""A multipart upload (`POST /v1/audio/transcriptions`) read as it arrives: the file is refused the moment its
first bytes show it is not audio, or the moment it passes the size limit — never after reading it whole.

    upload = await read_upload(request.stream(), request.headers['content-type'], max_file_bytes=25 * 2**20)
    upload.fields['model'], upload.data, upload.container

The parser is python-multipart's streaming one (the parser Starlette's own form handling uses), driven by hand:
Starlette's `request.form()` would spool the whole file to disk before anyone could look at it.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from core.errors import InvalidRequest, RequestTooLarge
from core.speech.audio import SNIFF_BYTES, sniff

MAX_FIELD_BYTES = 64 * 1024  # a prompt or a language code; anything longer is not a form field of this API
MAX_FIELDS = 64


@dataclass(slots=True)
class Upload:
    fields: dict[str, list[str]] = field(default_factory=dict)
    data: bytes = b''
    filename: str = 'audio'
    container: str = ''  # core.speech.audio.sniff's answer


@dataclass(slots=True)
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ''
    filename: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


class _Reader:
    def __init__(self, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.upload = Upload()
        self.part = _Part()
        self.header_name = b''
        self.header_value = b''
        self.files = 0
        self.count = 0
        self.error: Exception | None = None  # raised after the parser's write returns (never inside its callback)

    # python-multipart callbacks -------------------------------------------------------------------------------
    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.header_name.lower()] = self.header_value
        self.header_name = self.header_value = b''

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b'content-disposition', b''))
        self.part.name = options.get(b'name', b'').decode('utf-8', 'replace')
        filename = options.get(b'filename')
        self.part.filename = filename.decode('utf-8', 'replace') if filename is not None else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        part = self.part
        piece = data[start:end]
        part.size += len(piece)
        if part.filename is not None and part.name == 'file':
            if part.size > self.max_file_bytes:
                self.error = RequestTooLarge(f'file is larger than {self.max_file_bytes:,} bytes, the most this '
                                             'endpoint takes', param='file')
                return
            before = part.size - len(piece)
            part.chunks.append(piece)
            if before < SNIFF_BYTES <= part.size:
                self._check_audio(b''.join(part.chunks)[:SNIFF_BYTES])
        elif part.size > MAX_FIELD_BYTES:
            self.error = InvalidRequest(f'form field {part.name!r} is longer than {MAX_FIELD_BYTES:,} bytes',
                                        param=part.name or 'body')
        else:
            part.chunks.append(piece)

    def on_part_end(self) -> None:
        if self.error is not None:
            return
        part = self.part
        if part.filename is not None and part.name == 'file':
            self.files += 1
            if self.files > 1:
                self.error = InvalidRequest('send one file per request', param='file')
                return
            data = b''.join(part.chunks)
            if len(data) < SNIFF_BYTES:
                self._check_audio(data)
            self.upload.data, self.upload.filename = data, part.filename or 'audio'
            return
        self.count += 1
        if self.count > MAX_FIELDS:
            self.error = InvalidRequest(f'more than {MAX_FIELDS} form fields', param='body')
            return
        self.upload.fields.setdefault(part.name, []).append(b''.join(part.chunks).decode('utf-8', 'replace'))

    def _check_audio(self, head: bytes) -> None:
        container = sniff(head)
        if container is None:
            self.error = InvalidRequest('file is not audio this endpoint reads (wav, mp3, ogg/opus, flac, webm, '
                                        'mp4/m4a, aac, aiff, amr); its first bytes say what a file is, not its name',
                                        param='file')
        else:
            self.upload.container = container


async def read_upload(chunks: AsyncIterator[bytes], content_type: str, *, max_file_bytes: int) -> Upload:
    """Read a multipart/form-data body with one `file` part; raise InvalidRequest (400, naming the parameter) or
    RequestTooLarge (413) as soon as the body shows it, without reading the rest."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b'boundary')
    if kind != b'multipart/form-data' or not boundary:
        raise InvalidRequest('send the audio as multipart/form-data with a file field', param='file')
    reader = _Reader(max_file_bytes)
    parser = MultipartParser(boundary, {
        'on_part_begin': reader.on_part_begin, 'on_part_data': reader.on_part_data,
        'on_part_end': reader.on_part_end, 'on_header_field': reader.on_header_field,
        'on_header_value': reader.on_header_value, 'on_header_end': reader.on_header_end,
        'on_headers_finished': reader.on_headers_finished})
    async for chunk in chunks:
        if chunk:
            try:
                parser.write(chunk)
            except Exception as exc:  # python-multipart's MultipartParseError and friends
                raise InvalidRequest(f'the multipart body is malformed: {exc}', param='body') from None
        if reader.error is not None:
            raise reader.error
    parser.finalize()
    if reader.error is not None:
        raise reader.error
    if reader.files == 0:
        raise InvalidRequest('file is required: the audio to transcribe, as a multipart file field', param='file')
    if not reader.upload.data:
        raise InvalidRequest('file is empty', param='file')
    return reader.upload


def encode_multipart(fields: list[tuple[str, str]], *, filename: str, data: bytes, content_type: str
                     ) -> tuple[bytes, bytes]:
    """A multipart/form-data body for the engine: (body, Content-Type header value)."""
    boundary = f'mindrouter-{secrets.token_hex(12)}'.encode()
    parts = []
    for name, value in fields:
        parts.append(b'--' + boundary + b'\r\nContent-Disposition: form-data; name="' + _quoted(name) + b'"\r\n\r\n'
                     + value.encode() + b'\r\n')
    parts.append(b'--' + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="'
                 + _quoted(filename) + b'"\r\nContent-Type: ' + content_type.encode() + b'\r\n\r\n')
    return b''.join(parts) + data + b'\r\n--' + boundary + b'--\r\n', b'multipart/form-data; boundary=' + boundary


def _quoted(value: str) -> bytes:
    return value.replace('\\', '\\\\').replace('"', '%22').replace('\r', '').replace('\n', '').encode()
