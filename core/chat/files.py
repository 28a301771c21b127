"""Files attached to chat messages: checked, converted to text (or kept as images), stored, and cleaned up.

What can be attached (decided from the bytes, never from the name alone):

    text and code   any UTF-8 text (a UTF-8 or UTF-16 byte-order mark is honoured): .txt .md .csv .json .yaml
                    .py .js .ts .java .c .go .rs .sql ... and files with no or an unknown extension alike
    PDF             its text layer, extracted with pypdf; a scanned PDF (pages that are pictures) is refused
    Word (.docx)    the paragraphs of word/document.xml, table cells too (read with zipfile + ElementTree)
    images          PNG, JPEG, GIF, WebP (by their magic bytes), stored as uploaded and sent to the model as
                    an image part

Anything else, an empty file, or one over MAX_UPLOAD_BYTES is refused with InvalidRequest (413
RequestTooLarge for the size) and a message that says what can be attached. Text longer than
MAX_EXTRACTED_CHARS is cut there, with a note saying so at the cut (the model sees the note too).

On disk, under the artifact folder (Settings.resolved_artifact_path, ARTIFACT_STORAGE_PATH):

    chat/<user id>/<32 random hex><suffix>        the file as uploaded (suffix from the detected type:
                                                  .txt .pdf .docx .png .jpg .gif .webp)
    chat/<user id>/<32 random hex><suffix>.txt    the extracted text (text kinds only), what the model gets

The client's filename is kept in the row for display only and never becomes part of a path. `storage_path`
is relative to the artifact folder; every path is resolved and checked to lie inside it before use.

The page's flow (API stable; see also core.chat.conversations):

    att = await save_upload(session, user_id=u, filename=name, data=raw, settings=s)   # unsent: no conversation
    ... user presses send ...
    msg = await conversations.add_message(session, user_id=u, conversation_id=c, role='user', content=text)
    await attach(session, user_id=u, attachment_ids=[att.id], conversation_id=c, message_id=msg.id)
    messages = await conversations.context_for(session, user_id=u, conversation_id=c, settings=s)
    ... the request is answered with X-Request-ID rid ...
    await link_request(session, user_id=u, attachment_ids=[att.id], request_id=rid)

Services (keyword-only, user-scoped: another user's file or conversation reads as one that does not exist):

    extract_text(filename, data) -> Extracted                                  (sync, CPU; no I/O)
    save_upload(session, *, user_id, filename, data, settings) -> ChatAttachment
    get_attachment(session, *, user_id, attachment_id) -> ChatAttachment       (AttachmentNotFound)
    list_attachments(session, *, user_id, conversation_id) -> list[ChatAttachment]   (oldest first)
    list_unsent(session, *, user_id) -> list[ChatAttachment]                   (uploaded, not yet sent)
    attach(session, *, user_id, attachment_ids, conversation_id, message_id) -> list[ChatAttachment]
    link_request(session, *, user_id, attachment_ids, request_id) -> int       (rows updated)
    delete_attachment(session, *, user_id, attachment_id, settings=None) -> None   (row and files)
    read_text(attachment, *, settings=None) -> str | None    (the extracted text; None: file gone or an image)
    read_bytes(attachment, *, settings=None) -> bytes | None (the file as uploaded; None: file gone)
    data_url(attachment, *, settings=None) -> str | None     (images: data:<type>;base64,...)
    delete_files(storage_paths, *, settings=None) -> int     (files removed; rows are the caller's business)
    delete_user_files(user_id, *, settings=None) -> None     (the user's whole chat folder: on account deletion)
    purge_unsent(session, *, older_than, settings=None) -> int   (maintenance: uploads never sent, all users)
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import secrets
import shutil
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.chat.errors import AttachmentNotFound, ConversationNotFound
from core.config import Settings, get_settings
from core.errors import InvalidRequest, RequestTooLarge
from core.models import AttachmentKind, ChatAttachment, ChatMessage, Conversation
from core.translate.content import sniff_image_bytes

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # per file
MAX_EXTRACTED_CHARS = 200_000  # per file: longer text is cut here, with a note
MAX_ATTACHMENTS_PER_MESSAGE = 10
FILENAME_MAX = 255  # chat_attachments.filename
CHAT_FOLDER = 'chat'  # under the artifact folder

SUPPORTED = ('text and code files (UTF-8: .txt, .md, .csv, .json, .yaml, .py, .js, ...), PDF with a text layer, '
             'Word documents (.docx) and images (PNG, JPEG, GIF, WebP)')

IMAGE_SUFFIXES = {'image/png': '.png', 'image/jpeg': '.jpg', 'image/gif': '.gif', 'image/webp': '.webp'}
PDF_TYPE = 'application/pdf'
DOCX_TYPE = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'

# Text files: the media type recorded for a name's extension (the content decides that it is text at all).
_TEXT_TYPES: dict[str, str] = {
    '.txt': 'text/plain', '.text': 'text/plain', '.log': 'text/plain', '.md': 'text/markdown',
    '.markdown': 'text/markdown', '.rst': 'text/x-rst', '.csv': 'text/csv', '.tsv': 'text/tab-separated-values',
    '.json': 'application/json', '.jsonl': 'application/jsonl', '.yaml': 'application/yaml',
    '.yml': 'application/yaml', '.toml': 'application/toml', '.xml': 'application/xml', '.html': 'text/html',
    '.htm': 'text/html', '.css': 'text/css', '.ini': 'text/plain', '.cfg': 'text/plain', '.tex': 'text/x-tex',
    '.py': 'text/x-python', '.ipynb': 'application/x-ipynb+json', '.js': 'text/javascript',
    '.mjs': 'text/javascript', '.ts': 'text/x-typescript', '.tsx': 'text/x-typescript', '.jsx': 'text/javascript',
    '.java': 'text/x-java', '.c': 'text/x-c', '.h': 'text/x-c', '.cpp': 'text/x-c++', '.cc': 'text/x-c++',
    '.hpp': 'text/x-c++', '.cs': 'text/x-csharp', '.go': 'text/x-go', '.rs': 'text/x-rust', '.rb': 'text/x-ruby',
    '.php': 'text/x-php', '.sh': 'text/x-shellscript', '.bash': 'text/x-shellscript', '.sql': 'application/sql',
    '.r': 'text/x-r', '.jl': 'text/x-julia', '.swift': 'text/x-swift', '.kt': 'text/x-kotlin',
    '.scala': 'text/x-scala', '.lua': 'text/x-lua', '.pl': 'text/x-perl', '.m': 'text/x-matlab',
    '.f90': 'text/x-fortran', '.hs': 'text/x-haskell', '.ex': 'text/x-elixir', '.dart': 'text/x-dart',
    '.vue': 'text/plain', '.svelte': 'text/plain', '.dockerfile': 'text/plain', '.tf': 'text/plain',
}
_BINARY_HINTS: tuple[tuple[bytes, str], ...] = (  # formats people try, named in the refusal
    (b'\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1', 'an old Office file (.doc, .xls, .ppt): save it as .docx or PDF'),
    (b'{\\rtf', 'an RTF document: save it as .docx, PDF or plain text'),
)
_DOCX_XML_MAX = 64 * 1024 * 1024  # uncompressed word/document.xml, at most (a zip bomb stops here)
_W = '{http://schemas.openxmlformats.org/wordprocessingml/2006/main}'
_CONTROL = re.compile(r'[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]')


@dataclass(frozen=True, slots=True)
class Extracted:
    """What a file is, and the text the model gets from it."""

    kind: AttachmentKind
    media_type: str
    text: str  # '' for images; cut to MAX_EXTRACTED_CHARS (plus a note) when longer
    total_chars: int  # characters of text in the file, before any cut; 0 for images
    suffix: str  # the suffix of the stored file

    @property
    def truncated(self) -> bool:
        return self.total_chars > MAX_EXTRACTED_CHARS


# ---------------------------------------------------------------------------------------------- conversion


def display_name(filename: str) -> str:
    """The client's filename made safe to show and store: its last path part, no control characters, at most
    FILENAME_MAX characters (the extension kept). Never used on disk."""
    name = re.split(r'[\\/]', filename or '')[-1]
    name = ''.join(' ' if unicodedata.category(ch).startswith('C') else ch for ch in name)
    name = ' '.join(name.replace('[', '(').replace(']', ')').split()).strip(' .') or 'file'
    if len(name) > FILENAME_MAX:
        _stem, dot, ext = name.rpartition('.')
        ext = f'.{ext}' if dot and 0 < len(ext) <= 16 else ''
        name = name[:FILENAME_MAX - len(ext)] + ext
    return name


def check_size(filename: str, size: int) -> None:
    """RequestTooLarge for a file over MAX_UPLOAD_BYTES: check an upload's size before reading it."""
    if size > MAX_UPLOAD_BYTES:
        raise RequestTooLarge(f'{display_name(filename)} is {size / 1024 / 1024:.1f} MiB: files up to '
                              f'{MAX_UPLOAD_BYTES // 1024 // 1024} MiB can be attached', param='file')


