"""Nodes: GPU servers running the sidecar agent; backends point at the node they run on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'nodes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('hostname', sa.String(length=255), nullable=False),
        sa.Column('sidecar_url', sa.String(length=255), nullable=False),
        sa.Column('sidecar_key_sealed', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_seen_at', sa.DateTime(), nullable=True),
        sa.Column('gpu_count', sa.Integer(), nullable=True),
        sa.Column('driver_version', sa.String(length=64), nullable=True),
        sa.Column('cuda_version', sa.String(length=32), nullable=True),
        sa.Column('sidecar_version', sa.String(length=32), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_nodes')),
        sa.UniqueConstraint('name', name=op.f('uq_nodes_name')),
        sa.UniqueConstraint('sidecar_url', name=op.f('uq_nodes_sidecar_url')),
    )
    with op.batch_alter_table('backends') as batch_op:  # SQLite rebuilds the table to add the key
        batch_op.create_foreign_key(batch_op.f('fk_backends_node_id_nodes'), 'nodes', ['node_id'], ['id'],
                                    ondelete='RESTRICT')


def downgrade() -> None:
    with op.batch_alter_table('backends') as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_backends_node_id_nodes'), type_='foreignkey')
    op.drop_table('nodes')
