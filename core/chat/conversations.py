"""A user's chat conversations and their messages, and the messages list the next request is built from.

Every service is keyword-only, takes an AsyncSession and the signed-in user's id, and commits its own change.
A conversation (or message) of another user answers exactly as one that does not exist: ConversationNotFound
(404), never another user's row.

    create_conversation(session, *, user_id, model=None, title=None, system_prompt='', temperature=None,
                        think=None, web_search=False) -> Conversation
    list_conversations(session, *, user_id, q=None, offset=0, limit=50) -> (list[Conversation], total)
        most recently active first (updated_at: the last message added); q: case-insensitive title search
    get_conversation(session, *, user_id, conversation_id) -> Conversation
    rename_conversation(session, *, user_id, conversation_id, title) -> Conversation
    update_settings(session, *, user_id, conversation_id, model=UNSET, system_prompt=UNSET, temperature=UNSET,
                    think=UNSET, web_search=UNSET) -> Conversation       (UNSET: leave as it is; None clears)
    delete_conversation(session, *, user_id, conversation_id, settings=None) -> None
        the messages and attachment rows go by cascade; the files on disk are removed after the commit
    add_message(session, *, user_id, conversation_id, role, content='', reasoning=None, model=None,
                request_id=None, prompt_tokens=0, completion_tokens=0, citations=None, stopped=False,
                error=None) -> ChatMessage                             (touches the conversation's updated_at)
    update_message(session, *, user_id, message_id, content=UNSET, reasoning=UNSET, model=UNSET,
                   request_id=UNSET, prompt_tokens=UNSET, completion_tokens=UNSET, citations=UNSET,
                   stopped=UNSET, error=UNSET) -> ChatMessage
        fills in an assistant message as it streams (content so far) and at the end (tokens, request id,
        citations, stopped, error); content is the whole text so far, not a delta
    list_messages(session, *, user_id, conversation_id) -> list[ChatMessage]      oldest first
    title_from(text) -> str                     a short title from the first user message
    context_messages(conversation, messages, attachments, *, settings=None) -> list[dict]   (async: reads files)
    context_for(session, *, user_id, conversation_id, settings=None) -> list[dict]
        the same, loading the conversation, its messages and its files

The context is the OpenAI-style `messages` list for the next request: the system prompt first (when set), then
every turn in order. An assistant message with no content (one that failed, or the placeholder of the answer
being streamed) is left out; reasoning and citations are never sent back. A user message carries the text of
its files before its own text, each as a delimited block

    [file: report.pdf]
    ...extracted text...
    [end of file]

and its images as `image_url` parts with a base64 data URL, in which case its content is a list of parts
([{type: text, text}, {type: image_url, image_url: {url}}, ...]) instead of a string. A file gone from disk
is named in a short note instead. No trimming to the model's context length happens here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from enum import Enum
from typing import Any, Final

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.chat import files
from core.chat.errors import ConversationNotFound
from core.config import Settings
from core.errors import InvalidRequest
from core.models import AttachmentKind, ChatAttachment, ChatMessage, ChatRole, Conversation, utcnow


class _Unset(Enum):
    token = 'UNSET'


UNSET: Final = _Unset.token  # "leave this field as it is" (None means "clear it" where a field can be empty)

TITLE_MAX = 200  # conversations.title
TITLE_SHORT = 60  # a title made from a message is cut about here
DEFAULT_TITLE = 'New chat'
MODEL_MAX = 255
SYSTEM_PROMPT_MAX = 16_000  # characters: a MariaDB TEXT holds 64 KiB, 4 bytes a character at worst
ERROR_MAX = 4_000
TEMPERATURE_RANGE = (0.0, 2.0)
MAX_PAGE = 100  # conversations per page, at most


# ----------------------------------------------------------------------------------------------- conversations


async def create_conversation(session: AsyncSession, *, user_id: int, model: str | None = None,
                              title: str | None = None, system_prompt: str = '', temperature: float | None = None,
                              think: bool | None = None, web_search: bool = False) -> Conversation:
    """A new, empty conversation for the user (title: DEFAULT_TITLE until one is given; the page usually
    renames it with title_from(the first message))."""
    conversation = Conversation(user_id=user_id, title=_title(title) if title is not None else DEFAULT_TITLE,
                                model=_model(model), system_prompt=_system_prompt(system_prompt),
                                temperature=_temperature(temperature), think=think, web_search=bool(web_search))
    session.add(conversation)
    await session.commit()
    return conversation


async def list_conversations(session: AsyncSession, *, user_id: int, q: str | None = None, offset: int = 0,
                             limit: int = 50) -> tuple[list[Conversation], int]:
    """A page of the user's conversations, most recently active first, and how many there are in all
    (matching `q`, a case-insensitive search in the titles, when given)."""
    conditions = [col(Conversation.user_id) == user_id]
    if q and q.strip():
        pattern = '%' + re.sub(r'([\\%_])', r'\\\1', q.strip().lower()) + '%'
        conditions.append(func.lower(col(Conversation.title)).like(pattern, escape='\\'))
    total = (await session.exec(select(func.count()).select_from(Conversation).where(*conditions))).one()
    rows = await session.exec(select(Conversation).where(*conditions)
                              .order_by(col(Conversation.updated_at).desc(), col(Conversation.id).desc())
                              .offset(max(0, offset)).limit(max(1, min(limit, MAX_PAGE))))
    return list(rows), int(total)


async def get_conversation(session: AsyncSession, *, user_id: int, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise ConversationNotFound(f'you have no conversation with id {conversation_id}', param='conversation_id')
    return conversation


async def rename_conversation(session: AsyncSession, *, user_id: int, conversation_id: int,
                              title: str) -> Conversation:
    conversation = await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    conversation.title = _title(title)
    session.add(conversation)
    await session.commit()
    return conversation


async def update_settings(session: AsyncSession, *, user_id: int, conversation_id: int,
                          model: str | _Unset | None = UNSET, system_prompt: str | _Unset = UNSET,
                          temperature: float | _Unset | None = UNSET, think: bool | _Unset | None = UNSET,
                          web_search: bool | _Unset = UNSET) -> Conversation:
    """Change the conversation's settings; fields left UNSET stay as they are, None clears the optional ones
    (model, temperature, think: back to the defaults). temperature: 0..2."""
    conversation = await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    if not isinstance(model, _Unset):
        conversation.model = _model(model)
    if not isinstance(system_prompt, _Unset):
        conversation.system_prompt = _system_prompt(system_prompt)
    if not isinstance(temperature, _Unset):
        conversation.temperature = _temperature(temperature)
    if not isinstance(think, _Unset):
        conversation.think = think
    if not isinstance(web_search, _Unset):
        conversation.web_search = bool(web_search)
    session.add(conversation)
    await session.commit()
    return conversation


async def delete_conversation(session: AsyncSession, *, user_id: int, conversation_id: int,
                              settings: Settings | None = None) -> None:
    """Delete the conversation with its messages and files (rows by cascade, files on disk after the commit)."""
    conversation = await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    paths = list(await session.exec(select(ChatAttachment.storage_path)
                                    .where(col(ChatAttachment.conversation_id) == conversation_id)))
    await session.delete(conversation)
    await session.commit()
    await files.delete_files(paths, settings=settings)


# ---------------------------------------------------------------------------------------------------- messages


async def add_message(session: AsyncSession, *, user_id: int, conversation_id: int, role: str, content: str = '',
                      reasoning: str | None = None, model: str | None = None, request_id: str | None = None,
                      prompt_tokens: int = 0, completion_tokens: int = 0,
                      citations: Sequence[dict[str, Any]] | None = None, stopped: bool = False,
                      error: str | None = None) -> ChatMessage:
    """Append a message (role: user | assistant | system) to the user's conversation."""
    if role not in tuple(ChatRole):
        raise InvalidRequest(f'a message role is one of {", ".join(ChatRole)}, not {role!r}', param='role')
    conversation = await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    message = ChatMessage(conversation_id=conversation_id, role=role, content=content, reasoning=reasoning,
                          model=_model(model), request_id=_request_id(request_id), prompt_tokens=max(0, prompt_tokens),
                          completion_tokens=max(0, completion_tokens), citations=_citations(citations),
                          stopped=stopped, error=_error(error))
    conversation.updated_at = utcnow()
    session.add(conversation)
    session.add(message)
    await session.commit()
    return message


