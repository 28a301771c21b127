"""Leases: which process runs the cluster-wide background jobs (see core.jobs.leadership), and the marks those
jobs leave for whichever process leads next."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from core.models.base import UtcDateTime


class JobLease(SQLModel, table=True):
    __tablename__ = 'job_leases'

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)  # host-pid-random of the process holding it
    expires_at: datetime = Field(sa_type=UtcDateTime)


class RetentionMark(SQLModel, table=True):
    """How far a retention sweep got (core.audit.retention): kept in the database, so a new leader goes on from
    there instead of walking the whole history again."""

    __tablename__ = 'retention_marks'

    name: str = Field(primary_key=True, max_length=64)  # e.g. request_log.content
    done_until: datetime = Field(sa_type=UtcDateTime)
