"""The admin audit log: every change an administrator makes, from the console or the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index
from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow


class AdminAction(SQLModel, table=True):
    __tablename__ = 'admin_actions'
    __table_args__ = (Index('ix_admin_actions_created', 'created_at'),)

    id: int | None = Field(default=None, primary_key=True)
    actor_id: int | None = Field(default=None, foreign_key='users.id', ondelete='SET NULL')
    actor: str = Field(max_length=64)  # the username, kept when the account is deleted
    action: str = Field(max_length=64, index=True)  # e.g. backend.drain, user.role, quota_request.approve
    target: str = Field(default='', max_length=255)  # what it was done to, e.g. "backend 3 (gpu-a)"
    before: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    via: str = Field(default='console', max_length=16)  # console | api | cli
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
