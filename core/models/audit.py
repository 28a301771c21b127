"""The audit trail: one row per inference request, written in batches off the request path."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow

# Prompts and answers can be long: TEXT is 64 KiB on MariaDB, MEDIUMTEXT 16 MiB.
LongText = Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')
# SQLite only auto-increments an INTEGER primary key; everywhere else the log needs 64 bits.
BigId = BigInteger().with_variant(Integer(), 'sqlite')


class RequestLog(SQLModel, table=True):
    __tablename__ = 'request_log'
    __table_args__ = (
        Index('ix_request_log_user_created', 'user_id', 'created_at'),
        Index('ix_request_log_created', 'created_at'),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    request_id: str = Field(max_length=40, unique=True)
    user_id: int | None = Field(default=None, foreign_key='users.id', ondelete='SET NULL')
    api_key_id: int | None = Field(default=None, foreign_key='api_keys.id', ondelete='SET NULL')
    endpoint: str = Field(max_length=64)  # e.g. /v1/chat/completions
    model: str = Field(default='', max_length=255, index=True)  # the served model
    requested_model: str | None = Field(default=None, max_length=255)  # the alias the client asked for, if one
    backend_id: int | None = Field(default=None, foreign_key='backends.id', ondelete='SET NULL')
    backend_name: str | None = Field(default=None, max_length=100)  # kept when the backend is deleted
    stream: bool = False
    status: str = Field(sa_type=String(16))  # completed | failed | cancelled | rejected
    http_status: int = 200
    error: str | None = Field(default=None, sa_type=Text)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    queue_ms: float = 0.0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    client_ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=255)
    prompt: str | None = Field(default=None, sa_type=LongText)  # AUDIT_LOG_PROMPTS
    response: str | None = Field(default=None, sa_type=LongText)  # AUDIT_LOG_RESPONSES
    schema_valid: bool | None = None  # a structured answer matched the client's schema; None: none was asked for
    # Speech, in its own units (core.quotas.speech): characters read aloud (TTS), seconds of audio heard (STT).
    speech_chars: int = 0
    audio_seconds: float = 0.0
    audio_path: str | None = Field(default=None, max_length=255)  # the stored audio, relative to ARTIFACT_STORAGE_PATH
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
