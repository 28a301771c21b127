"""Where the audit retention sweep stopped: rows created before the mark have no content left.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'retention_marks',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('done_until', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_retention_marks')),
    )


def downgrade() -> None:
    op.drop_table('retention_marks')
