"""Job leases (one process runs the cluster-wide jobs) and the readings it shares with the others: each
node's latest sidecar reading, each backend's engine load.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'job_leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=128), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_job_leases')),
    )
    with op.batch_alter_table('nodes') as batch:
        batch.add_column(sa.Column('last_reading', sa.JSON(), nullable=True))
    with op.batch_alter_table('backends') as batch:
        batch.add_column(sa.Column('engine_load', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('backends') as batch:
        batch.drop_column('engine_load')
    with op.batch_alter_table('nodes') as batch:
        batch.drop_column('last_reading')
    op.drop_table('job_leases')
