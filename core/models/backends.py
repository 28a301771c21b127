"""Inference backends (Ollama, vLLM, or OpenAI-compatible speech servers) and the models each one serves."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime, utcnow


class Engine(StrEnum):
    ollama = 'ollama'
    vllm = 'vllm'  # also serves speech-to-text when its model is a transcription model (Whisper)
    tts = 'tts'  # an OpenAI-compatible text-to-speech server: Speaches, Kokoro-FastAPI
    stt = 'stt'  # an OpenAI-compatible speech-to-text server: Speaches (faster-whisper)

    @property
    def speech_only(self) -> bool:
        """Engines that serve /v1/audio/* and nothing else."""
        return self in (Engine.tts, Engine.stt)


class BackendStatus(StrEnum):
    unknown = 'unknown'  # registered, not checked yet
    healthy = 'healthy'
    unhealthy = 'unhealthy'  # the last check failed
    draining = 'draining'  # an admin is taking it out: no new requests, in-flight ones finish, then disabled
    disabled = 'disabled'  # out of rotation until an admin enables it

    @property
    def set_by_admin(self) -> bool:
        """States health checks never override."""
        return self in (BackendStatus.draining, BackendStatus.disabled)


class BackendBase(SQLModel):
    name: str = Field(max_length=100, unique=True)
    url: str = Field(max_length=255, unique=True)
    engine: str = Field(sa_type=String(16))
    max_concurrent: int = Field(default=4, ge=1, le=4096)  # must match the engine's own limit (see docs)
    node_id: int | None = Field(default=None, foreign_key='nodes.id', ondelete='RESTRICT', index=True)  # its GPU node
    gpu_indices: list[int] | None = Field(default=None, sa_type=JSON)  # None: all of the node's GPUs
    priority: int = Field(default=0, ge=-10, le=10)  # an admin's preference among equal backends (scoring)


class BackendUpdate(SQLModel):
    """PATCH /api/admin/backends/{id}: only the fields sent change."""

    name: str | None = Field(default=None, max_length=100)
    url: str | None = Field(default=None, max_length=255)
    max_concurrent: int | None = Field(default=None, ge=1, le=4096)
    node_id: int | None = None
    gpu_indices: list[int] | None = None
    priority: int | None = Field(default=None, ge=-10, le=10)


class Backend(BackendBase, table=True):
    __tablename__ = 'backends'

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default=BackendStatus.unknown, sa_type=String(16))
    simulated: bool = False  # started by `serve --demo`; never in production
    version: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, sa_type=Text)
    last_checked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    engine_load: dict[str, Any] | None = Field(default=None, sa_type=JSON)  # what the engine said at the last check
    # Evidence that the engine queues requests of its own below max_concurrent (core.registry.capacity)
    capacity_advice: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class BackendModel(SQLModel, table=True):
    """One model as one backend serves it, as discovered from the engine."""

    __tablename__ = 'backend_models'
    __table_args__ = (UniqueConstraint('backend_id', 'name'),)

    id: int | None = Field(default=None, primary_key=True)
    backend_id: int = Field(foreign_key='backends.id', ondelete='CASCADE', index=True)
    name: str = Field(max_length=255, index=True)
    family: str | None = Field(default=None, max_length=64)
    context_length: int | None = None
    parameter_size: str | None = Field(default=None, max_length=32)
    quantization: str | None = Field(default=None, max_length=32)
    size_bytes: int | None = Field(default=None, sa_type=BigInteger)
    capabilities: list[str] = Field(default_factory=list, sa_type=JSON)  # completion, embedding, tools, vision, ...
    details: dict[str, object] = Field(default_factory=dict, sa_type=JSON)  # engine-specific listing fields
    discovered_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