def extract_text(filename: str, data: bytes) -> Extracted:
    """Decide what the file is from its bytes and extract its text. Raises InvalidRequest for an empty,
    unsupported or unreadable file, RequestTooLarge for one over MAX_UPLOAD_BYTES. CPU-bound: call it in a
    thread from async code (save_upload does)."""
    name = display_name(filename)
    if not data:
        raise InvalidRequest(f'{name} is empty: there is nothing to attach', param='file')
    check_size(name, len(data))
    image = sniff_image_bytes(data[:32])
    if image in IMAGE_SUFFIXES:
        return Extracted(AttachmentKind.image, image, '', 0, IMAGE_SUFFIXES[image])
    if image is not None:
        raise InvalidRequest(f'{name} is a {image.removeprefix("image/").upper()} image, which cannot be attached; '
                             'images can be PNG, JPEG, GIF or WebP', param='file')
    if b'%PDF-' in data[:1024]:
        return _finish(_pdf_text(name, data), PDF_TYPE, '.pdf')
    if data.startswith(b'PK\x03\x04'):
        return _finish(_docx_text(name, data), DOCX_TYPE, '.docx')
    text = decode_text(data)
    if text is None:
        suffix = PurePosixPath(name.lower()).suffix
        if suffix in _TEXT_TYPES:
            raise InvalidRequest(f'{name} is not UTF-8 text: save it with UTF-8 encoding and attach it again',
                                 param='file')
        hint = next((what for magic, what in _BINARY_HINTS if data.startswith(magic)), None)
        what = f'{name} is {hint}' if hint else f'{name} is not a file that can be attached'
        raise InvalidRequest(f'{what}. Supported: {SUPPORTED}', param='file')
    if not text.strip():
        raise InvalidRequest(f'{name} has only whitespace: there is nothing to attach', param='file')
    media_type = _TEXT_TYPES.get(PurePosixPath(name.lower()).suffix, 'text/plain')
    return _finish(text, media_type, '.txt')