async def update_message(session: AsyncSession, *, user_id: int, message_id: int, content: str | _Unset = UNSET,
                         reasoning: str | _Unset | None = UNSET, model: str | _Unset | None = UNSET,
                         request_id: str | _Unset | None = UNSET, prompt_tokens: int | _Unset = UNSET,
                         completion_tokens: int | _Unset = UNSET,
                         citations: Sequence[dict[str, Any]] | _Unset | None = UNSET,
                         stopped: bool | _Unset = UNSET, error: str | _Unset | None = UNSET) -> ChatMessage:
    """Change a message of the user's; fields left UNSET stay as they are."""
    row = (await session.exec(select(ChatMessage, Conversation.user_id)
                              .join(Conversation, col(Conversation.id) == col(ChatMessage.conversation_id))
                              .where(col(ChatMessage.id) == message_id))).first()
    if row is None or row[1] != user_id:
        raise ConversationNotFound(f'you have no message with id {message_id}', param='message_id')
    message = row[0]
    if not isinstance(content, _Unset):
        message.content = content
    if not isinstance(reasoning, _Unset):
        message.reasoning = reasoning
    if not isinstance(model, _Unset):
        message.model = _model(model)
    if not isinstance(request_id, _Unset):
        message.request_id = _request_id(request_id)
    if not isinstance(prompt_tokens, _Unset):
        message.prompt_tokens = max(0, prompt_tokens)
    if not isinstance(completion_tokens, _Unset):
        message.completion_tokens = max(0, completion_tokens)
    if not isinstance(citations, _Unset):
        message.citations = _citations(citations)
    if not isinstance(stopped, _Unset):
        message.stopped = stopped
    if not isinstance(error, _Unset):
        message.error = _error(error)
    session.add(message)
    await session.commit()
    return message


