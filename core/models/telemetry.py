"""Telemetry history: one row per GPU and one per backend every TELEMETRY_SAMPLE_INTERVAL seconds.

Node-level figures are not stored: they are sums and means of the node's GPU rows at the same `taken_at`,
derived when queried. Rows go when their node or backend is deleted, and after TELEMETRY_RETENTION_DAYS.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from core.models.audit import BigId
from core.models.base import UtcDateTime

# Every figure is nullable: a GPU may fail to report any one of them (the sidecar sends null).
GPU_FIGURES: tuple[str, ...] = (
    'utilization_gpu',
    'utilization_memory',
    'memory_used_gb',
    'memory_total_gb',
    'temperature_gpu',
    'power_draw_watts',
    'power_limit_watts',
    'fan_speed_percent',
    'clock_sm_mhz',
)
BACKEND_FIGURES: tuple[str, ...] = ('utilization_gpu', 'memory_used_gb', 'memory_total_gb', 'power_draw_watts')


class GpuSample(SQLModel, table=True):
    __tablename__ = 'gpu_samples'
    # (node_id, taken_at) serves the history query and the node's foreign key; taken_at alone serves pruning
    # and the export.
    __table_args__ = (
        Index('ix_gpu_samples_node_taken', 'node_id', 'taken_at'),
        Index('ix_gpu_samples_taken', 'taken_at'),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    node_id: int = Field(foreign_key='nodes.id', ondelete='CASCADE')
    gpu_index: int
    taken_at: datetime = Field(sa_type=UtcDateTime)
    utilization_gpu: float | None = None  # percent
    utilization_memory: float | None = None  # percent
    memory_used_gb: float | None = None
    memory_total_gb: float | None = None
    temperature_gpu: float | None = None  # °C
    power_draw_watts: float | None = None
    power_limit_watts: float | None = None
    fan_speed_percent: float | None = None
    clock_sm_mhz: float | None = None


class BackendSample(SQLModel, table=True):
    __tablename__ = 'backend_samples'
    __table_args__ = (
        Index('ix_backend_samples_backend_taken', 'backend_id', 'taken_at'),
        Index('ix_backend_samples_taken', 'taken_at'),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    backend_id: int = Field(foreign_key='backends.id', ondelete='CASCADE')
    taken_at: datetime = Field(sa_type=UtcDateTime)
    in_flight: int  # requests on it from every worker, as the sampling process knew them
    max_concurrent: int
    healthy: bool  # in rotation: healthy, and its node online
    # Its own GPUs only (gpu_indices); null when it has no node or the node was not read.
    utilization_gpu: float | None = None  # mean over its GPUs
    memory_used_gb: float | None = None  # summed over its GPUs
    memory_total_gb: float | None = None
    power_draw_watts: float | None = None
