"""Backends: what the engines' own signals say about their real parallelism (hidden engine queues).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('backends') as batch:
        batch.add_column(sa.Column('capacity_advice', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('backends') as batch:
        batch.drop_column('capacity_advice')