async def list_messages(session: AsyncSession, *, user_id: int, conversation_id: int) -> list[ChatMessage]:
    """The conversation's messages, oldest first."""
    await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    rows = await session.exec(select(ChatMessage).where(col(ChatMessage.conversation_id) == conversation_id)
                              .order_by(col(ChatMessage.id)))
    return list(rows)


def title_from(text: str) -> str:
    """A short title from the first user message: its first line of text, without Markdown heading or list
    marks, cut at a word near TITLE_SHORT characters with an ellipsis; DEFAULT_TITLE when there is no text."""
    line = next((line for line in (text or '').splitlines() if line.strip()), '')
    line = re.sub(r'^[\s#>*+\-]+', '', line)
    line = ' '.join(line.split())
    if not line:
        return DEFAULT_TITLE
    if len(line) <= TITLE_SHORT:
        return line
    cut = line[:TITLE_SHORT]
    space = cut.rfind(' ')
    if space >= TITLE_SHORT // 2:
        cut = cut[:space]
    return cut.rstrip(' ,.;:-') + '…'


# ----------------------------------------------------------------------------------------------------- context


async def context_messages(conversation: Conversation, messages: Sequence[ChatMessage],
                           attachments: Sequence[ChatAttachment], *,
                           settings: Settings | None = None) -> list[dict[str, Any]]:
    """The OpenAI-style messages list for the next request (see the module's docstring). `attachments` are
    the conversation's files; each goes with the message whose id is its message_id, the others are ignored."""
    by_message: dict[int, list[ChatAttachment]] = defaultdict(list)
    for attachment in attachments:
        if attachment.message_id is not None:
            by_message[attachment.message_id].append(attachment)
    out: list[dict[str, Any]] = []
    if conversation.system_prompt.strip():
        out.append({'role': 'system', 'content': conversation.system_prompt})
    for message in messages:
        if message.role == ChatRole.user:
            assert message.id is not None
            out.append({'role': 'user', 'content': await _user_content(message, by_message.get(message.id, []),
                                                                       settings)})
        elif message.content:  # an assistant answer that failed or is still streaming has none
            out.append({'role': message.role, 'content': message.content})
    return out


