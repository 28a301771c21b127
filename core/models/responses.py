"""Stored Responses API answers (`store: true`): what `previous_response_id` chains from, and what
`GET /v1/responses/{id}` returns. Each belongs to one user (deleted with them) and is kept
`RESPONSES_RETENTION_DAYS`."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from core.models.audit import LongText
from core.models.base import UtcDateTime, utcnow


class StoredResponse(SQLModel, table=True):
    __tablename__ = 'stored_responses'

    id: str = Field(primary_key=True, max_length=64)  # resp_<request id>
    user_id: int = Field(foreign_key='users.id', ondelete='CASCADE', index=True)
    model: str = Field(default='', max_length=255)
    response: str = Field(sa_type=LongText)  # the `response` object, JSON
    input_items: str = Field(sa_type=LongText)  # this request's own input items, JSON
    history: str = Field(sa_type=LongText)  # the chained turns' items before them (inputs and outputs), JSON
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime, index=True)
