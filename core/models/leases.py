"""Leases: which process runs the cluster-wide background jobs (see core.jobs.leadership)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime


class JobLease(SQLModel, table=True):
    __tablename__ = 'job_leases'

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)  # host-pid-random of the process holding it
    expires_at: datetime = Field(sa_type=UtcDateTime)