async def context_for(session: AsyncSession, *, user_id: int, conversation_id: int,
                      settings: Settings | None = None) -> list[dict[str, Any]]:
    """context_messages for the user's conversation, loading its messages and files."""
    conversation = await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    messages = await list_messages(session, user_id=user_id, conversation_id=conversation_id)
    attachments = await files.list_attachments(session, user_id=user_id, conversation_id=conversation_id)
    return await context_messages(conversation, messages, attachments, settings=settings)


async def _user_content(message: ChatMessage, attachments: list[ChatAttachment],
                        settings: Settings | None) -> str | list[dict[str, Any]]:
    blocks: list[str] = []
    images: list[dict[str, Any]] = []
    for attachment in attachments:
        if attachment.kind == AttachmentKind.image:
            url = await files.data_url(attachment, settings=settings)
            if url is None:
                blocks.append(f'[image: {attachment.filename} is no longer available]')
            else:
                images.append({'type': 'image_url', 'image_url': {'url': url}})
        else:
            text = await files.read_text(attachment, settings=settings)
            if text is None:
                text = '(this file is no longer available)'
            blocks.append(f'[file: {attachment.filename}]\n{text}\n[end of file]')
    text = '\n\n'.join([*blocks, message.content] if message.content else blocks)
    if not images:
        return text
    return [{'type': 'text', 'text': text}, *images] if text else images


# ------------------------------------------------------------------------------------------------- validation


def _title(title: str) -> str:
    title = ' '.join((title or '').split())
    if not title:
        raise InvalidRequest('a conversation needs a title', param='title')
    if len(title) > TITLE_MAX:
        raise InvalidRequest(f'a title has at most {TITLE_MAX} characters', param='title')
    return title


def _model(model: str | None) -> str | None:
    model = (model or '').strip()
    if len(model) > MODEL_MAX:
        raise InvalidRequest(f'a model name has at most {MODEL_MAX} characters', param='model')
    return model or None


def _system_prompt(prompt: str) -> str:
    prompt = prompt or ''
    if len(prompt) > SYSTEM_PROMPT_MAX:
        raise InvalidRequest(f'a system prompt has at most {SYSTEM_PROMPT_MAX:,} characters', param='system_prompt')
    return prompt


def _temperature(temperature: float | None) -> float | None:
    if temperature is None:
        return None
    low, high = TEMPERATURE_RANGE
    if not low <= float(temperature) <= high:
        raise InvalidRequest(f'temperature must be between {low:g} and {high:g}', param='temperature')
    return float(temperature)


def _request_id(request_id: str | None) -> str | None:
    return request_id[:40] if request_id else None


def _error(error: str | None) -> str | None:
    return error[:ERROR_MAX] if error else None


def _citations(citations: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """[{n, title, url}], the numbers as the answer cites them ([1], [2], ...)."""
    if citations is None:
        return None
    out = []
    for number, citation in enumerate(citations, 1):
        n = citation.get('n', number)
        out.append({'n': n if isinstance(n, int) else number, 'title': str(citation.get('title') or ''),
                    'url': str(citation.get('url') or '')})
    return out
