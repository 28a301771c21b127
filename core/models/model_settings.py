"""An admin's settings for one model, whichever backends serve it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow


class ModelSetting(SQLModel, table=True):
    __tablename__ = 'model_settings'

    name: str = Field(max_length=255, primary_key=True)  # the served name, e.g. llama3.2:latest
    context_length_override: int | None = None  # replaces the capped context length (never above the model's)
    capabilities_override: list[str] | None = Field(default=None, sa_type=JSON)  # replaces discovered capabilities
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
