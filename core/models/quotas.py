"""Per-user quota overrides and the requests users file to raise their quota."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, String, Text
from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow


class QuotaOverride(SQLModel, table=True):
    """Replaces the role's defaults for one user; a None column means "use the role's value"."""

    __tablename__ = 'quota_overrides'

    user_id: int = Field(foreign_key='users.id', ondelete='CASCADE', primary_key=True)
    token_budget: int | None = Field(default=None, ge=0, sa_type=BigInteger)
    rpm_limit: int | None = Field(default=None, ge=0)
    max_concurrent: int | None = Field(default=None, ge=0)
    scheduler_weight: int | None = Field(default=None, ge=1)
    tts_char_budget: int | None = Field(default=None, ge=0, sa_type=BigInteger)
    stt_seconds_budget: int | None = Field(default=None, ge=0, sa_type=BigInteger)
    note: str = Field(default='', max_length=255)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class QuotaRequestStatus(StrEnum):
    pending = 'pending'
    approved = 'approved'
    denied = 'denied'


class QuotaRequest(SQLModel, table=True):
    __tablename__ = 'quota_requests'

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key='users.id', ondelete='CASCADE', index=True)
    requested_tokens: int | None = Field(default=None, ge=0, sa_type=BigInteger)
    requested_rpm: int | None = Field(default=None, ge=0)
    requested_max_concurrent: int | None = Field(default=None, ge=0)
    requested_tts_chars: int | None = Field(default=None, ge=0, sa_type=BigInteger)  # characters read aloud a period
    requested_stt_seconds: int | None = Field(default=None, ge=0, sa_type=BigInteger)  # audio seconds transcribed
    justification: str = Field(sa_type=Text)
    status: str = Field(default=QuotaRequestStatus.pending, sa_type=String(16), index=True)
    reviewer_id: int | None = Field(default=None, foreign_key='users.id', ondelete='SET NULL')
    review_note: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    reviewed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
