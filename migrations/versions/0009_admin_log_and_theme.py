"""The admin audit log, and each user's choice of light or dark console.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'admin_actions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=False),
        sa.Column('before', sa.JSON(), nullable=True),
        sa.Column('after', sa.JSON(), nullable=True),
        sa.Column('via', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_admin_actions_actor_id_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_actions')),
    )
    op.create_index('ix_admin_actions_created', 'admin_actions', ['created_at'])
    op.create_index('ix_admin_actions_action', 'admin_actions', ['action'])
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('dark_mode', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('dark_mode')
    op.drop_index('ix_admin_actions_action', 'admin_actions')
    op.drop_index('ix_admin_actions_created', 'admin_actions')
    op.drop_table('admin_actions')
