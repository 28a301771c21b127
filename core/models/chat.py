"""The web console's chat: each user's conversations, their messages, and the files sent with them.

Everything here belongs to one user (conversations.user_id; attachments.user_id too, because a file is uploaded
before the conversation it goes to exists). Deleting a user deletes their conversations, messages and
attachment rows (ON DELETE CASCADE); the files on disk are removed by core.chat.files.

An assistant message and the files sent with the question it answers carry the gateway's X-Request-ID of that
request (`request_id`), which links them to the request's row in the audit trail (request_log.request_id).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlmodel import Field, SQLModel

from core.models.audit import BigId, LongText
from core.models.base import UtcDateTime, utcnow


class ChatRole(StrEnum):
    user = 'user'
    assistant = 'assistant'
    system = 'system'


class AttachmentKind(StrEnum):
    text = 'text'  # text was extracted (plain text, code, PDF, DOCX) and goes to the model as text
    image = 'image'  # stored as uploaded, goes to the model as an image part


class Conversation(SQLModel, table=True):
    __tablename__ = 'conversations'
    __table_args__ = (Index('ix_conversations_user_updated', 'user_id', 'updated_at'),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key='users.id', ondelete='CASCADE')
    title: str = Field(default='New chat', max_length=200)
    model: str | None = Field(default=None, max_length=255)  # None: the page's default model
    system_prompt: str = Field(default='', sa_type=Text)
    temperature: float | None = None  # 0..2; None: the model's default
    think: bool | None = None  # reasoning on/off for models that can; None: the model's default
    web_search: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)  # last message added


class ChatMessage(SQLModel, table=True):
    __tablename__ = 'chat_messages'
    __table_args__ = (Index('ix_chat_messages_conversation', 'conversation_id', 'id'),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    conversation_id: int = Field(foreign_key='conversations.id', ondelete='CASCADE')
    role: str = Field(sa_type=String(16))  # ChatRole
    content: str = Field(default='', sa_type=LongText)
    reasoning: str | None = Field(default=None, sa_type=LongText)  # the model's thinking, shown apart
    model: str | None = Field(default=None, max_length=255)  # the model that answered (assistant messages)
    request_id: str | None = Field(default=None, max_length=40)  # X-Request-ID of the answering request
    prompt_tokens: int = 0
    completion_tokens: int = 0
    citations: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)  # [{n, title, url}] (web search)
    stopped: bool = False  # the user stopped the answer; content is what had arrived
    error: str | None = Field(default=None, sa_type=Text)  # why the answer failed
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class ChatAttachment(SQLModel, table=True):
    __tablename__ = 'chat_attachments'

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key='users.id', ondelete='CASCADE', index=True)
    conversation_id: int | None = Field(default=None, foreign_key='conversations.id', ondelete='CASCADE',
                                        index=True)  # None until the message it goes with is sent
    message_id: int | None = Field(default=None, foreign_key='chat_messages.id', ondelete='SET NULL',
                                   sa_type=BigId, index=True)
    request_id: str | None = Field(default=None, max_length=40)  # X-Request-ID of the request that answered it
    filename: str = Field(max_length=255)  # the client's name, for display only (never a path on disk)
    media_type: str = Field(max_length=100)  # decided from the content
    size_bytes: int
    kind: str = Field(sa_type=String(16))  # AttachmentKind
    storage_path: str = Field(max_length=500)  # relative to the artifact folder, e.g. chat/7/3f0c....pdf
    extracted_chars: int = 0  # characters of text found in the file, before truncation; 0 for images
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
