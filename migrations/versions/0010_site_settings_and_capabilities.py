"""Settings an admin changes from the console, and per-model capability overrides.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'site_settings',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_site_settings')),
    )
    with op.batch_alter_table('model_settings') as batch:
        batch.add_column(sa.Column('capabilities_override', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('model_settings') as batch:
        batch.drop_column('capabilities_override')
    op.drop_table('site_settings')
