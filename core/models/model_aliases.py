"""Model aliases: a name agents know (claude-sonnet-4-5, gpt-5-codex) answered by a model the cluster serves."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow


class ModelAlias(SQLModel, table=True):
    __tablename__ = 'model_aliases'

    alias: str = Field(max_length=255, primary_key=True)  # the name a client asks for
    target: str = Field(max_length=255)  # the served model that answers it, e.g. qwen3:8b
    created_by: str | None = Field(default=None, max_length=100)  # the admin who set it
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
