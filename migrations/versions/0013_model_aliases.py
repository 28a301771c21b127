"""Model aliases (a name agents know → a served model), and the alias a request named in its audit row.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'model_aliases',
        sa.Column('alias', sa.String(length=255), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('alias', name=op.f('pk_model_aliases')),
    )
    with op.batch_alter_table('request_log') as batch:
        batch.add_column(sa.Column('requested_model', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('request_log') as batch:
        batch.drop_column('requested_model')
    op.drop_table('model_aliases')