def decode_text(data: bytes) -> str | None:
    """The bytes as text (UTF-8, or UTF-8/UTF-16 with a byte-order mark), newlines as \\n; None when they are
    not text: invalid UTF-8, a NUL byte, or more than a few control characters."""
    try:
        text = data.decode('utf-16') if data.startswith((b'\xff\xfe', b'\xfe\xff')) else data.decode('utf-8-sig')
    except UnicodeDecodeError:
        return None
    if '\x00' in text or len(_CONTROL.findall(text[:100_000])) > max(8, len(text[:100_000]) // 200):
        return None
    return text.replace('\r\n', '\n').replace('\r', '\n')


def _finish(text: str, media_type: str, suffix: str) -> Extracted:
    total = len(text)
    if total > MAX_EXTRACTED_CHARS:
        text = (text[:MAX_EXTRACTED_CHARS] + f'\n[truncated: the file has {total:,} characters; only the first '
                f'{MAX_EXTRACTED_CHARS:,} are included]')
    return Extracted(AttachmentKind.text, media_type, text, total, suffix)


def _pdf_text(name: str, data: bytes) -> str:
    from pypdf import PdfReader  # imported on first use: it takes a moment and most processes never need it

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = bool(reader.decrypt(''))
            except Exception:  # pypdf raises several kinds for a password it cannot use
                opened = False
            if not opened:
                raise InvalidRequest(f'{name} is password-protected: remove the password and attach it again',
                                     param='file')
        pages = [(page.extract_text() or '').strip() for page in reader.pages]
    except InvalidRequest:
        raise
    except Exception as exc:  # a damaged PDF can fail anywhere inside pypdf
        raise InvalidRequest(f'{name} could not be read as a PDF ({type(exc).__name__}: {exc})',
                             param='file') from exc
    text = '\n\n'.join(page for page in pages if page)
    if not text.strip():
        raise InvalidRequest(f'{name} has no text layer (a scanned PDF?): its pages are pictures, and text '
                             'cannot be extracted from them. Attach the pages as images, or a PDF with text',
                             param='file')
    return text


def _docx_text(name: str, data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            try:
                info = archive.getinfo('word/document.xml')
            except KeyError:
                raise InvalidRequest(f'{name} is a ZIP archive (or an Excel or PowerPoint file), which cannot be '
                                     f'attached. Supported: {SUPPORTED}', param='file') from None
            if info.file_size > _DOCX_XML_MAX:
                raise InvalidRequest(f'{name} is too large to read', param='file')
            xml = archive.read(info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError) as exc:
        raise InvalidRequest(f'{name} could not be read as a Word document ({exc})', param='file') from exc
    if b'<!DOCTYPE' in xml or b'<!ENTITY' in xml:  # Word never writes these; entity tricks stop here
        raise InvalidRequest(f'{name} could not be read as a Word document (it declares a DTD)', param='file')
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise InvalidRequest(f'{name} could not be read as a Word document ({exc})', param='file') from exc
    body = root.find(f'{_W}body')
    text = '\n'.join(_blocks(body)).strip() if body is not None else ''
    if not text:
        raise InvalidRequest(f'{name} has no text: there is nothing to attach', param='file')
    return text


def _blocks(element: ElementTree.Element) -> Iterator[str]:
    """The lines of a body, table cell or content control, in document order: one per paragraph, one per table
    row (cells joined by ' | ')."""
    for child in element:
        if child.tag == f'{_W}p':
            yield _paragraph(child)
        elif child.tag == f'{_W}tbl':
            for row in child.findall(f'{_W}tr'):
                cells = [' '.join(line.strip() for line in _blocks(cell) if line.strip())
                         for cell in row.findall(f'{_W}tc')]
                if any(cells):
                    yield ' | '.join(cells)
        elif child.tag not in (f'{_W}tr', f'{_W}tc'):
            yield from _blocks(child)  # content controls, custom XML and the like wrap paragraphs


def _paragraph(paragraph: ElementTree.Element) -> str:
    parts: list[str] = []
    for node in paragraph.iter():
        tag = node.tag.removeprefix(_W)
        if tag == 't' and node.text:
            parts.append(node.text)
        elif tag == 'tab':
            parts.append('\t')
        elif tag in ('br', 'cr'):
            parts.append('\n')
        elif tag == 'noBreakHyphen':
            parts.append('-')
    return ''.join(parts)


# ------------------------------------------------------------------------------------------------- storage


def resolve(storage_path: str, settings: Settings | None = None) -> Path:
    """The absolute path of a stored file; ValueError when `storage_path` would lead outside the artifact
    folder (it never does for paths this module wrote)."""
    root = (settings or get_settings()).resolved_artifact_path.resolve()
    path = (root / storage_path).resolve()
    if not path.is_relative_to(root / CHAT_FOLDER) or path == root / CHAT_FOLDER:
        raise ValueError(f'{storage_path!r} is outside the chat folder')
    return path


def text_path(storage_path: str) -> str:
    """Where the extracted text of a stored file is kept."""
    return f'{storage_path}.txt'


async def save_upload(session: AsyncSession, *, user_id: int, filename: str, data: bytes,
                      settings: Settings) -> ChatAttachment:
    """Check and convert an uploaded file, store it, and record it for the user (not yet in any conversation:
    `attach` puts it with the message it is sent with). Raises InvalidRequest / RequestTooLarge as
    extract_text does; nothing is stored then."""
    name = display_name(filename)
    extracted = await asyncio.to_thread(extract_text, name, data)
    storage_path = f'{CHAT_FOLDER}/{user_id}/{secrets.token_hex(16)}{extracted.suffix}'
    text = extracted.text if extracted.kind == AttachmentKind.text else None
    await asyncio.to_thread(_write, storage_path, data, text, settings)
    attachment = ChatAttachment(user_id=user_id, filename=name, media_type=extracted.media_type,
                                size_bytes=len(data), kind=extracted.kind, storage_path=storage_path,
                                extracted_chars=extracted.total_chars)
    try:
        session.add(attachment)
        await session.commit()
    except BaseException:
        await asyncio.to_thread(_remove, [storage_path], settings)
        raise
    return attachment


def _write(storage_path: str, data: bytes, text: str | None, settings: Settings) -> None:
    path = resolve(storage_path, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if text is not None:
        resolve(text_path(storage_path), settings).write_text(text, encoding='utf-8')


async def get_attachment(session: AsyncSession, *, user_id: int, attachment_id: int) -> ChatAttachment:
    attachment = await session.get(ChatAttachment, attachment_id)
    if attachment is None or attachment.user_id != user_id:
        raise AttachmentNotFound(f'you have no attachment with id {attachment_id}', param='attachment_id')
    return attachment


async def list_attachments(session: AsyncSession, *, user_id: int, conversation_id: int) -> list[ChatAttachment]:
    """The files sent in one of the user's conversations, oldest first (group them by message_id)."""
    await _own_conversation(session, user_id, conversation_id)
    rows = await session.exec(select(ChatAttachment).where(col(ChatAttachment.conversation_id) == conversation_id,
                                                           col(ChatAttachment.user_id) == user_id)
                              .order_by(col(ChatAttachment.id)))
    return list(rows)


async def list_unsent(session: AsyncSession, *, user_id: int) -> list[ChatAttachment]:
    """The user's uploads that have not been sent with a message yet, oldest first."""
    rows = await session.exec(select(ChatAttachment).where(col(ChatAttachment.user_id) == user_id,
                                                           col(ChatAttachment.conversation_id).is_(None))
                              .order_by(col(ChatAttachment.id)))
    return list(rows)


async def attach(session: AsyncSession, *, user_id: int, attachment_ids: Sequence[int], conversation_id: int,
                 message_id: int) -> list[ChatAttachment]:
    """Put the user's uploads with the (user) message they are sent with; returned in the order given.
    An upload already sent with another message cannot be sent again (upload it again)."""
    ids = list(dict.fromkeys(attachment_ids))
    if not ids:
        return []
    if len(ids) > MAX_ATTACHMENTS_PER_MESSAGE:
        raise InvalidRequest(f'at most {MAX_ATTACHMENTS_PER_MESSAGE} files can be sent with one message',
                             param='attachment_ids')
    await _own_conversation(session, user_id, conversation_id)
    message = await session.get(ChatMessage, message_id)
    if message is None or message.conversation_id != conversation_id:
        raise InvalidRequest(f'conversation {conversation_id} has no message with id {message_id}',
                             param='message_id')
    rows = {a.id: a for a in await session.exec(select(ChatAttachment).where(
        col(ChatAttachment.id).in_(ids), col(ChatAttachment.user_id) == user_id))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise AttachmentNotFound(f'you have no attachment with id {missing[0]}', param='attachment_ids')
    for attachment in rows.values():
        if attachment.message_id not in (None, message_id) or attachment.conversation_id not in (None,
                                                                                               conversation_id):
            raise InvalidRequest(f'{attachment.filename} was already sent with another message: attach it again',
                                 param='attachment_ids')
        attachment.conversation_id = conversation_id
        attachment.message_id = message_id
        session.add(attachment)
    await session.commit()
    return [rows[i] for i in ids]


async def link_request(session: AsyncSession, *, user_id: int, attachment_ids: Sequence[int],
                       request_id: str) -> int:
    """Record the X-Request-ID of the request that was answered with these files (the link to its audit
    record). Ids that are not the user's are skipped; returns how many rows were updated."""
    if not attachment_ids:
        return 0
    result = await session.exec(update(ChatAttachment)
                                .where(col(ChatAttachment.id).in_(list(attachment_ids)),
                                       col(ChatAttachment.user_id) == user_id)
                                .values(request_id=request_id[:40]))
    await session.commit()
    return int(result.rowcount or 0)


async def delete_attachment(session: AsyncSession, *, user_id: int, attachment_id: int,
                            settings: Settings | None = None) -> None:
    """Delete one of the user's files: the row, then the files on disk (e.g. an upload removed before
    sending)."""
    attachment = await get_attachment(session, user_id=user_id, attachment_id=attachment_id)
    storage_path = attachment.storage_path
    await session.delete(attachment)
    await session.commit()
    await delete_files([storage_path], settings=settings)


async def read_text(attachment: ChatAttachment, *, settings: Settings | None = None) -> str | None:
    """The text the model gets from a file; None for an image or when the file is gone from disk."""
    if attachment.kind != AttachmentKind.text:
        return None
    return await asyncio.to_thread(_read_text, attachment.storage_path, settings)


async def read_bytes(attachment: ChatAttachment, *, settings: Settings | None = None) -> bytes | None:
    """The file as it was uploaded; None when it is gone from disk."""
    return await asyncio.to_thread(_read_bytes, attachment.storage_path, settings)


async def data_url(attachment: ChatAttachment, *, settings: Settings | None = None) -> str | None:
    """An image as a data: URL (what OpenAI-style image_url parts carry); None for text or a file gone."""
    if attachment.kind != AttachmentKind.image:
        return None
    raw = await read_bytes(attachment, settings=settings)
    if raw is None:
        return None
    return f'data:{attachment.media_type};base64,{base64.b64encode(raw).decode("ascii")}'


def _read_text(storage_path: str, settings: Settings | None) -> str | None:
    try:
        return resolve(text_path(storage_path), settings).read_text(encoding='utf-8')
    except (OSError, ValueError):
        return None


def _read_bytes(storage_path: str, settings: Settings | None) -> bytes | None:
    try:
        return resolve(storage_path, settings).read_bytes()
    except (OSError, ValueError):
        return None


async def delete_files(storage_paths: Iterable[str], *, settings: Settings | None = None) -> int:
    """Remove stored files (and their extracted text) from disk; missing ones are skipped. Rows are not
    touched: delete them first. Returns how many files were removed."""
    return await asyncio.to_thread(_remove, list(storage_paths), settings)


def _remove(storage_paths: list[str], settings: Settings | None) -> int:
    removed = 0
    for storage_path in storage_paths:
        for relative in (storage_path, text_path(storage_path)):
            try:
                resolve(relative, settings).unlink()
                removed += 1
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:
                log.warning('could not remove chat file %s: %s', relative, exc)
    return removed


async def delete_user_files(user_id: int, *, settings: Settings | None = None) -> None:
    """Remove the user's whole chat folder (call it when the account is deleted: the rows go by cascade)."""
    root = (settings or get_settings()).resolved_artifact_path / CHAT_FOLDER / str(int(user_id))
    await asyncio.to_thread(shutil.rmtree, root, True)


async def purge_unsent(session: AsyncSession, *, older_than: datetime, settings: Settings | None = None) -> int:
    """Maintenance, across all users: delete uploads never sent with a message and created before
    `older_than` (rows and files). Returns how many were deleted."""
    rows = list(await session.exec(select(ChatAttachment).where(col(ChatAttachment.conversation_id).is_(None),
                                                                col(ChatAttachment.created_at) < older_than)))
    for attachment in rows:
        await session.delete(attachment)
    await session.commit()
    await delete_files([a.storage_path for a in rows], settings=settings)
    return len(rows)


async def _own_conversation(session: AsyncSession, user_id: int, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise ConversationNotFound(f'you have no conversation with id {conversation_id}', param='conversation_id')
    return conversation
