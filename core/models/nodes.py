"""GPU nodes: physical servers running the sidecar agent; backends run on them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow


class NodeStatus(StrEnum):
    unknown = 'unknown'  # registered, not polled yet
    online = 'online'
    offline = 'offline'  # the sidecar did not answer, or answered wrongly: its backends take no requests


class NodeBase(SQLModel):
    name: str = Field(max_length=100, unique=True)
    hostname: str = Field(max_length=255)
    sidecar_url: str = Field(max_length=255, unique=True)


class Node(NodeBase, table=True):
    __tablename__ = 'nodes'

    id: int | None = Field(default=None, primary_key=True)
    sidecar_key_sealed: str = Field(sa_type=Text)  # core.secretbox: encrypted, never returned by the API
    status: str = Field(default=NodeStatus.unknown, sa_type=String(16))
    last_error: str | None = Field(default=None, sa_type=Text)
    last_seen_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    gpu_count: int | None = None
    driver_version: str | None = Field(default=None, max_length=64)
    cuda_version: str | None = Field(default=None, max_length=32)
    sidecar_version: str | None = Field(default=None, max_length=32)
    # The latest good reading, as the sidecar sent it: processes that do not poll show it (core.jobs.background).
    last_reading: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
