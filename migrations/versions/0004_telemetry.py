"""Telemetry history: GPU samples per node, backend samples.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'gpu_samples',
        sa.Column('id', _BIG_ID, nullable=False),
        sa.Column('node_id', sa.Integer(), nullable=False),
        sa.Column('gpu_index', sa.Integer(), nullable=False),
        sa.Column('taken_at', sa.DateTime(), nullable=False),
        sa.Column('utilization_gpu', sa.Float(), nullable=True),
        sa.Column('utilization_memory', sa.Float(), nullable=True),
        sa.Column('memory_used_gb', sa.Float(), nullable=True),
        sa.Column('memory_total_gb', sa.Float(), nullable=True),
        sa.Column('temperature_gpu', sa.Float(), nullable=True),
        sa.Column('power_draw_watts', sa.Float(), nullable=True),
        sa.Column('power_limit_watts', sa.Float(), nullable=True),
        sa.Column('fan_speed_percent', sa.Float(), nullable=True),
        sa.Column('clock_sm_mhz', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_gpu_samples_node_id_nodes'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_gpu_samples')),
    )
    op.create_index('ix_gpu_samples_node_taken', 'gpu_samples', ['node_id', 'taken_at'])
    op.create_index('ix_gpu_samples_taken', 'gpu_samples', ['taken_at'])

    op.create_table(
        'backend_samples',
        sa.Column('id', _BIG_ID, nullable=False),
        sa.Column('backend_id', sa.Integer(), nullable=False),
        sa.Column('taken_at', sa.DateTime(), nullable=False),
        sa.Column('in_flight', sa.Integer(), nullable=False),
        sa.Column('max_concurrent', sa.Integer(), nullable=False),
        sa.Column('healthy', sa.Boolean(), nullable=False),
        sa.Column('utilization_gpu', sa.Float(), nullable=True),
        sa.Column('memory_used_gb', sa.Float(), nullable=True),
        sa.Column('memory_total_gb', sa.Float(), nullable=True),
        sa.Column('power_draw_watts', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['backend_id'], ['backends.id'], name=op.f('fk_backend_samples_backend_id_backends'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_backend_samples')),
    )
    op.create_index('ix_backend_samples_backend_taken', 'backend_samples', ['backend_id', 'taken_at'])
    op.create_index('ix_backend_samples_taken', 'backend_samples', ['taken_at'])


def downgrade() -> None:
    op.drop_table('backend_samples')  # their indexes go with them
    op.drop_table('gpu_samples')
