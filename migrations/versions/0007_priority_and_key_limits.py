"""Backends get an admin priority, one term of the scheduler's backend score; API keys may have their own
requests-per-minute limit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('backends') as batch:
        batch.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('rpm_limit', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('rpm_limit')
    with op.batch_alter_table('backends') as batch:
        batch.drop_column('priority')
