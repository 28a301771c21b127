"""Settings an admin changes from the console at run time, kept over restarts (over the environment's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow


class SiteSetting(SQLModel, table=True):
    __tablename__ = 'site_settings'

    name: str = Field(max_length=64, primary_key=True)  # a Settings field name, e.g. audit_log_prompts
    value: Any = Field(sa_type=JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
